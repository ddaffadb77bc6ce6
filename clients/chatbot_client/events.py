"""The events of a streamed answer as Python types, and the whole answer once it has ended."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot.v1 import common_pb2
from chatbot_client.errors import ChatbotError, error_from_status


@dataclass(frozen=True)
class AnswerStarted:
    """Always first: where the answer will be stored and how it will be made."""

    conversation_id: str
    user_message_id: str
    # Use it to submit feedback on the answer.
    assistant_message_id: str
    request_id: str
    # Empty when offline: no language model, the answer quotes the documents.
    model: str
    offline: bool
    experiment: chat_pb.ExperimentAssignment | None
    # For `resume_answer` and `cancel_answer`.
    answer_id: str = ""


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text; the pieces in order make the answer."""

    text: str


@dataclass(frozen=True)
class RetrievedChunks:
    """Every chunk retrieval found, before generation (asked with `include_retrieval`)."""

    chunks: tuple[common_pb2.RetrievedChunk, ...]


@dataclass(frozen=True)
class Citations:
    """The sources the answer's [n] markers refer to, in number order."""

    citations: tuple[common_pb2.Citation, ...]


@dataclass(frozen=True)
class Usage:
    """What the answer cost and how long it took."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    retrieval_ms: int
    first_token_ms: int
    total_ms: int


@dataclass(frozen=True)
class Heartbeat:
    """Sent during long silences; needs no handling."""

    elapsed_ms: int


@dataclass(frozen=True)
class AnswerFinished:
    """Always last. `finish_reason`: stop, length, cancelled, error or content_filter;
    `grounding`: answered, not_found, or "" when undecided; `error` set on "error"."""

    finish_reason: str
    grounding: str
    warnings: tuple[str, ...]
    error: ChatbotError | None


AnswerEvent = (
    AnswerStarted | TextDelta | RetrievedChunks | Citations | Usage | Heartbeat | AnswerFinished
)


def answer_event(message: chat_pb.StreamAnswerResponse) -> AnswerEvent:
    """The typed event for one message of the `StreamAnswer` stream."""
    kind = message.WhichOneof("event")
    if kind == "delta":
        return TextDelta(message.delta.text)
    if kind == "started":
        started = message.started
        return AnswerStarted(
            conversation_id=started.conversation_id,
            user_message_id=started.user_message_id,
            assistant_message_id=started.assistant_message_id,
            request_id=started.request_id,
            model=started.model,
            offline=started.offline,
            experiment=started.experiment if started.HasField("experiment") else None,
            answer_id=started.answer_id,
        )
    if kind == "retrieval":
        return RetrievedChunks(tuple(message.retrieval.chunks))
    if kind == "citations":
        return Citations(tuple(message.citations.citations))
    if kind == "usage":
        usage = message.usage
        return Usage(
            model=usage.model,
            prompt_tokens=usage.usage.prompt_tokens,
            completion_tokens=usage.usage.completion_tokens,
            total_tokens=usage.usage.total_tokens,
            cost_usd=usage.usage.cost_usd,
            retrieval_ms=usage.retrieval_ms,
            first_token_ms=usage.first_token_ms,
            total_ms=usage.total_ms,
        )
    if kind == "heartbeat":
        return Heartbeat(message.heartbeat.elapsed_ms)
    if kind == "done":
        done = message.done
        return AnswerFinished(
            finish_reason=_enum_name(
                chat_pb.FinishReason.Name(done.finish_reason), "FINISH_REASON_"
            ),
            grounding=_enum_name(chat_pb.Grounding.Name(done.grounding), "GROUNDING_"),
            warnings=tuple(done.warnings),
            error=error_from_status(done.error) if done.HasField("error") else None,
        )
    raise ValueError(f"unknown answer event {kind!r}; is the client older than the server?")


def _enum_name(name: str, prefix: str) -> str:
    """FINISH_REASON_CONTENT_FILTER -> content_filter; *_UNSPECIFIED -> ""."""
    value = name.removeprefix(prefix).lower()
    return "" if value == "unspecified" else value


@dataclass
class Answer:
    """A whole answer: its text, sources, cost, and how it ended."""

    text: str = ""
    started: AnswerStarted | None = None
    chunks: tuple[common_pb2.RetrievedChunk, ...] = ()
    citations: tuple[common_pb2.Citation, ...] = ()
    usage: Usage | None = None
    finished: AnswerFinished | None = None

    @classmethod
    def from_events(cls, events: Iterable[AnswerEvent]) -> Answer:
        answer = cls()
        pieces: list[str] = []
        for event in events:
            match event:
                case TextDelta(text=text):
                    pieces.append(text)
                case AnswerStarted():
                    answer.started = event
                case RetrievedChunks(chunks=chunks):
                    answer.chunks = chunks
                case Citations(citations=citations):
                    answer.citations = citations
                case Usage():
                    answer.usage = event
                case AnswerFinished():
                    answer.finished = event
        answer.text = "".join(pieces)
        return answer

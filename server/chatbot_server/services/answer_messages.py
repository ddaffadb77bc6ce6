"""An answer's events as the StreamAnswer contract's messages."""

from __future__ import annotations

from functools import singledispatch

from google.rpc import status_pb2

from chatbot.v1 import chat_service_pb2 as pb
from chatbot.v1 import common_pb2
from chatbot_server.answers.answer_events import (
    AnswerEnded,
    AnswerEvent,
    AnswerStarted,
    CitationsMade,
    RetrievalFound,
    StillWorking,
    TextAdded,
    UsageMeasured,
)
from chatbot_server.money.pricing import to_usd
from chatbot_server.services.conversions import FINISH_REASONS, GROUNDINGS, retrieved_chunk

_COST_SOURCES = {
    "provider": common_pb2.COST_SOURCE_PROVIDER,
    "pricing_table": common_pb2.COST_SOURCE_PRICING_TABLE,
    "estimated": common_pb2.COST_SOURCE_ESTIMATED,
    "free": common_pb2.COST_SOURCE_FREE,
}


def stream_answer_response(event: AnswerEvent) -> pb.StreamAnswerResponse:
    return _message(event)


@singledispatch
def _message(event: object) -> pb.StreamAnswerResponse:
    raise TypeError(f"not an answer event: {event!r}")


@_message.register
def _(event: AnswerStarted) -> pb.StreamAnswerResponse:
    assignment = event.assignment
    experiment = (
        pb.ExperimentAssignment(
            experiment_id=str(assignment.experiment_id),
            experiment_name=assignment.experiment_name,
            variant=assignment.variant.name,
        )
        if assignment is not None
        else None
    )
    return pb.StreamAnswerResponse(
        started=pb.AnswerStarted(
            conversation_id=str(event.conversation_id),
            user_message_id=str(event.user_message_id),
            assistant_message_id=str(event.assistant_message_id),
            request_id=event.request_id,
            model=event.model,
            offline=not event.model,
            experiment=experiment,
        )
    )


@_message.register
def _(event: RetrievalFound) -> pb.StreamAnswerResponse:
    chunks = [retrieved_chunk(hit) for hit in event.hits]
    return pb.StreamAnswerResponse(retrieval=pb.RetrievalResults(chunks=chunks))


@_message.register
def _(event: TextAdded) -> pb.StreamAnswerResponse:
    return pb.StreamAnswerResponse(delta=pb.AnswerDelta(text=event.text))


@_message.register
def _(event: CitationsMade) -> pb.StreamAnswerResponse:
    citations = [common_pb2.Citation(**citation) for citation in event.citations]
    return pb.StreamAnswerResponse(citations=pb.AnswerCitations(citations=citations))


@_message.register
def _(event: UsageMeasured) -> pb.StreamAnswerResponse:
    return pb.StreamAnswerResponse(
        usage=pb.AnswerUsage(
            model=event.model,
            usage=common_pb2.Usage(
                prompt_tokens=event.prompt_tokens,
                completion_tokens=event.completion_tokens,
                total_tokens=event.prompt_tokens + event.completion_tokens,
                cost_usd=to_usd(event.cost_micro_usd),
                cost_source=_COST_SOURCES[event.cost_source],
            ),
            retrieval_ms=event.retrieval_ms,
            first_token_ms=event.first_token_ms,
            total_ms=event.total_ms,
        )
    )


@_message.register
def _(event: StillWorking) -> pb.StreamAnswerResponse:
    return pb.StreamAnswerResponse(heartbeat=pb.Heartbeat(elapsed_ms=event.elapsed_ms))


@_message.register
def _(event: AnswerEnded) -> pb.StreamAnswerResponse:
    error = event.error
    return pb.StreamAnswerResponse(
        done=pb.AnswerDone(
            finish_reason=FINISH_REASONS[event.finish_reason],
            warnings=event.warnings,
            grounding=GROUNDINGS[event.grounding],
            error=(
                status_pb2.Status(code=error.code.value[0], message=error.message)
                if error is not None
                else None
            ),
        )
    )

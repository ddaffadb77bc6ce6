"""`chatbot`: the command-line tool for operators and scripts."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import grpc

from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot.v1 import common_pb2
from chatbot.v1 import document_service_pb2 as pb
from chatbot_client.admin_commands import add_admin_commands
from chatbot_client.client import FINAL_STATUSES
from chatbot_client.errors import ChatbotError
from chatbot_client.events import (
    Answer,
    AnswerFinished,
    AnswerStarted,
    Citations,
    TextDelta,
    Usage,
)
from chatbot_client.output import jsonable, local_time, print_json, size
from chatbot_client.sync_client import SyncChatbotClient

_STATUSES = {
    "pending": pb.DOCUMENT_STATUS_PENDING,
    "processing": pb.DOCUMENT_STATUS_PROCESSING,
    "ready": pb.DOCUMENT_STATUS_READY,
    "failed": pb.DOCUMENT_STATUS_FAILED,
}


# Exit codes (README, "Command line"): what a script calling `chatbot` can branch on.
EXIT_OK = 0
EXIT_FAILED = 1  # the server refused the call, or a document failed processing
EXIT_USAGE = 2  # wrong arguments, or a local file that is missing or unreadable
EXIT_UNREACHABLE = 3  # no server answered in time (UNAVAILABLE, DEADLINE_EXCEEDED)
EXIT_DENIED = 4  # missing, unknown or insufficient API key
EXIT_INTERRUPTED = 130  # Ctrl-C
_EXIT_CODES = {
    grpc.StatusCode.UNAVAILABLE: EXIT_UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNREACHABLE,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_DENIED,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_DENIED,
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.cert_file is None) != (args.key_file is None):
        parser.error("--cert-file and --key-file go together: give both or neither")
    try:
        if args.command == "documents" and args.action == "upload" and args.dry_run:
            return _upload_dry_run(args)
        with SyncChatbotClient(args.target, **_connection(args)) as client:
            handler: Callable[[SyncChatbotClient, argparse.Namespace], int] = args.handler
            return handler(client, args)
    except ChatbotError as error:
        print(f"chatbot: {_error_line(error)}", file=sys.stderr)
        return _EXIT_CODES.get(error.code, EXIT_FAILED)
    except BrokenPipeError:
        # The reader left (`chatbot documents list | head`): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as error:
        # A file to upload that is missing or unreadable: the caller's input, not a crash.
        print(f"chatbot: {error.filename}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED


def _connection(args: argparse.Namespace) -> dict[str, Any]:
    """The client's options from the command line: key, deadline and TLS files."""
    api_key = args.api_key
    if api_key is None and args.api_key_file:
        api_key = Path(args.api_key_file).read_text(encoding="utf-8").strip()

    def read(name: str | None) -> bytes | None:
        return Path(name).read_bytes() if name else None

    return {
        "timeout": args.timeout,
        "api_key": api_key,
        "tls": args.tls,
        "root_certificates": read(args.ca_file),
        "certificate_chain": read(args.cert_file),
        "private_key": read(args.key_file),
    }


def _error_line(error: ChatbotError) -> str:
    fields = "; ".join(f"{v.field}: {v.description}" for v in error.field_violations)
    message = fields if fields and not error.message else error.message
    retry = f" (retry in {error.retry_delay:.0f} s)" if error.retry_delay else ""
    return f"{error.code.name}: {message}{retry}"


# Every command takes --api-key and --json, before or after its name.
_COMMON = argparse.ArgumentParser(add_help=False)
_COMMON.add_argument(
    "--api-key", default=argparse.SUPPRESS, help="API key (default: $CHATBOT_API_KEY)"
)
_COMMON.add_argument(
    "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for programs"
)


def _add(subparsers: Any, name: str, **options: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, parents=[_COMMON], **options)
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatbot", description=__doc__)
    parser.add_argument("--target", default="127.0.0.1:50051", help="server (%(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CHATBOT_API_KEY") or None,
        help="API key sent as 'authorization: Bearer' (default: $CHATBOT_API_KEY)",
    )
    parser.add_argument(
        "--api-key-file",
        default=os.environ.get("CHATBOT_API_KEY_FILE") or None,
        help="read the API key from this file (default: $CHATBOT_API_KEY_FILE)",
    )
    parser.add_argument(
        "--tls", action="store_true", help="connect over TLS, trusting the system's CAs"
    )
    for option, variable, what in (
        ("--ca-file", "CHATBOT_CA_FILE", "connect over TLS, trusting the CAs in this PEM file"),
        ("--cert-file", "CHATBOT_CERT_FILE", "client certificate (PEM), for mutual TLS"),
        ("--key-file", "CHATBOT_KEY_FILE", "the client certificate's private key (PEM)"),
    ):
        parser.add_argument(
            option, default=os.environ.get(variable) or None, help=f"{what} (default: ${variable})"
        )
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    commands = parser.add_subparsers(dest="command", required=True)
    add_admin_commands(commands, _add)

    health = _add(commands, "health", help="print the server's (or a service's) status")
    health.add_argument("service", nargs="?", default="", help="e.g. chatbot.v1.ChatService")
    health.set_defaults(handler=_health)

    ask = _add(commands, "ask", help="ask a question; the answer streams to the terminal")
    ask.add_argument("question")
    ask.add_argument("--conversation", default="", help="continue this conversation (id)")
    ask.add_argument("--session", default="", help="session id the conversation belongs to")
    ask.add_argument("--language", default="", help="BCP-47 code of the question")
    ask.add_argument("--top-k", type=int, default=0, help="chunks to retrieve (1-50)")
    ask.add_argument("--document", action="append", default=[], help="only this document (repeat)")
    ask.add_argument("--tag", action="append", default=[], help="only documents with this tag")
    ask.set_defaults(handler=_ask)

    conversations = _add(commands, "conversations", help="list, show or delete")
    conversation_actions = conversations.add_subparsers(dest="action", required=True)
    listed = _add(conversation_actions, "list", help="your conversations, newest first")
    listed.add_argument("--session", default="")
    listed.set_defaults(handler=_conversations)
    for name, handler, text in (
        ("show", _conversation, "one conversation with its messages"),
        ("delete", _delete_conversation, "delete a conversation and its messages"),
    ):
        action = _add(conversation_actions, name, help=text)
        action.add_argument("conversation_id")
        action.add_argument("--session", default="")
        action.set_defaults(handler=handler)

    search = _add(commands, "search", help="retrieve the chunks most relevant to a query")
    search.add_argument("query")
    search.add_argument("--top-k", type=int, default=0)
    search.add_argument("--document", action="append", default=[], help="document id (repeat)")
    search.add_argument("--tag", action="append", default=[], help="tag (repeat)")
    search.set_defaults(handler=_search)

    documents = _add(commands, "documents", help="upload and manage documents")
    actions = documents.add_subparsers(dest="action", required=True)
    upload = _add(actions, "upload", help="upload a PDF, or every PDF under a folder")
    upload.add_argument("path", type=Path)
    upload.add_argument("--process", action="store_true", help="wait for each to be processed")
    upload.add_argument("--dry-run", action="store_true", help="list what would be uploaded")
    upload.add_argument("--overwrite", action="store_true", help="store again when known")
    upload.add_argument("--language", default="", help="BCP-47 code, e.g. en")
    upload.add_argument("--type", dest="document_type", default="", help="e.g. manual")
    upload.add_argument("--tag", action="append", default=[], help="tag (repeat)")
    upload.set_defaults(handler=_upload)
    listing = _add(actions, "list", help="list documents, newest first")
    listing.add_argument("--status", choices=tuple(_STATUSES))
    listing.add_argument("--tag", default="")
    listing.add_argument("--language", default="")
    listing.set_defaults(handler=_list)
    again = _add(actions, "reprocess-all", help="process every document again (admin)")
    again.add_argument("--status", choices=tuple(_STATUSES), help="only documents in this state")
    again.set_defaults(handler=_reprocess_all)
    for name, handler, text in (
        ("show", _show, "show one document"),
        ("delete", _delete, "delete a document and its chunks"),
        ("reprocess", _reprocess, "process a document again"),
        ("watch", _watch, "follow a document's processing"),
    ):
        action = _add(actions, name, help=text)
        action.add_argument("document_id")
        action.set_defaults(handler=handler)
    return parser


def _health(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    status = client.health(args.service)
    if args.json:
        print_json({"service": args.service, "status": status})
    else:
        print(status)
    return EXIT_OK if status == "SERVING" else EXIT_FAILED


def _search(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    response = client.search(
        args.query, top_k=args.top_k, document_ids=args.document, tags=args.tag
    )
    if args.json:
        return print_json(response)
    for rank, hit in enumerate(response.results, start=1):
        section = f" · {hit.section_title}" if hit.section_title else ""
        print(f"{rank:>2}. {hit.relevance_score:.2f}  {hit.document_title}, p. {hit.page_number}"
              f"{section}\n    {_shorten(hit.text, 200)}")  # fmt: skip
    print(f"({len(response.results)} results in {response.took_ms} ms)")
    return EXIT_OK


def _ask(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    events = client.ask(
        args.question,
        conversation_id=args.conversation,
        session_id=args.session,
        language=args.language,
        top_k=args.top_k,
        document_ids=args.document,
        tags=args.tag,
    )
    if args.json:
        answer = Answer.from_events(events)
        print_json(answer)
        return _answer_exit_code(answer.finished)
    finished: AnswerFinished | None = None
    citations: tuple[common_pb2.Citation, ...] = ()
    for event in events:
        match event:
            case AnswerStarted(offline=True):
                print("(offline: no language model; quoting the documents)", file=sys.stderr)
            case TextDelta(text=text):
                print(text, end="", flush=True)
            case Citations():
                citations = event.citations
            case Usage(model=model, total_tokens=tokens, cost_usd=cost, total_ms=ms):
                print(f"\n({model or 'offline'}, {tokens} tokens, ${cost:.6f}, {ms} ms)",
                      file=sys.stderr)  # fmt: skip
            case AnswerFinished():
                finished = event
                for warning in event.warnings:
                    print(f"note: {warning}", file=sys.stderr)
    print()
    for citation in citations:
        print(f"[{citation.number}] {_where(citation)}")
    if finished is not None and finished.error is not None:
        print(f"chatbot: the answer failed: {_error_line(finished.error)}", file=sys.stderr)
    return _answer_exit_code(finished)


def _answer_exit_code(finished: AnswerFinished | None) -> int:
    ended_well = finished is not None and finished.finish_reason in ("stop", "length")
    return EXIT_OK if ended_well else EXIT_FAILED


def _where(citation: common_pb2.Citation) -> str:
    section = f" · {citation.section_title}" if citation.section_title else ""
    return f"{citation.document_title}, p. {citation.page_number}{section}"


def _conversations(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    conversations = list(client.list_conversations(args.session))
    if args.json:
        return print_json(conversations)
    for conversation in conversations:
        print(f"{conversation.conversation_id}  {local_time(conversation.update_time)}  "
              f"{conversation.message_count:>3} messages  {conversation.title}")  # fmt: skip
    if not conversations:
        whose = f"session {args.session!r}" if args.session else "no session (use --session)"
        print(f"no conversations of this caller with {whose}", file=sys.stderr)
    return EXIT_OK


def _conversation(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    found = client.get_conversation(args.conversation_id, args.session)
    if args.json:
        return print_json(found)
    conversation = found.conversation
    print(f"# {conversation.title or '(untitled)'}")
    print(f"id {conversation.conversation_id}; started {local_time(conversation.create_time)}; "
          f"last message {local_time(conversation.update_time)}")  # fmt: skip
    for message in found.messages:
        who = "you" if message.role == chat_pb.MESSAGE_ROLE_USER else "assistant"
        state = chat_pb.MessageStatus.Name(message.status).removeprefix("MESSAGE_STATUS_")
        note = "" if state in ("COMPLETE", "UNSPECIFIED") else f" ({state.lower()})"
        print(f"\n{who}, {local_time(message.create_time)}{note}:\n{message.content}")
        for citation in message.citations:
            print(f"  [{citation.number}] {_where(citation)}")
    return EXIT_OK


def _delete_conversation(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    client.delete_conversation(args.conversation_id, args.session)
    if args.json:
        return print_json({"deleted": args.conversation_id})
    print(f"deleted {args.conversation_id}")
    return EXIT_OK


def _pdfs(path: Path) -> list[Path]:
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())
    return [path]


def _upload_dry_run(args: argparse.Namespace) -> int:
    files = _pdfs(args.path)
    if args.json:
        return print_json([{"path": str(f), "size_bytes": f.stat().st_size} for f in files])
    for file in files:
        print(f"would upload {file} ({size(file.stat().st_size)})")
    total = sum(f.stat().st_size for f in files)
    print(f"{_count(len(files), 'file')}, {size(total)}; nothing sent")
    return EXIT_OK


@dataclass
class _FileResult:
    path: str
    document: pb.Document | None = None
    already_stored: bool = False
    error: str = ""


def _upload(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    files = _pdfs(args.path)
    started = time.monotonic()
    bar = _ProgressBar(sys.stderr, enabled=not args.json)
    results: list[_FileResult] = []
    for index, file in enumerate(files):
        result = _FileResult(str(file))
        results.append(result)
        bar.show(index, len(files), file.name, "uploading")
        try:
            response = client.upload_document(
                file,
                language=args.language,
                document_type=args.document_type,
                tags=args.tag,
                overwrite=args.overwrite,
            )
        except ChatbotError as error:
            result.error = _error_line(error)
            bar.file_done(index + 1, len(files), file.name, result.error)
            continue
        result.document, result.already_stored = response.document, response.deduplicated
        state = "already stored" if response.deduplicated else "stored"
        if args.process:
            for update in client.watch_document(response.document.document_id):
                result.document = update.document
                state = _processing_state(update)
                done = update.chunks_done / update.chunks_total if update.chunks_total else 0.0
                bar.show(index, len(files), file.name, state, done)
            if result.document.status == pb.DOCUMENT_STATUS_FAILED:
                result.error = result.document.error
        bar.file_done(index + 1, len(files), file.name, result.error or state)
    bar.finish()
    failed = [r for r in results if r.error]
    if args.json:
        print_json(results)
        return EXIT_FAILED if failed else EXIT_OK
    for result in failed:
        print(f"failed: {result.path}: {result.error}")
    stored = [r for r in results if r.document is not None and not r.already_stored]
    known = [r for r in results if r.already_stored]
    parts = [f"{len(stored)} stored"] if stored or not known else []
    parts += [f"{len(known)} already stored"] if known else []
    parts += [f"{len(failed)} failed"] if failed else []
    documents = [r.document for r in results if r.document is not None]
    pages = sum(d.page_count for d in documents)
    chunks = sum(d.chunk_count for d in documents)
    waiting = [d for d in documents if d.status not in FINAL_STATUSES]
    processed = "; processing continues on the server" if waiting else ""
    print(f"{_count(len(files), 'file')}: {', '.join(parts)}; {_count(pages, 'page')}, "
          f"{_count(chunks, 'chunk')}; {time.monotonic() - started:.1f} s{processed}")  # fmt: skip
    return EXIT_FAILED if failed else EXIT_OK


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def _processing_state(update: pb.WatchDocumentResponse) -> str:
    status = _status_name(update.document).lower()
    if update.chunks_total:
        return (f"{status}: {_count(update.pages_done, 'page')}, "
                f"chunks {update.chunks_done}/{update.chunks_total}")  # fmt: skip
    return "extracting text" if status == "processing" else status


class _ProgressBar:
    """Upload progress on stderr. On a terminal, one line redrawn in place: an overall bar of
    files, then this file's bar of embedded chunks; elsewhere (a log, a pipe), one line per
    file when it is done."""

    WIDTH = 20

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self._stream = stream
        self._enabled = enabled
        self._live = enabled and stream.isatty()
        self._shown = False

    def show(self, done: int, total: int, name: str, state: str, fraction: float = 0.0) -> None:
        if not self._live:
            return
        line = f"{_bar(done / total if total else 1, 10)} {done}/{total} files  {name[:28]}"
        line += f" {_bar(fraction, self.WIDTH)} {state}"
        self._stream.write(f"\r{line[:118]:<118}")
        self._stream.flush()
        self._shown = True

    def file_done(self, done: int, total: int, name: str, state: str) -> None:
        if self._enabled and not self._live:
            self._stream.write(f"{done}/{total} {name}: {state}\n")
            self._stream.flush()

    def finish(self) -> None:
        if self._shown:
            self._stream.write("\r" + " " * 118 + "\r")
            self._stream.flush()


def _bar(fraction: float, width: int) -> str:
    filled = round(width * min(max(fraction, 0.0), 1.0))
    return f"[{'#' * filled}{'.' * (width - filled)}]"


def _list(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    status = _STATUSES[args.status] if args.status else pb.DOCUMENT_STATUS_UNSPECIFIED
    documents = list(client.list_documents(status=status, tag=args.tag, language=args.language))
    if args.json:
        return print_json(documents)
    for document in documents:
        print(_document_line(document))
    return EXIT_OK


def _show(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    document = client.get_document(args.document_id)
    if args.json:
        return print_json(document)
    rows = [
        ("Title", document.title),
        ("Id", document.document_id),
        ("File", f"{document.filename} ({size(document.size_bytes)})"),
        ("SHA-256", document.sha256),
        ("Status", _status_name(document)),
        ("Pages", str(document.page_count)),
        ("Chunks", str(document.chunk_count)),
        ("Language", document.language or "-"),
        ("Type", document.document_type or "-"),
        ("Tags", ", ".join(document.tags) or "-"),
        ("Embedded by", document.embedding_model or "-"),
        ("Uploaded", local_time(document.create_time)),
        ("Updated", local_time(document.update_time)),
        ("Processed", local_time(document.process_time)),
    ]
    rows += [("Error", document.error)] if document.error else []
    rows += [("Warning", warning) for warning in document.warnings]
    for label, value in rows:
        print(f"{label + ':':<13}{value}")
    return EXIT_OK


def _delete(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    client.delete_document(args.document_id)
    if args.json:
        return print_json({"deleted": args.document_id})
    print(f"deleted {args.document_id}")
    return EXIT_OK


def _reprocess(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    document = client.reprocess_document(args.document_id)
    if args.json:
        return print_json(document)
    print(_document_line(document))
    return EXIT_OK


def _reprocess_all(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    status = _STATUSES[args.status] if args.status else pb.DOCUMENT_STATUS_UNSPECIFIED
    queued = client.reprocess_all_documents(status)
    if args.json:
        return print_json({"queued_count": queued})
    print(f"queued {_count(queued, 'document')}")
    return EXIT_OK


def _watch(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    document = None
    for update in client.watch_document(args.document_id):
        document = update.document
        if args.json:
            print(json.dumps(jsonable(update), ensure_ascii=False), flush=True)
        else:
            print(_processing_state(update), flush=True)
    if document is not None and document.status == pb.DOCUMENT_STATUS_FAILED:
        if not args.json:
            print(f"failed: {document.error}")
        return EXIT_FAILED
    return EXIT_OK


def _status_name(document: pb.Document) -> str:
    return pb.DocumentStatus.Name(document.status).removeprefix("DOCUMENT_STATUS_")


def _document_line(document: pb.Document) -> str:
    return (
        f"{document.document_id}  {_status_name(document):<10} {document.page_count:>4} p "
        f"{document.chunk_count:>5} chunks  {document.title}"
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""`chatbot`: the command-line tool for operators and scripts."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import grpc

from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot.v1 import common_pb2
from chatbot.v1 import document_service_pb2 as pb
from chatbot_client.admin_commands import add_admin_commands
from chatbot_client.sync_client import SyncChatbotClient

_STATUSES = {
    "pending": pb.DOCUMENT_STATUS_PENDING,
    "processing": pb.DOCUMENT_STATUS_PROCESSING,
    "ready": pb.DOCUMENT_STATUS_READY,
    "failed": pb.DOCUMENT_STATUS_FAILED,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "documents" and args.action == "upload" and args.dry_run:
            return _upload_dry_run(args)
        with SyncChatbotClient(args.target, timeout=args.timeout, api_key=args.api_key) as client:
            handler: Callable[[SyncChatbotClient, argparse.Namespace], int] = args.handler
            return handler(client, args)
    except grpc.aio.AioRpcError as error:
        print(f"chatbot: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except OSError as error:
        # A file to upload that is missing or unreadable: the caller's input, not a crash.
        print(f"chatbot: {error.filename}: {error.strerror}", file=sys.stderr)
        return 2


# Every command takes --api-key, before or after its name.
_API_KEY = argparse.ArgumentParser(add_help=False)
_API_KEY.add_argument(
    "--api-key", default=argparse.SUPPRESS, help="API key (default: $CHATBOT_API_KEY)"
)


def _add(subparsers: Any, name: str, **options: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, parents=[_API_KEY], **options)
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
    print(status)
    return 0 if status == "SERVING" else 1


def _search(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    response = client.search(
        args.query, top_k=args.top_k, document_ids=args.document, tags=args.tag
    )
    for rank, hit in enumerate(response.results, start=1):
        section = f" · {hit.section_title}" if hit.section_title else ""
        print(f"{rank:>2}. {hit.relevance_score:.2f}  {hit.document_title}, p. {hit.page_number}"
              f"{section}\n    {_shorten(hit.text, 200)}")  # fmt: skip
    print(f"({len(response.results)} results in {response.took_ms} ms)")
    return 0


def _ask(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    citations: list[common_pb2.Citation] = []
    for event in client.ask(
        args.question,
        conversation_id=args.conversation,
        session_id=args.session,
        language=args.language,
    ):
        kind = event.WhichOneof("event")
        if kind == "started" and event.started.offline:
            print("(offline: no language model; quoting the documents)", file=sys.stderr)
        elif kind == "delta":
            print(event.delta.text, end="", flush=True)
        elif kind == "citations":
            citations = list(event.citations.citations)
        elif kind == "usage":
            usage = event.usage
            model, cost = usage.model or "offline", usage.usage.cost_usd
            summary = f"{usage.usage.total_tokens} tokens, ${cost:.6f}, {usage.total_ms} ms"
            print(f"\n({model}, {summary})", file=sys.stderr)
        elif kind == "done":
            for warning in event.done.warnings:
                print(f"note: {warning}", file=sys.stderr)
    print()
    for citation in citations:
        print(f"[{citation.number}] {_where(citation)}")
    return 0


def _where(citation: common_pb2.Citation) -> str:
    section = f" · {citation.section_title}" if citation.section_title else ""
    return f"{citation.document_title}, p. {citation.page_number}{section}"


def _conversations(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    for conversation in client.list_conversations(args.session):
        print(f"{conversation.conversation_id}  {conversation.message_count:>3} messages  "
              f"{conversation.title}")  # fmt: skip
    return 0


def _conversation(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    found = client.get_conversation(args.conversation_id, args.session)
    print(f"# {found.conversation.title}")
    for message in found.messages:
        who = "you" if message.role == chat_pb.MESSAGE_ROLE_USER else "assistant"
        print(f"\n{who}: {message.content}")
        for citation in message.citations:
            print(f"  [{citation.number}] {_where(citation)}")
    return 0


def _delete_conversation(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    client.delete_conversation(args.conversation_id, args.session)
    print(f"deleted {args.conversation_id}")
    return 0


def _pdfs(path: Path) -> list[Path]:
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())
    return [path]


def _upload_dry_run(args: argparse.Namespace) -> int:
    files = _pdfs(args.path)
    for file in files:
        print(f"would upload {file} ({file.stat().st_size:,} bytes)")
    print(f"{len(files)} files, {sum(f.stat().st_size for f in files):,} bytes; nothing sent")
    return 0


@dataclass
class _UploadSummary:
    uploaded: int = 0
    already_stored: int = 0
    failed: list[str] = field(default_factory=list)
    pages: int = 0
    chunks: int = 0


def _upload(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    files = _pdfs(args.path)
    started = time.monotonic()
    summary = _UploadSummary()
    for index, file in enumerate(files):
        _progress(sys.stderr, index, len(files), file.name)
        try:
            response = client.upload_document(
                file,
                language=args.language,
                document_type=args.document_type,
                tags=args.tag,
                overwrite=args.overwrite,
            )
        except grpc.aio.AioRpcError as error:
            summary.failed.append(f"{file}: {error.code().name}: {error.details()}")
            continue
        summary.uploaded += 1
        summary.already_stored += response.deduplicated
        document = response.document
        if args.process:
            document = client.wait_for_document(document.document_id)
            if document.status == pb.DOCUMENT_STATUS_FAILED:
                summary.failed.append(f"{file}: {document.error}")
        summary.pages += document.page_count
        summary.chunks += document.chunk_count
    _progress(sys.stderr, len(files), len(files), "done")
    print(file=sys.stderr)
    for failure in summary.failed:
        print(f"failed: {failure}")
    processed = "" if args.process else " (processing continues on the server)"
    print(
        f"documents: {summary.uploaded} uploaded, {summary.already_stored} already stored, "
        f"{len(summary.failed)} failed; pages: {summary.pages}; chunks: {summary.chunks}; "
        f"seconds: {time.monotonic() - started:.1f}{processed}"
    )
    return 1 if summary.failed else 0


def _progress(stream: TextIO, done: int, total: int, name: str) -> None:
    width = 30
    filled = width * done // total if total else width
    stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name[:40]:<40}")
    stream.flush()


def _list(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    status = _STATUSES[args.status] if args.status else pb.DOCUMENT_STATUS_UNSPECIFIED
    for document in client.list_documents(status=status, tag=args.tag, language=args.language):
        print(_document_line(document))
    return 0


def _show(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    print(client.get_document(args.document_id))
    return 0


def _delete(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    client.delete_document(args.document_id)
    print(f"deleted {args.document_id}")
    return 0


def _reprocess(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    print(_document_line(client.reprocess_document(args.document_id)))
    return 0


def _reprocess_all(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    status = _STATUSES[args.status] if args.status else pb.DOCUMENT_STATUS_UNSPECIFIED
    print(f"queued {client.reprocess_all_documents(status)} documents")
    return 0


def _watch(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    document = None
    for update in client.watch_document(args.document_id):
        document = update.document
        print(f"{_status_name(document):<10} pages {update.pages_done} "
              f"chunks {update.chunks_done}/{update.chunks_total}")  # fmt: skip
    if document is not None and document.status == pb.DOCUMENT_STATUS_FAILED:
        print(f"failed: {document.error}")
        return 1
    return 0


def _status_name(document: pb.Document) -> str:
    return pb.DocumentStatus.Name(document.status).removeprefix("DOCUMENT_STATUS_")


def _document_line(document: pb.Document) -> str:
    return (
        f"{document.document_id}  {_status_name(document):<10} {document.page_count:>4} p "
        f"{document.chunk_count:>5} chunks  {document.title}"
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

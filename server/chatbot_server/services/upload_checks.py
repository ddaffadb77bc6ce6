"""What every upload must satisfy, streamed or resumable: its metadata, size and bytes."""

from __future__ import annotations

import grpc

from chatbot.v1 import document_service_pb2 as pb
from chatbot_server.documents.document_store import NewDocument
from chatbot_server.documents.pdf_extraction import PDF_MAGIC
from chatbot_server.platform.errors import ServiceError, bad_request
from chatbot_server.platform.validation import bounded_text, language_code

# Where PDF readers look for the header (some files carry junk before it).
_HEADER_WINDOW = 1024


def new_document(metadata: pb.UploadMetadata) -> NewDocument:
    filename = bounded_text("metadata.filename", metadata.filename, 255)
    given_title = bounded_text("metadata.title", metadata.title, 300)
    title = given_title or filename
    if not title:
        raise bad_request("metadata.title", "give a title or a filename")
    tags = [bounded_text("metadata.tags", tag, 50, required=True) for tag in metadata.tags]
    if len(tags) > 20:
        raise bad_request("metadata.tags", f"at most 20 tags, got {len(tags)}")
    if metadata.sha256 and not is_hex_sha256(metadata.sha256):
        raise bad_request("metadata.sha256", "must be 64 hexadecimal characters")
    return NewDocument(
        title=title,
        filename=filename,
        language=language_code("metadata.language", metadata.language),
        document_type=bounded_text("metadata.document_type", metadata.document_type, 50),
        tags=sorted(set(tags)),
        title_is_filename=not given_title,
    )


def is_hex_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def too_large(field: str, limit: int, size: int) -> ServiceError:
    error = bad_request(
        field,
        f"the document is larger than the limit of {limit} bytes; split or compress it",
        reason="DOCUMENT_TOO_LARGE",
        labelled=False,
    )
    error.metadata.update({"limit_bytes": str(limit), "received_bytes": str(size)})
    return error


def check_content(head: bytes | bytearray, sha256: str, expected_sha256: str) -> None:
    """Refuses an empty file, one that is not a PDF (`head` is its first bytes), and one
    whose SHA-256 is not the one announced."""
    if not head:
        raise bad_request(
            "chunk", "the upload carried no bytes", reason="UNSUPPORTED_DOCUMENT", labelled=False
        )
    if PDF_MAGIC not in head[:_HEADER_WINDOW]:
        raise bad_request(
            "chunk",
            "only PDF files are accepted, and these bytes do not start like one (%PDF-)",
            reason="UNSUPPORTED_DOCUMENT",
            labelled=False,
        )
    if expected_sha256 and sha256 != expected_sha256.lower():
        raise ServiceError(
            grpc.StatusCode.DATA_LOSS,
            "the received bytes do not match metadata.sha256; upload the file again",
            reason="CHECKSUM_MISMATCH",
        )

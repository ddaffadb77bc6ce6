"""Domain records to protobuf messages, where more than one servicer needs them."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from chatbot.v1 import chat_service_pb2, common_pb2
from chatbot_server.retrieval.hybrid_search import FULL_TEXT, VECTOR, Hit, RetrievalMode

_SIGNALS = {
    VECTOR: common_pb2.RETRIEVAL_SIGNAL_VECTOR,
    FULL_TEXT: common_pb2.RETRIEVAL_SIGNAL_FULL_TEXT,
}
FINISH_REASONS = {
    "stop": chat_service_pb2.FINISH_REASON_STOP,
    "length": chat_service_pb2.FINISH_REASON_LENGTH,
    "cancelled": chat_service_pb2.FINISH_REASON_CANCELLED,
    "error": chat_service_pb2.FINISH_REASON_ERROR,
    "content_filter": chat_service_pb2.FINISH_REASON_CONTENT_FILTER,
}
GROUNDINGS = {
    "unspecified": chat_service_pb2.GROUNDING_UNSPECIFIED,
    "answered": chat_service_pb2.GROUNDING_ANSWERED,
    "not_found": chat_service_pb2.GROUNDING_NOT_FOUND,
}
RETRIEVAL_MODES = {
    common_pb2.RETRIEVAL_MODE_UNSPECIFIED: RetrievalMode.HYBRID,
    common_pb2.RETRIEVAL_MODE_HYBRID: RetrievalMode.HYBRID,
    common_pb2.RETRIEVAL_MODE_VECTOR: RetrievalMode.VECTOR,
    common_pb2.RETRIEVAL_MODE_TEXT: RetrievalMode.TEXT,
}


def timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def retrieved_chunk(hit: Hit) -> common_pb2.RetrievedChunk:
    found = hit.candidate
    return common_pb2.RetrievedChunk(
        chunk_id=str(found.chunk_id),
        document_id=str(found.document_id),
        document_title=found.document_title,
        page_number=found.page_number,
        section_title=found.section_title,
        text=found.text,
        ordinal=found.ordinal,
        relevance_score=hit.relevance,
        vector_similarity=found.similarity,
        signals=[_SIGNALS[signal] for signal in hit.signals],
        vector_rank=found.vector_rank or 0 if VECTOR in hit.signals else 0,
        text_rank=found.text_rank or 0 if FULL_TEXT in hit.signals else 0,
        term_coverage=found.term_coverage,
    )

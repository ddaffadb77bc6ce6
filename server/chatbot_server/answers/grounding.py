"""Whether the documents answer a question, and what an offline answer quotes.

Pure functions. Offline, the decision rests on the question's words against the
collection rather than on a cosine threshold (whose values move with the model, the
language and the collection): a word the documents lack that is rare in everyday language
names something they never mention. With a model, the prompt asks it to reply
`NOT_IN_DOCUMENTS` alone when the sources do not answer; `NotFoundReply` recognises that
reply as it streams, holding back only text that could still become the marker.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from chatbot_server.retrieval.hybrid_search import Evidence, Hit
from chatbot_server.retrieval.languages import DEFAULT_LANGUAGE

NOT_FOUND_MARKER = "NOT_IN_DOCUMENTS"
# What answers say, in the question's language.
NOT_FOUND_TEXT = {
    "en": "The documents do not answer this question.",
    "de": "Die Dokumente beantworten diese Frage nicht.",
    "fr": "Les documents ne répondent pas à cette question.",
}
QUOTES_INTRO = {
    "en": "From the documents:",
    "de": "Aus den Dokumenten:",
    "fr": "D'après les documents :",
}
OFFLINE_NOTICE = {
    "en": "offline: no language model is configured; the answer quotes the retrieved passages",
    "de": "offline: kein Sprachmodell eingerichtet; die Antwort zitiert die gefundenen Passagen",
    "fr": "hors ligne : aucun modèle de langage n'est configuré ; la réponse cite les passages "
    "trouvés",
}
# The offline decision (`documents_answer`). The frequency floor (Zipf scale) was chosen on
# the dev set's tune half (`scripts/tune_retrieval.py`; the README has the figures). The
# share is a floor for questions off every document's topic, above any answerable
# question's share there.
MIN_MISSING_WORD_FREQUENCY = 2.6
MAX_MISSING_TERM_SHARE = 0.9
# Offline answers quote at most this many sources and sentences per source.
QUOTED_SOURCES = 3
QUOTED_SENTENCES = 2
# A source is quoted only if its relevance is at least this share of the best one's.
QUOTED_RELEVANCE_SHARE = 0.6

# A sentence ends at a stop followed by a space or the line's end, so that "read.csv" or
# "1.5" stays whole.
_SENTENCE = re.compile(r"\S.*?(?:[.!?]+(?=\s|$)|$)", re.MULTILINE)
_WORD = re.compile(r"[^\W_]+")
_STOP_WORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
     "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "so",
     "that", "the", "their", "them", "then", "there", "these", "this", "to", "was", "what",
     "when", "where", "which", "who", "why", "will", "with", "would", "you", "your"}
)  # fmt: skip


def localized(texts: dict[str, str], language: str) -> str:
    return texts.get(language, texts[DEFAULT_LANGUAGE])


def documents_answer(evidence: Evidence) -> bool:
    """Whether the documents can answer the question: every word of it they lack is an
    everyday word rather than the name of something they never mention, and they hold some
    of its informative words."""
    return (
        evidence.missing_word_frequency >= MIN_MISSING_WORD_FREQUENCY
        and evidence.missing_term_share < MAX_MISSING_TERM_SHARE
    )


def quoted_sources(hits: Sequence[Hit]) -> list[Hit]:
    """The sources an offline answer quotes: the best, and up to two more nearly as good."""
    if not hits:
        return []
    floor = hits[0].relevance * QUOTED_RELEVANCE_SHARE
    return [hit for hit in hits[:QUOTED_SOURCES] if hit.relevance >= floor]


def best_sentences(text: str, question: str, limit: int = QUOTED_SENTENCES) -> str:
    """The sentences of `text` sharing most words with `question`, in their order, joined
    with an ellipsis where sentences were skipped."""
    sentences = [m.group().strip() for m in _SENTENCE.finditer(text) if m.group().strip()]
    if len(sentences) <= limit:
        return " ".join(sentences)
    wanted = _stems(question)
    scored = sorted(
        range(len(sentences)),
        key=lambda i: (-len(_stems(sentences[i]) & wanted), i),
    )
    chosen = sorted(scored[:limit])
    parts = []
    for position, index in enumerate(chosen):
        if (position == 0 and index > 0) or (position > 0 and index != chosen[position - 1] + 1):
            parts.append("…")
        parts.append(sentences[index])
    return " ".join(parts)


def _stems(text: str) -> set[str]:
    """Words without stop words, cut to five letters: a stemmer's poor cousin, enough to
    match "reads" with "reading"."""
    return {w[:5] for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS}


class NotFoundReply:
    """Feed a model's reply as it streams; text comes back once it cannot be the start of
    the not-found marker. `not_found` tells whether the reply began with the marker."""

    def __init__(self) -> None:
        self._held = ""
        self._decided = False
        self.not_found = False

    def feed(self, text: str) -> str:
        if self._decided:
            return "" if self.not_found else text
        self._held += text
        start = self._held.lstrip()
        if start.startswith(NOT_FOUND_MARKER):
            self._decided, self.not_found = True, True
            return ""
        if NOT_FOUND_MARKER.startswith(start):
            return ""
        self._decided = True
        held, self._held = self._held, ""
        return held

    def flush(self) -> str:
        """What is still held at the end of the reply."""
        if self._decided:
            return ""
        self._decided = True
        held, self._held = self._held, ""
        return held

"""Which PostgreSQL text-search configuration stems a language."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+")

_CONFIGS = {
    "ar": "arabic", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "fi": "finnish", "fr": "french", "hu": "hungarian", "id": "indonesian",
    "it": "italian", "lt": "lithuanian", "nb": "norwegian", "ne": "nepali", "nl": "dutch",
    "nn": "norwegian", "no": "norwegian", "pt": "portuguese", "ro": "romanian",
    "ru": "russian", "sv": "swedish", "ta": "tamil", "tr": "turkish",
}  # fmt: skip


def plain_words(text: str) -> str:
    """A question as words only, for `websearch_to_tsquery`: a question is not query syntax,
    so no `-` excludes a word, no `"` opens a phrase and no `or` joins alternatives (and
    runs of `-` cannot overflow the parser's stack)."""
    return " ".join(w for w in _WORD.findall(text) if w.lower() != "or")


def text_search_config(language: str) -> str:
    """The configuration for a BCP-47 code ("en", "de-AT"); "simple" (no stemming) otherwise."""
    return _CONFIGS.get(language.split("-")[0].lower(), "simple")

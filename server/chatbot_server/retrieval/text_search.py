"""Which PostgreSQL text-search configuration stems a language."""

from __future__ import annotations

_CONFIGS = {
    "ar": "arabic", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "fi": "finnish", "fr": "french", "hu": "hungarian", "id": "indonesian",
    "it": "italian", "lt": "lithuanian", "nb": "norwegian", "ne": "nepali", "nl": "dutch",
    "nn": "norwegian", "no": "norwegian", "pt": "portuguese", "ro": "romanian",
    "ru": "russian", "sv": "swedish", "ta": "tamil", "tr": "turkish",
}  # fmt: skip


def text_search_config(language: str) -> str:
    """The configuration for a BCP-47 code ("en", "de-AT"); "simple" (no stemming) otherwise."""
    return _CONFIGS.get(language.split("-")[0].lower(), "simple")

"""The languages documents and questions are written in, and text prepared for full-text
search in each.

Detection uses Lingua (`lingua-language-detector`): its models ship inside the wheel, it is
built for short, mixed texts such as questions with command names in them, and it can be
limited to the languages the service reads. How common a word is in everyday English,
German or French comes from wordfreq's word lists (`wordfreq`, shipped in its wheel): a
question's word that the documents lack and everyday language rarely uses names something
they never mention (`answers.grounding`). Full-text search indexes a text prepared per
language rather than the text as shown:
  - accents folded ("système" and "systeme" meet; PostgreSQL's `unaccent` is a contrib
    module that not every server has);
  - French elisions split off ("l'installation", "d\u2019un" index "installation", "un");
  - German compounds followed by their parts that the same document uses as words of their
    own ("Konfigurationsdatei" also indexes "Konfiguration" and "Datei"), so a question
    naming a part finds the compound.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

SUPPORTED = ("en", "de", "fr")
DEFAULT_LANGUAGE = "en"
_LINGUA = {Language.ENGLISH: "en", Language.GERMAN: "de", Language.FRENCH: "fr"}
# Enough text to tell a document's language; reading more only costs time.
_DETECTION_SAMPLE_CHARS = 20_000
# A language is told only when its confidence leads the next one's by this much: a word
# such as "controller" belongs to several languages. Of the dev set's 300 questions, 4 fall
# below it and none above it is told wrongly.
MIN_CONFIDENCE_LEAD = 0.4

_WORD = re.compile(r"[^\W\d_]+")
# A word as full-text search reads one: letters and digits ("tag2upload", "IPv4").
_TOKEN = re.compile(r"[^\W_]+")
_ELISION = re.compile(
    r"\b(?:[cdjlmnst]|qu|jusqu|lorsqu|puisqu)['\u2019](?=[^\W\d_])", re.IGNORECASE
)
# Linking elements between the parts of a German compound ("Konfiguration-s-datei").
_LINKS = ("", "s", "es", "n", "en", "e", "er")
_INFLECTIONS = ("s", "n", "e", "en", "es", "er", "ern")
_MIN_PART = 4
# Word frequencies on the Zipf scale (`word_frequency`): words rarer than the floor are not
# kept, and COMMON stands for "no word to judge".
RARITY_FLOOR = 2.5
COMMON = 8.0


@cache
def _detector() -> LanguageDetector:
    return LanguageDetectorBuilder.from_languages(*_LINGUA).build()


def warm_up() -> None:
    """Loads the language models now rather than in the first caller's time (seconds)."""
    _detector().compute_language_confidence_values("warm up")


def load_word_lists() -> None:
    """Loads the everyday word frequencies questions are judged by, at start."""
    for language in SUPPORTED:
        _word_frequencies(language)


def detect_document_language(texts: Sequence[str]) -> str | None:
    """The language of a document's texts, read from passages spread over all of it (a
    translated manual often opens with a licence in English)."""
    step = max(1, sum(map(len, texts)) // _DETECTION_SAMPLE_CHARS)
    return detect_language(" ".join(texts[::step]))


def detect_language(text: str) -> str | None:
    """The language `text` is written in (one of SUPPORTED), or None when it cannot tell."""
    sample = text[:_DETECTION_SAMPLE_CHARS]
    if not _WORD.search(sample):
        return None
    first, second, *_ = _detector().compute_language_confidence_values(sample)
    if first.value - second.value < MIN_CONFIDENCE_LEAD:
        return None
    return _LINGUA[first.language]


@cache
def _word_frequencies(language: str) -> dict[str, float]:
    """Zipf frequencies (log10 of occurrences per billion words) of `language`'s words
    from wordfreq's large list, for the words at or above RARITY_FLOOR: the rarer ones all
    count as rare, and are not kept."""
    import wordfreq

    bins = wordfreq.read_cBpack(str(wordfreq.DATA_PATH / f"large_{language}.msgpack.gz"))
    return {
        word: zipf
        for centibels, words in enumerate(bins)
        if (zipf := 9 - centibels / 100) >= RARITY_FLOOR
        for word in words
    }


def word_frequency(word: str, language: str) -> float:
    """How common `word` is in everyday `language` (Zipf scale: 7 for "the", 3 for once in
    a million words; RARITY_FLOOR for names, commands and jargon). A German compound counts
    as common as its least common part when that is more (it splits into words:
    "Prozessortakt" into "Prozessor" and "Takt"), as compounds are rare as wholes."""
    frequencies = _word_frequencies(language)
    folded = word.casefold()
    whole = frequencies.get(folded, RARITY_FLOOR)
    if language != "de" or len(folded) < 2 * _MIN_PART:
        return whole
    return max(whole, _compound_frequency(folded, frequencies))


def _compound_frequency(word: str, frequencies: dict[str, float]) -> float:
    """The frequency of the least common part of the best split of a German compound into
    words of the list (linking elements allowed); RARITY_FLOOR when it does not split."""
    best = RARITY_FLOOR
    for start in range(_MIN_PART, len(word) - _MIN_PART + 1):
        head, tail = word[:start], word[start:]
        tail_frequency = frequencies.get(tail, RARITY_FLOOR)
        if tail_frequency <= best:
            continue
        for link in _LINKS:
            stem = head[: len(head) - len(link)] if head.endswith(link) else ""
            if len(stem) < _MIN_PART:
                continue
            head_frequency = frequencies.get(stem) or _compound_frequency(stem, frequencies)
            best = max(best, min(head_frequency, tail_frequency))
    return best


def rarest_word_frequency(words: Iterable[str], language: str) -> float:
    """`word_frequency` of the rarest of `words`; COMMON when there are none or the
    language has no word list here."""
    if language not in SUPPORTED:
        return COMMON
    return min((word_frequency(word, language) for word in words), default=COMMON)


def words_of(text: str, lexemes: Sequence[str]) -> list[str]:
    """The words of `text`, as written, that full-text search turned into one of `lexemes`
    (a stem is the start of its folded word, but for a letter or so: "librari" of
    "libraries")."""
    return [
        word
        for word in _TOKEN.findall(text)
        if any(_shares_stem(fold(word).lower(), lexeme) for lexeme in lexemes)
    ]


def _shares_stem(word: str, lexeme: str) -> bool:
    size = max(len(lexeme) - 1, 3)
    return len(word) >= size and word[:size] == lexeme[:size]


def fold(text: str) -> str:
    """The text without accents (ß stays: the German stemmer spells it out)."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize(
        "NFKC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )


def vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """The words of a document, lower-cased and folded, as compound parts are looked up."""
    return frozenset(
        word for text in texts for word in _WORD.findall(fold(text).lower()) if len(word) >= 4
    )


def search_texts(texts: Sequence[str], language: str) -> list[str]:
    """Each of a document's texts as full-text search indexes it (`search_text`)."""
    words = vocabulary(texts) if language.split("-")[0].lower() == "de" else frozenset()
    return [search_text(text, language, words) for text in texts]


def search_text(text: str, language: str, words: frozenset[str] = frozenset()) -> str:
    """`text` as full-text search indexes it in `language`; `words` is the document's
    vocabulary (German compounds are split into the parts it holds)."""
    prepared = fold(text)
    base = language.split("-")[0].lower()
    if base == "fr":
        prepared = _ELISION.sub("", prepared)
    elif base == "de" and words:
        parts = [
            part
            for word in {w.lower() for w in _WORD.findall(prepared)}
            if len(word) >= 2 * _MIN_PART
            for part in compound_parts(word, words)
        ]
        if parts:
            prepared += "\n" + " ".join(parts)
    return prepared


def compound_parts(word: str, words: frozenset[str]) -> list[str]:
    """The parts of a (lower-case, folded) German compound that `words` holds, head last:
    "konfigurationsdatei" -> ["konfiguration", "datei"]; [] when it splits into none."""
    for start in range(_MIN_PART, len(word) - _MIN_PART + 1):
        tail = _known(word[start:], words)
        if tail is None:
            continue
        head = word[:start]
        for link in _LINKS:
            stem = head[: len(head) - len(link)]
            known = _known(stem, words) if head.endswith(link) else None
            if known is not None:
                return [*(compound_parts(stem, words) or [known]), tail]
        return [*compound_parts(head, words), tail]
    return []


def _known(word: str, words: frozenset[str]) -> str | None:
    """The word as `words` holds it: itself, with a final "e" ("Schul-" of "Schule"), or
    without an inflection ("Servers")."""
    if len(word) < _MIN_PART:
        return None
    candidates = [word, word + "e"] + [
        word[: -len(ending)] for ending in _INFLECTIONS if word.endswith(ending)
    ]
    return next((c for c in candidates if len(c) >= _MIN_PART and c in words), None)

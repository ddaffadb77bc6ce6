"""The SSE parser and the citation renumbering, over many ways of splitting the stream."""

from __future__ import annotations

import itertools
import re

from hypothesis import given
from hypothesis import strategies as st

from chatbot_server.answers.citations import CitationRenumberer
from chatbot_server.answers.sse import SseEvent, SseParser

STREAM = (
    ": OPENROUTER PROCESSING\n\n"
    'data: {"a": 1}\n\n'
    "event: update\r\ndata: first line\r\ndata: second line\r\n\r\n"
    ": keep-alive\r\r"
    "data: [DONE]\n\n"
)
EXPECTED = [
    SseEvent("message", '{"a": 1}'),
    SseEvent("update", "first line\nsecond line"),
    SseEvent("message", "[DONE]"),
]


def feed_in_pieces(text: str, cuts: list[int]) -> list[SseEvent]:
    parser = SseParser()
    events = []
    start = 0
    for cut in [*sorted(set(cuts)), len(text)]:
        events += parser.feed(text[start:cut])
        start = cut
    return events


def test_parser_handles_comments_multiline_data_and_every_line_ending() -> None:
    assert feed_in_pieces(STREAM, []) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_parser_gives_the_same_events_however_the_stream_is_split(cuts: list[int]) -> None:
    assert feed_in_pieces(STREAM, cuts) == EXPECTED


def renumber(pieces: list[str], sources: int) -> tuple[str, list[int]]:
    renumberer = CitationRenumberer(sources)
    text = "".join(renumberer.feed(piece) for piece in pieces) + renumberer.flush()
    return text, renumberer.cited_sources


def test_markers_are_renumbered_by_first_use() -> None:
    text, cited = renumber(["Mount it [3]. Power [1] and mount [3]; see [2, 3]."], 3)
    assert text == "Mount it [1]. Power [2] and mount [1]; see [3][1]."
    assert cited == [3, 1, 2]


def test_markers_naming_no_source_are_removed() -> None:
    text, cited = renumber(["Fact [7]. Other [0]. Real [2]."], 3)
    assert text == "Fact . Other . Real [1]."
    assert cited == [2]


ANSWER = "Use port 1 [2]. The fan [1] stops [2][3]. Arrays [1] like a[0] stay. End [4]"


@given(st.lists(st.integers(min_value=0, max_value=len(ANSWER)), max_size=20))
def test_renumbering_does_not_depend_on_how_the_text_streams(cuts: list[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(ANSWER)]
    pieces = [ANSWER[a:b] for a, b in itertools.pairwise(bounds)]
    whole = renumber([ANSWER], 4)
    assert renumber(pieces, 4) == whole
    text, cited = whole
    numbers = [int(n) for n in re.findall(r"\[(\d+)\]", text)]
    assert sorted(set(numbers)) == list(range(1, len(cited) + 1))
    first_uses = list(dict.fromkeys(numbers))
    assert first_uses == sorted(first_uses)

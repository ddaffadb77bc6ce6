"""Properties of the chunker, over many generated texts."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from chatbot_server.documents.chunking import (
    ChunkingPolicy,
    TextBlock,
    chunk_blocks,
    normalize_text,
    split_spans,
)


def count_words(text: str) -> int:
    """A stand-in tokenizer: one token per word."""
    return len(text.split())


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzÄé0123456789", min_size=1, max_size=30)
sentences = st.lists(words, min_size=1, max_size=15).map(lambda ws: " ".join(ws) + ".")
paragraphs = st.lists(sentences, min_size=1, max_size=6).map(" ".join)
texts = st.lists(paragraphs, min_size=1, max_size=4).map("\n\n".join)
policies = st.builds(
    lambda size, overlap_share, tokens: ChunkingPolicy(size, int(size * overlap_share), tokens),
    st.integers(min_value=20, max_value=1500),
    st.floats(min_value=0, max_value=0.5),
    st.integers(min_value=3, max_value=300),
)


@settings(max_examples=300, deadline=None)
@given(texts, policies)
def test_spans_cover_every_character_in_order_within_limits(
    text: str, policy: ChunkingPolicy
) -> None:
    text = normalize_text(text)
    spans = split_spans(text, policy, count_words)
    covered = set()
    for start, end in spans:
        covered.update(range(start, end))
        assert end - start <= policy.size_chars
        assert count_words(text[start:end]) <= policy.max_tokens or end - start == 1
    missing = [i for i, char in enumerate(text) if i not in covered and not char.isspace()]
    assert missing == []
    for (start, end), (next_start, next_end) in itertools.pairwise(spans):
        assert start < next_start and end < next_end
        assert end - next_start <= policy.overlap_chars
        assert next_start <= end or text[end:next_start].isspace()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.sampled_from(["", "Intro", "Setup"]), texts)))
def test_chunks_keep_pages_in_order_and_never_lose_words(
    raw_blocks: list[tuple[int, str, str]],
) -> None:
    blocks = [
        TextBlock(page, section, text)
        for page, section, text in sorted(raw_blocks, key=lambda block: block[0])
    ]
    policy = ChunkingPolicy(size_chars=300, overlap_chars=60, max_tokens=40)
    chunks = chunk_blocks(blocks, policy, count_words)
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    pages = [chunk.page_number for chunk in chunks]
    assert pages == sorted(pages)
    for page, section in {(b.page_number, b.section_title) for b in blocks}:
        source = " ".join(
            b.text for b in blocks if (b.page_number, b.section_title) == (page, section)
        ).split()
        chunked = " ".join(
            c.text for c in chunks if (c.page_number, c.section_title) == (page, section)
        ).split()
        assert set(source) <= set(chunked)
    assert all(chunk.token_count == count_words(chunk.text) for chunk in chunks)


def test_a_chunk_ends_at_a_sentence_boundary_when_one_is_near() -> None:
    text = "First sentence is here. " * 30
    policy = ChunkingPolicy(size_chars=200, overlap_chars=40, max_tokens=1000)
    chunks = chunk_blocks([TextBlock(1, "", text)], policy, count_words)
    assert len(chunks) > 1
    assert all(chunk.text.endswith(".") for chunk in chunks)
    assert all(chunk.text.startswith("First") for chunk in chunks)


def test_the_token_limit_splits_text_that_fits_in_characters() -> None:
    text = " ".join(["word"] * 100)
    policy = ChunkingPolicy(size_chars=10_000, overlap_chars=0, max_tokens=30)
    chunks = chunk_blocks([TextBlock(1, "", text)], policy, count_words)
    assert all(chunk.token_count <= 30 for chunk in chunks)
    assert sum(chunk.token_count for chunk in chunks) == 100


def test_sections_and_pages_start_new_chunks() -> None:
    blocks = [
        TextBlock(1, "Intro", "Short intro."),
        TextBlock(1, "Setup", "Plug it in."),
        TextBlock(2, "Setup", "Turn it on."),
    ]
    chunks = chunk_blocks(blocks, ChunkingPolicy(), count_words)
    assert [(c.page_number, c.section_title, c.text) for c in chunks] == [
        (1, "Intro", "Short intro."),
        (1, "Setup", "Plug it in."),
        (2, "Setup", "Turn it on."),
    ]


def test_a_word_longer_than_a_chunk_is_cut_without_losing_characters() -> None:
    text = "x" * 500
    spans = split_spans(text, ChunkingPolicy(size_chars=120, overlap_chars=20), count_words)
    assert "".join(text[start:end] for start, end in spans).count("x") >= 500
    assert all(end - start <= 120 for start, end in spans)

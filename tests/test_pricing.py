"""The pricing table and cost arithmetic, without a server."""

from __future__ import annotations

from chatbot_server.money.pricing import (
    FALLBACK_PRICE,
    call_cost_micro_usd,
    price_of,
    to_usd,
    worst_case_micro_usd,
)


def test_provider_prefixes_and_dated_variants_find_their_price() -> None:
    assert price_of("openai/gpt-4o-mini") == price_of("gpt-4o-mini-2024-07-18")
    assert price_of("openai/gpt-4o").prompt_per_million == 2.50  # type: ignore[union-attr]
    assert price_of("unknown/model") is None


def test_cost_is_whole_micro_dollars_rounded_up() -> None:
    assert call_cost_micro_usd("gpt-4o-mini", 120, 30, None) == (36, "pricing_table")
    assert call_cost_micro_usd("text-embedding-3-small", 1, 0, None) == (1, "pricing_table")


def test_provider_reported_cost_wins_over_the_table() -> None:
    assert call_cost_micro_usd("gpt-4o-mini", 120, 30, 0.0025) == (2500, "provider")
    assert to_usd(2500) == 0.0025


def test_unknown_models_and_estimated_tokens_are_marked_estimated() -> None:
    # 1000 x $3 + 1000 x $15 per million tokens, the dearest price in the table.
    assert price_of("claude-3-5-sonnet") == FALLBACK_PRICE
    assert call_cost_micro_usd("unknown", 1000, 1000, None) == (18_000, "estimated")
    assert call_cost_micro_usd("gpt-4o-mini", 120, 30, None, tokens_estimated=True) == (
        36,
        "estimated",
    )


def test_worst_case_counts_a_token_per_prompt_byte_and_every_output_token() -> None:
    # 10 bytes x $0.15 + 100 x $0.60 per million tokens = 61.5 micro-USD, rounded up.
    assert worst_case_micro_usd("openai/gpt-4o-mini", len(b"0123456789"), 100) == 62
    assert worst_case_micro_usd("gpt-4o-mini", len("é".encode()), 0) == 1

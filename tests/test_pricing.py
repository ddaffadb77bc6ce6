"""The pricing table and cost arithmetic, without a server."""

from __future__ import annotations

from chatbot_server.pricing import call_cost_micro_usd, cost_micro_usd, price_of, to_usd


def test_provider_prefixes_and_dated_variants_find_their_price() -> None:
    assert price_of("openai/gpt-4o-mini") == price_of("gpt-4o-mini-2024-07-18")
    assert price_of("openai/gpt-4o").prompt_per_million == 2.50  # type: ignore[union-attr]
    assert price_of("unknown/model") is None


def test_cost_is_whole_micro_dollars_rounded_up() -> None:
    assert cost_micro_usd("gpt-4o-mini", 120, 30) == 36
    assert cost_micro_usd("text-embedding-3-small", 1, 0) == 1
    assert cost_micro_usd("unknown", 1000, 1000) is None


def test_provider_reported_cost_wins_over_the_table() -> None:
    assert call_cost_micro_usd("gpt-4o-mini", 120, 30, 0.0025) == (2500, True)
    assert call_cost_micro_usd("gpt-4o-mini", 120, 30, None) == (36, False)
    assert call_cost_micro_usd("unknown", 120, 30, None) == (0, False)
    assert to_usd(2500) == 0.0025

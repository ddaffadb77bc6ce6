"""What model calls cost: USD per million tokens, and arithmetic in integer micro-USD."""

from __future__ import annotations

import math
from dataclasses import dataclass

MICRO_USD_PER_USD = 1_000_000


@dataclass(frozen=True)
class Price:
    """USD per million prompt (input) and completion (output) tokens."""

    prompt_per_million: float
    completion_per_million: float


# Keyed by the model name without the provider prefix ("openai/gpt-4o-mini" -> "gpt-4o-mini").
PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4o": Price(2.50, 10.00),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "mistral-7b-instruct": Price(0.20, 0.20),
    "text-embedding-3-small": Price(0.02, 0.0),
}


def price_of(model: str) -> Price | None:
    """The price of a model, matching "provider/name" and dated or tagged variants of name."""
    name = model.rsplit("/", 1)[-1].lower()
    for known in sorted(PRICES, key=len, reverse=True):
        if name == known or name.startswith(known + "-") or name.startswith(known + ":"):
            return PRICES[known]
    return None


# A model missing from the table is charged, and reserved for, at the dearest known price:
# a budget must never be overrun because a model's price is unknown.
FALLBACK_PRICE = max(PRICES.values(), key=lambda p: p.completion_per_million)

# Where a call's cost figure comes from, as `answer_logs.cost_source` records it.
PROVIDER = "provider"
PRICING_TABLE = "pricing_table"
ESTIMATED = "estimated"
FREE = "free"


def call_cost_micro_usd(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    provider_cost_usd: object,
    tokens_estimated: bool = False,
) -> tuple[int, str]:
    """What a call cost and where that figure comes from: the provider's reported USD when
    it gave a number; else the pricing table; else (a model not in the table, or tokens
    estimated from characters because the call was cut short) an estimate."""
    if isinstance(provider_cost_usd, int | float):
        return round(provider_cost_usd * MICRO_USD_PER_USD), PROVIDER
    price = price_of(model)
    micro = _micro_usd(price or FALLBACK_PRICE, prompt_tokens, completion_tokens)
    if price is None or tokens_estimated:
        return micro, ESTIMATED
    return micro, PRICING_TABLE


def worst_case_micro_usd(model: str, prompt_bytes: int, max_output_tokens: int) -> int:
    """The most a call can cost: a byte-level tokenizer makes at most one token per UTF-8
    byte of the prompt, and the provider stops at `max_output_tokens`."""
    price = price_of(model) or FALLBACK_PRICE
    return _micro_usd(price, prompt_bytes, max_output_tokens)


def _micro_usd(price: Price, prompt_tokens: int, completion_tokens: int) -> int:
    # Tokens x USD per million tokens is exactly micro-USD; rounded up to a whole one.
    exact = (
        prompt_tokens * price.prompt_per_million + completion_tokens * price.completion_per_million
    )
    return math.ceil(exact)


def to_usd(micro_usd: int) -> float:
    return micro_usd / MICRO_USD_PER_USD

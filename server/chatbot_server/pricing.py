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


def cost_micro_usd(model: str, prompt_tokens: int, completion_tokens: int) -> int | None:
    """Cost of a call from the pricing table, rounded up to a whole micro-dollar; None when
    the model is not in the table."""
    price = price_of(model)
    if price is None:
        return None
    # Tokens x USD per million tokens is exactly micro-USD.
    exact = (
        prompt_tokens * price.prompt_per_million + completion_tokens * price.completion_per_million
    )
    return math.ceil(exact)


def call_cost_micro_usd(
    model: str, prompt_tokens: int, completion_tokens: int, provider_cost_usd: object
) -> tuple[int, bool]:
    """What a call cost, and whether the provider said so: its reported USD when it gave a
    number, else the pricing table (0 for a model not in it)."""
    if isinstance(provider_cost_usd, int | float):
        return round(provider_cost_usd * MICRO_USD_PER_USD), True
    return cost_micro_usd(model, prompt_tokens, completion_tokens) or 0, False


def to_usd(micro_usd: int) -> float:
    return micro_usd / MICRO_USD_PER_USD

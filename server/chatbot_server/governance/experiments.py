"""A/B experiments: which variant a conversation's answers get, and the active experiment.

At most one experiment is active at a time (a unique index holds it). A conversation is
assigned by hashing its id with the experiment's, so every answer in it gets the same
variant on every replica, and the shares follow the weights.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from chatbot_server.governance import experiment_store
from chatbot_server.governance.experiment_store import ExperimentRecord, Variant


@dataclass(frozen=True)
class Assignment:
    experiment_id: UUID
    experiment_name: str
    variant: Variant


def assign_variant(experiment_id: UUID, conversation_id: UUID, variants: list[Variant]) -> Variant:
    """The variant of a conversation: a point on [0, total weight) from a hash of both ids,
    then the variant whose cumulative weight covers it."""
    digest = hashlib.sha256(experiment_id.bytes + conversation_id.bytes).digest()
    point = int.from_bytes(digest[:8], "big") % sum(v.weight for v in variants)
    for variant in variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    raise AssertionError("weights cover every point")


class ActiveExperiment:
    """The active experiment, read at most every few seconds per replica."""

    def __init__(self, pool: asyncpg.Pool, cache_seconds: float = 2.0) -> None:
        self._pool = pool
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, ExperimentRecord | None] = (0.0, None)

    async def assign(self, conversation_id: UUID) -> Assignment | None:
        experiment = await self._current()
        if experiment is None:
            return None
        variant = assign_variant(experiment.id, conversation_id, experiment.variants)
        return Assignment(experiment.id, experiment.name, variant)

    def forget(self) -> None:
        """Reads the active experiment afresh at the next answer (after a change here)."""
        self._cached = (0.0, None)

    async def _current(self) -> ExperimentRecord | None:
        expires, experiment = self._cached
        if time.monotonic() < expires:
            return experiment
        experiment = await experiment_store.active_experiment(self._pool)
        self._cached = (time.monotonic() + self._cache_seconds, experiment)
        return experiment

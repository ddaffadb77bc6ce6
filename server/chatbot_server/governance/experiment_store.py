"""The `experiments` table: the named queries."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

_COLUMNS = "id, name, description, variants, active, created_at, updated_at"


@dataclass(frozen=True)
class Variant:
    name: str
    weight: int
    llm_model: str = ""
    top_k: int = 0
    temperature: float | None = None
    system_prompt: str = ""


@dataclass(frozen=True)
class ExperimentRecord:
    id: UUID
    name: str
    description: str
    variants: list[Variant]
    active: bool
    created_at: datetime
    updated_at: datetime


def _record(row: asyncpg.Record) -> ExperimentRecord:
    values = dict(row)
    values["variants"] = [Variant(**v) for v in json.loads(values["variants"])]
    return ExperimentRecord(**values)


def _variants_json(variants: list[Variant]) -> str:
    return json.dumps([asdict(v) for v in variants])


async def insert_experiment(
    pool: asyncpg.Pool, name: str, description: str, variants: list[Variant], active: bool
) -> ExperimentRecord:
    row = await pool.fetchrow(
        f"""
        INSERT INTO experiments (name, description, variants, active)
        VALUES ($1, $2, $3::jsonb, $4) RETURNING {_COLUMNS}
        """,
        name, description, _variants_json(variants), active,
    )  # fmt: skip
    return _record(row)


async def get_experiment(pool: asyncpg.Pool, experiment_id: UUID) -> ExperimentRecord | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM experiments WHERE id = $1", experiment_id)
    return _record(row) if row is not None else None


async def active_experiment(pool: asyncpg.Pool) -> ExperimentRecord | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM experiments WHERE active")
    return _record(row) if row is not None else None


async def list_experiments(
    pool: asyncpg.Pool, limit: int, after: tuple[datetime, UUID] | None
) -> list[ExperimentRecord]:
    rows = await pool.fetch(
        f"""
        SELECT {_COLUMNS} FROM experiments
        WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2::uuid))
        ORDER BY created_at DESC, id DESC LIMIT $3
        """,
        *(after or (None, None)), limit,
    )  # fmt: skip
    return [_record(row) for row in rows]


async def update_experiment(pool: asyncpg.Pool, experiment: ExperimentRecord) -> ExperimentRecord:
    row = await pool.fetchrow(
        f"""
        UPDATE experiments
        SET name = $2, description = $3, variants = $4::jsonb, active = $5, updated_at = now()
        WHERE id = $1 RETURNING {_COLUMNS}
        """,
        experiment.id, experiment.name, experiment.description,
        _variants_json(experiment.variants), experiment.active,
    )  # fmt: skip
    return _record(row)

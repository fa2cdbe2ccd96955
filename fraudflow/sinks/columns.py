"""The decision store's columns, defined once: name, SQL type, COPY type and value.

``alerts`` and ``decisions`` share these columns. The table DDL
(:data:`~fraudflow.sinks.schema.COLUMNS`), the sink's COPY column list and types
(:data:`WRITE_COLUMNS`) and the row of one decision (:func:`decision_row`) all derive from
:data:`DECISION_COLUMNS`, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fraudflow.records import Decision

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Column:
    """One column: ``sql`` its type and constraints in CREATE TABLE; ``copy`` the type the
    sink COPYs it as and ``value`` how it reads a decision (both None for a column the
    server fills)."""

    name: str
    sql: str
    copy: str | None = None
    value: Callable[[Decision], Any] | None = None


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


DECISION_COLUMNS: tuple[Column, ...] = (
    Column("alert_id", "text             not null", "text", lambda d: d.alert_id),
    Column("event_time", "timestamptz      not null", "timestamptz", lambda d: _utc(d.txn.ts)),
    Column(
        "processed_at", "timestamptz      not null", "timestamptz", lambda d: _utc(d.processed_at)
    ),
    Column("transaction_id", "text             not null", "text", lambda d: d.txn.transaction_id),
    Column("user_id", "text             not null", "text", lambda d: d.txn.user_id),
    Column("amount", "double precision not null", "float8", lambda d: d.txn.amount),
    Column("currency", "text             not null", "text", lambda d: d.txn.currency),
    Column("merchant_id", "text", "text", lambda d: d.txn.merchant_id),
    Column("country", "text", "text", lambda d: d.txn.country),
    Column("score", "double precision not null", "float8", lambda d: d.score),
    Column(
        "tier",
        "text             not null check (tier in ('approve', 'review', 'block'))",
        "text",
        lambda d: d.tier,
    ),
    Column("detector_scores", "jsonb            not null", "jsonb", lambda d: d.detector_scores),
    Column(
        "rule_ids",
        "text[]           not null default '{{}}'",
        "text[]",
        lambda d: [h.rule_id for h in d.rule_hits],
    ),
    Column(
        "rule_hits",
        "jsonb            not null default '[]'",
        "jsonb",
        lambda d: [h.to_dict() for h in d.rule_hits],
    ),
    Column(
        "reasons", "jsonb            not null", "jsonb", lambda d: [r.to_dict() for r in d.reasons]
    ),
    Column("rules_version", "text             not null", "text", lambda d: d.rules_version),
    Column("model_version", "text             not null", "text", lambda d: d.model_version),
    Column("late", "boolean          not null default false", "bool", lambda d: d.late),
    Column("source_topic", "text", "text", lambda d: d.txn.topic or None),
    Column(
        "source_partition",
        "integer",
        "int4",
        lambda d: d.txn.partition if d.txn.partition >= 0 else None,
    ),
    Column(
        "source_offset", "bigint", "int8", lambda d: d.txn.offset if d.txn.offset >= 0 else None
    ),
    Column("written_at", "timestamptz      not null default now()"),
)

PRIMARY_KEY = ("alert_id", "event_time")

# the columns the sink writes, in COPY order, with their PostgreSQL types
WRITE_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (c.name, c.copy) for c in DECISION_COLUMNS if c.copy is not None
)

_VALUES: tuple[Callable[[Decision], Any], ...] = tuple(
    c.value for c in DECISION_COLUMNS if c.value is not None
)


def decision_row(d: Decision) -> Row:
    """The row of one decision, in :data:`WRITE_COLUMNS` order (pure)."""
    return tuple([v(d) for v in _VALUES])


def ddl() -> str:
    """The column list of CREATE TABLE (``{{}}`` is a literal ``{}`` for ``sql.SQL.format``)."""
    lines = [f"    {c.name:<16} {c.sql}," for c in DECISION_COLUMNS]
    return "\n" + "\n".join(lines) + f"\n    primary key ({', '.join(PRIMARY_KEY)})\n"

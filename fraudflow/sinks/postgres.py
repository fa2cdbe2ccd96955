"""Decisions and alerts to PostgreSQL / TimescaleDB, batched and idempotent.

Each ``write_batch`` is one transaction: COPY the batch into a session temp
table, then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into ``alerts``
(tier >= review) and, unless ``alerts_only``, into ``decisions`` (every
decision). The key is ``(alert_id, event_time)``; ``event_time`` is fixed for
an ``alert_id`` (the id hashes the transaction), so a replay after a restart
never adds a row. On the natively partitioned layout the monthly partitions a
batch needs are created first (see :mod:`fraudflow.sinks.schema`).

A store that is down is retried with backoff up to ``retry_limit``, then the
sink raises :class:`~fraudflow.sinks.retry.SinkUnavailable` and the process
exits for the orchestrator to restart it. The DSN is a ``Secret``: it is
revealed only to psycopg and scrubbed from every message.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from psycopg import sql
from psycopg.types.json import set_json_dumps

from fraudflow.config.settings import Secret
from fraudflow.records import Decision
from fraudflow.sinks import metrics
from fraudflow.sinks.retry import Retrier, secret_parts
from fraudflow.sinks.schema import (
    WRITE_COLUMNS,
    apply_migrations,
    ensure_month_partition,
    existing_partitions,
    month_start,
    partition_name,
    table_layout,
)

SINK = "postgres"
DEFAULT_RETRY_LIMIT = timedelta(seconds=60)
STAGE = "fraudflow_stage"
TRANSIENT: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError)

Row = tuple[Any, ...]


def _json_dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def decision_row(d: Decision) -> Row:
    """The row of one decision, in :data:`WRITE_COLUMNS` order (pure)."""
    t = d.txn
    return (
        d.alert_id,
        datetime.fromtimestamp(t.ts, UTC),
        datetime.fromtimestamp(d.processed_at, UTC),
        t.transaction_id,
        t.user_id,
        t.amount,
        t.currency,
        t.merchant_id,
        t.country,
        d.score,
        d.tier,
        d.detector_scores,
        [str(h["id"]) for h in d.rule_hits],
        d.rule_hits,
        [r.to_dict() for r in d.reasons],
        d.rules_version,
        d.model_version,
        d.late,
        t.topic or None,
        t.partition if t.partition >= 0 else None,
        t.offset if t.offset >= 0 else None,
    )


def months_of(decisions: Sequence[Decision]) -> set[tuple[int, int]]:
    """The (year, month) of every event time in a batch."""
    return {month_start(d.txn.ts) for d in decisions}


def _connect(dsn: Secret, connect_timeout: int) -> psycopg.Connection[tuple[Any, ...]]:
    conn = psycopg.connect(
        dsn.reveal(), autocommit=True, connect_timeout=connect_timeout, application_name="fraudflow"
    )
    set_json_dumps(_json_dumps, context=conn)
    return conn


def migrate(dsn: Secret, *, retry_limit: timedelta = DEFAULT_RETRY_LIMIT) -> list[str]:
    """Apply the pending schema migrations; the ids applied (empty when up to date)."""
    retrier = Retrier(SINK, retry_limit, TRANSIENT, tuple(secret_parts(dsn.reveal())))

    def run() -> list[str]:
        with _connect(dsn, 5) as conn:
            return apply_migrations(conn)

    return retrier.call(run)


class _PostgresPartition(StatelessSinkPartition[Decision]):
    """Owns one connection; reconnects after a failure."""

    def __init__(
        self, dsn: Secret, alerts_only: bool, retrier: Retrier, connect_timeout: int
    ) -> None:
        self._dsn = dsn
        self._alerts_only = alerts_only
        self._retrier = retrier
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._partitioned = False
        self._migrated = False
        self._known: set[str] = set()
        self._tables = ("alerts",) if alerts_only else ("alerts", "decisions")
        cols = sql.SQL(", ").join(sql.Identifier(c) for c, _ in WRITE_COLUMNS)
        self._copy = sql.SQL("copy {} ({}) from stdin").format(sql.Identifier(STAGE), cols)
        self._insert = {
            table: sql.SQL(
                "insert into {t} ({c}) select {c} from {s}{w} on conflict do nothing"
            ).format(
                t=sql.Identifier(table),
                c=cols,
                s=sql.Identifier(STAGE),
                w=sql.SQL(" where tier <> 'approve'" if table == "alerts" else ""),
            )
            for table in self._tables
        }
        self._types = [t for _, t in WRITE_COLUMNS]

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = _connect(self._dsn, self._connect_timeout)
        try:
            if not self._migrated:
                apply_migrations(conn)
                self._migrated = True
            self._partitioned = table_layout(conn, "alerts") == "partitioned"
            if self._partitioned:
                self._known = set().union(*(existing_partitions(conn, t) for t in self._tables))
            stage_cols = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in WRITE_COLUMNS
            )
            conn.execute(
                sql.SQL("create temp table if not exists {} ({}) on commit delete rows").format(
                    sql.Identifier(STAGE), stage_cols
                )
            )
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def _write(self, rows: Sequence[Row], months: set[tuple[int, int]]) -> None:
        conn = self._connection()
        if self._partitioned:
            for year, month in sorted(months):
                for table in self._tables:
                    name = partition_name(table, year, month)
                    if name not in self._known:
                        ensure_month_partition(conn, table, year, month)
                        self._known.add(name)
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(self._copy) as copy:
                copy.set_types(self._types)
                for row in rows:
                    copy.write_row(row)
            for table in self._tables:
                cur.execute(self._insert[table])

    def write_batch(self, items: list[Decision]) -> None:
        """Write the batch in one transaction, retrying while the store is down."""
        batch = items if not self._alerts_only else [d for d in items if d.is_alert]
        if not batch:
            return
        started = time.perf_counter()
        rows = [decision_row(d) for d in batch]
        months = months_of(batch)
        self._retrier.call(lambda: self._write(rows, months), on_failure=self._drop)
        metrics.observe_sink_write(SINK, len(rows), time.perf_counter() - started)

    def close(self) -> None:
        self._drop()


class PostgresSink(DynamicSink[Decision]):
    """Every worker writes its decisions to ``alerts`` (and ``decisions``).

    ``alerts_only``: skip the ``decisions`` table and write only tier >= review.
    ``retry_limit``: how long a down server is retried before the sink raises.
    """

    def __init__(
        self,
        dsn: Secret,
        *,
        alerts_only: bool = False,
        retry_limit: timedelta = DEFAULT_RETRY_LIMIT,
        connect_timeout: int = 5,
        seed: int = 0,
    ) -> None:
        self.dsn = dsn if isinstance(dsn, Secret) else Secret(dsn)
        self.alerts_only = alerts_only
        self.retry_limit = retry_limit
        self.connect_timeout = connect_timeout
        self.seed = seed

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PostgresPartition:
        del step_id, worker_count
        retrier = Retrier(
            SINK,
            self.retry_limit,
            TRANSIENT,
            tuple(secret_parts(self.dsn.reveal())),
            seed=self.seed + worker_index,
        )
        return _PostgresPartition(self.dsn, self.alerts_only, retrier, self.connect_timeout)

    def __repr__(self) -> str:
        return f"PostgresSink(dsn={self.dsn!r}, alerts_only={self.alerts_only})"

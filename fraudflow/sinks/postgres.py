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
exits for the orchestrator to restart it. A connection refused for good (wrong
password, missing database or role) is not retried: it raises
:class:`~fraudflow.sinks.retry.SinkError` at once, at start-up too.

A batch the server refuses for the content of some rows (a ``DataError`` or
``IntegrityError``: a NUL in a text, a number out of range, ...) is split in
halves until the refused rows are alone; the others are written and each
refused decision goes to the dead-letter output (code ``sink_rejected``, the
server's message) instead of stopping the flow.

The DSN is a ``Secret``: it is revealed only to psycopg and scrubbed from
every message.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from psycopg import sql
from psycopg.types.json import set_json_dumps

from fraudflow.config.settings import Secret
from fraudflow.observability import metrics
from fraudflow.records import DeadLetter, Decision
from fraudflow.sinks.columns import WRITE_COLUMNS, Row, decision_row
from fraudflow.sinks.rejects import Rejects
from fraudflow.sinks.retry import Retrier, scrub, secret_parts
from fraudflow.sinks.schema import (
    apply_migrations,
    create_stage,
    detect_timescale,
    ensure_month_partition,
    existing_partitions,
    month_start,
    partition_name,
    table_layout,
)

log = logging.getLogger(__name__)

SINK = "postgres"
DEFAULT_RETRY_LIMIT = timedelta(seconds=60)
STAGE = "fraudflow_stage"
TRANSIENT: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
# errors caused by the content of a row: isolate it and dead-letter it
CONTENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.DataError,
    psycopg.IntegrityError,
    UnicodeEncodeError,  # a lone surrogate in a text: psycopg cannot encode it
)
# connection failures that no retry fixes (libpq messages; the server sends no SQLSTATE
# before the session exists)
_PERMANENT_MARKS = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "no pg_hba.conf entry",
    "does not exist",  # database "x" / role "x"
    "invalid connection option",
    "invalid dsn",
    "invalid integer value",
    "could not translate host name",
)
_PERMANENT_SQLSTATES = ("28000", "28P01", "3D000", "42501")


def _json_dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def months_of(decisions: Sequence[Decision]) -> set[tuple[int, int]]:
    """The (year, month) of every event time in a batch."""
    return {month_start(d.txn.ts) for d in decisions}


def permanent_failure(exc: BaseException) -> bool:
    """True for a connection error no retry can fix (auth, missing database or role, bad DSN).

    >>> permanent_failure(psycopg.OperationalError('FATAL:  database "x" does not exist'))
    True
    >>> permanent_failure(psycopg.OperationalError("connection refused"))
    False
    """
    if getattr(exc, "sqlstate", None) in _PERMANENT_SQLSTATES:
        return True
    text = str(exc).lower()
    return any(mark in text for mark in _PERMANENT_MARKS)


def _retrier(dsn: Secret, limit: timedelta, seed: int = 0) -> Retrier:
    return Retrier(
        SINK,
        limit,
        TRANSIENT,
        tuple(secret_parts(dsn.reveal())),
        permanent=permanent_failure,
        seed=seed,
    )


def _connect(dsn: Secret, connect_timeout: int) -> psycopg.Connection[tuple[Any, ...]]:
    conn = psycopg.connect(
        dsn.reveal(), autocommit=True, connect_timeout=connect_timeout, application_name="fraudflow"
    )
    set_json_dumps(_json_dumps, context=conn)
    return conn


def migrate(
    dsn: Secret, *, retry_limit: timedelta = DEFAULT_RETRY_LIMIT, layout: str = "auto"
) -> list[str]:
    """Apply the pending schema migrations; the ids applied (empty when up to date).

    A down server is retried up to ``retry_limit`` (``FRAUDFLOW_SINK_RETRY_LIMIT``);
    a refused connection (password, missing database) or a bad DSN fails at once.
    ``layout``: see :func:`fraudflow.sinks.schema.apply_migrations`.
    """

    def run() -> list[str]:
        with _connect(dsn, 5) as conn:
            applied = apply_migrations(conn, layout=layout)
            if not applied:  # a fresh schema logged its layout while being made
                current = table_layout(conn, "alerts")
                if current == "timescale":
                    log.info("%s", detect_timescale(conn, create=False).describe())
                else:
                    log.info("PostgreSQL sink: layout %s (tables exist)", current)
            return applied

    return _retrier(dsn, retry_limit).call(run)


class _PostgresPartition(StatelessSinkPartition[Decision]):
    """Owns one connection; reconnects after a failure."""

    def __init__(
        self,
        dsn: Secret,
        alerts_only: bool,
        retrier: Retrier,
        connect_timeout: int,
        *,
        layout: str = "auto",
        rejects: Rejects,
    ) -> None:
        self._dsn = dsn
        self._layout = layout
        self._rejects = rejects
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
                apply_migrations(conn, layout=self._layout)
                self._migrated = True
            self._partitioned = table_layout(conn, "alerts") == "partitioned"
            if self._partitioned:
                self._known = set().union(*(existing_partitions(conn, t) for t in self._tables))
            create_stage(conn, STAGE, WRITE_COLUMNS)
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
        """One transaction for ``rows``; raises what the server (or COPY) raised."""
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

    def _write_isolating(
        self, rows: Sequence[Row], months: set[tuple[int, int]]
    ) -> list[tuple[int, str]]:
        """Write ``rows``; the (index, message) of each row refused for its content.

        The whole batch first (the usual case: one transaction); after a content
        error, halves, recursively, so ``k`` bad rows of ``n`` cost about
        ``2 k log2(n)`` extra transactions and every good row is written.
        """
        self._connection()  # connection and migration errors are not a row's fault: raise them
        rejected: list[tuple[int, str]] = []

        def go(lo: int, hi: int) -> None:
            try:
                self._write(rows[lo:hi], months)
            except CONTENT_ERRORS as exc:
                if hi - lo == 1:
                    text = str(exc).splitlines()[0] if str(exc) else ""
                    rejected.append((lo, f"{type(exc).__name__}: {text}"))
                    return
                mid = (lo + hi) // 2
                go(lo, mid)
                go(mid, hi)

        go(0, len(rows))
        return rejected

    def write_batch(self, items: list[Decision]) -> None:
        """Write the batch in one transaction, retrying while the store is down.

        Decisions the server refuses for their content are dead-lettered (see the
        module doc); the rest of the batch is written.
        """
        batch = items if not self._alerts_only else [d for d in items if d.is_alert]
        if not batch:
            return
        started = time.perf_counter()
        rows = [decision_row(d) for d in batch]
        months = months_of(batch)
        rejected = self._retrier.call(
            lambda: self._write_isolating(rows, months), on_failure=self._drop
        )
        for index, message in rejected:
            self._rejects.reject(batch[index], scrub(message, self._retrier.secrets))
        metrics.observe_sink_write(SINK, len(rows) - len(rejected), time.perf_counter() - started)

    def close(self) -> None:
        self._drop()
        self._rejects.close()


class PostgresSink(DynamicSink[Decision]):
    """Every worker writes its decisions to ``alerts`` (and ``decisions``).

    ``alerts_only``: skip the ``decisions`` table and write only tier >= review.
    ``retry_limit``: how long a down server is retried before the sink raises.
    ``layout``: ``auto`` (TimescaleDB when usable), ``partitioned`` or ``timescale``; only
    decides for a database without tables yet.
    ``dead_letters``: where decisions refused for their content go (the flow's
    dead-letter sink); without it they are logged, one error line each.
    """

    def __init__(
        self,
        dsn: Secret,
        *,
        alerts_only: bool = False,
        retry_limit: timedelta = DEFAULT_RETRY_LIMIT,
        connect_timeout: int = 5,
        seed: int = 0,
        layout: str = "auto",
        dead_letters: DynamicSink[DeadLetter] | None = None,
    ) -> None:
        self.dsn = dsn if isinstance(dsn, Secret) else Secret(dsn)
        self.layout = layout
        self.dead_letters = dead_letters
        self.alerts_only = alerts_only
        self.retry_limit = retry_limit
        self.connect_timeout = connect_timeout
        self.seed = seed

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PostgresPartition:
        retrier = _retrier(self.dsn, self.retry_limit, self.seed + worker_index)
        return _PostgresPartition(
            self.dsn,
            self.alerts_only,
            retrier,
            self.connect_timeout,
            layout=self.layout,
            rejects=Rejects(SINK, self.dead_letters, step_id, worker_index, worker_count),
        )

    def __repr__(self) -> str:
        return f"PostgresSink(dsn={self.dsn!r}, alerts_only={self.alerts_only})"

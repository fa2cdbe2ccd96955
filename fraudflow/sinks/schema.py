"""PostgreSQL schema of the decision store: versioned, idempotent migrations.

Two tables with the same columns: ``alerts`` (decisions with tier >= review)
and ``decisions`` (every decision, unless the sink runs ``alerts_only``).
With the ``timescaledb`` extension they are hypertables with compression and
retention policies; without it they are natively range-partitioned on
``event_time`` by month (partitions made on demand by the sink) with a
DEFAULT partition, so no row is ever refused. Queries are the same on both,
including ``alerts_hourly`` (alerts per hour by tier and rule set): a
continuous aggregate on full TimescaleDB, a plain view otherwise.

:func:`detect_timescale` tells, without ever losing the connection, which of
the four cases a server is: TimescaleDB full, TimescaleDB Apache-only (no
``-tsl`` module: hypertables, no policies, no continuous aggregates),
offered but not preloaded (``CREATE EXTENSION`` would be FATAL), or missing.

Applied migrations are rows of ``fraudflow_schema_migrations``; a migration
runs once, inside the transaction that records it, under an advisory lock so
that concurrent starters (a cluster's processes) apply it exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from fraudflow.sinks.columns import ddl

log = logging.getLogger(__name__)

TABLES = ("alerts", "decisions")
LAYOUTS = ("auto", "timescale", "partitioned")
HOURLY_VIEW = "alerts_hourly"
MIGRATIONS_TABLE = "fraudflow_schema_migrations"
# pg_advisory_xact_lock key: the ASCII of "fraudflw" (any constant works)
LOCK_KEY = 0x66726175_64666C77

# Timescale settings: chunk width, compress after, drop after. Chunks are sized so the
# newest chunk and its indexes stay in memory at the expected volume (docs/sinks.md):
# decisions ~ every transaction (1 day per chunk), alerts ~ 1-3 % of them (7 days).
TIMESCALE_POLICIES = {
    "alerts": ("7 days", "30 days", "730 days"),
    "decisions": ("1 day", "7 days", "90 days"),
}

# the table columns (CREATE TABLE), from the one definition in sinks/columns.py
COLUMNS = ddl()


@dataclass(frozen=True)
class Timescale:
    """What the server offers: ``hypertables`` (extension usable), ``policies`` (the ``-tsl``
    module: compression, retention, continuous aggregates), and why, in one line."""

    hypertables: bool
    policies: bool
    version: str | None
    reason: str

    @property
    def layout(self) -> str:
        return "timescale" if self.hypertables else "partitioned"

    def describe(self) -> str:
        """The log line: which layout is used and what is off."""
        return f"PostgreSQL sink: layout {self.layout} ({self.reason})"


PARTITIONED_ONLY = Timescale(False, False, None, "native partitions requested")


@dataclass(frozen=True)
class Migration:
    """One schema step: ``apply(conn, timescale)`` runs inside the recording transaction."""

    id: str
    description: str
    apply: Callable[[psycopg.Connection[tuple[object, ...]], Timescale], None]


def _tables(conn: psycopg.Connection[tuple[object, ...]], ts: Timescale) -> None:
    for table in TABLES:
        t = sql.Identifier(table)
        if ts.hypertables:
            conn.execute(sql.SQL("create table if not exists {} (" + COLUMNS + ")").format(t))
            chunk, compress_after, drop_after = TIMESCALE_POLICIES[table]
            conn.execute(
                "select create_hypertable(%s, 'event_time', chunk_time_interval => %s::interval,"
                " if_not_exists => true)",
                (table, chunk),
            )
            if not ts.policies:
                continue  # Apache-only: hypertables, no compression or retention
            conn.execute(
                sql.SQL(
                    "alter table {} set (timescaledb.compress,"
                    " timescaledb.compress_segmentby = 'user_id',"
                    " timescaledb.compress_orderby = 'event_time desc, alert_id')"
                ).format(t)
            )
            conn.execute(
                "select add_compression_policy(%s, %s::interval, if_not_exists => true)",
                (table, compress_after),
            )
            conn.execute(
                "select add_retention_policy(%s, %s::interval, if_not_exists => true)",
                (table, drop_after),
            )
        else:
            conn.execute(
                sql.SQL(
                    "create table if not exists {} ("
                    + COLUMNS
                    + ") partition by range (event_time)"
                ).format(t)
            )
            conn.execute(
                sql.SQL("create table if not exists {} partition of {} default").format(
                    sql.Identifier(f"{table}_default"), t
                )
            )


def _indexes(conn: psycopg.Connection[tuple[object, ...]], ts: Timescale) -> None:
    del ts  # same indexes on both layouts
    for table in TABLES:
        t = sql.Identifier(table)
        for suffix, body in (
            ("user_time", "(user_id, event_time desc)"),
            ("tier_time", "(tier, event_time desc)"),
            ("rule_ids", "using gin (rule_ids)"),
            ("transaction", "(transaction_id)"),
        ):
            conn.execute(
                sql.SQL("create index if not exists {} on {} " + body).format(
                    sql.Identifier(f"{table}_{suffix}_idx"), t
                )
            )


# 0001 segmented compressed chunks by user_id: with ~20,000 users per chunk that is one or
# two rows per segment and compression made chunks larger (docs/benchmarks.md). No segments,
# ordered by user then time: runs of one user compress well and a user's rows are found by
# the per-batch min/max of user_id.
COMPRESS_ORDER = "user_id, event_time desc, alert_id"


def _compression_by_user_order(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    for table in TABLES:
        row = conn.execute(
            "select count(*) from timescaledb_information.chunks"
            " where hypertable_name = %s and is_compressed",
            (table,),
        ).fetchone()
        if row is not None and int(str(row[0])) > 0:
            log.warning(
                "%s: compressed chunks exist, compression settings left as they are "
                "(segment by user_id); see docs/sinks.md to change them",
                table,
            )
            continue
        conn.execute(
            sql.SQL(
                "alter table {} set (timescaledb.compress, timescaledb.compress_segmentby = '',"
                " timescaledb.compress_orderby = {})"
            ).format(sql.Identifier(table), sql.Literal(COMPRESS_ORDER))
        )


HOURLY_SELECT = (
    "select {bucket} as bucket, tier, rule_ids, count(*) as alerts from alerts group by 1, 2, 3"
)


def _hourly(conn: psycopg.Connection[tuple[object, ...]], ts: Timescale) -> None:
    """``alerts_hourly(bucket, tier, rule_ids, alerts)``: same columns on every layout.

    ``rule_ids`` is the alert's whole rule set (a continuous aggregate cannot
    ``unnest``); per rule: ``select r, sum(alerts) from alerts_hourly, unnest(rule_ids) r``.
    """
    for table in TABLES:  # what create_hypertable makes by default, on every layout
        conn.execute(
            sql.SQL("create index if not exists {} on {} (event_time desc)").format(
                sql.Identifier(f"{table}_event_time_idx"), sql.Identifier(table)
            )
        )
    if ts.policies:
        _compression_by_user_order(conn)
    view = sql.Identifier(HOURLY_VIEW)
    if ts.policies:
        body = HOURLY_SELECT.format(bucket="time_bucket('1 hour', event_time)")
        conn.execute(
            sql.SQL(
                "create materialized view if not exists {} with (timescaledb.continuous) as "
                + body
                + " with no data"
            ).format(view)
        )
        # real-time: recent hours not yet materialized are read from alerts
        realtime = "alter materialized view {} set (timescaledb.materialized_only = false)"
        conn.execute(sql.SQL(realtime).format(view))
        conn.execute(
            "select add_continuous_aggregate_policy(%s, start_offset => interval '3 days',"
            " end_offset => interval '1 hour', schedule_interval => interval '30 minutes',"
            " if_not_exists => true)",
            (HOURLY_VIEW,),
        )
    else:
        body = HOURLY_SELECT.format(bucket="date_trunc('hour', event_time)")
        conn.execute(sql.SQL("create or replace view {} as " + body).format(view))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_decision_tables", "alerts and decisions tables (hypertables or partitioned)", _tables
    ),
    Migration(
        "0002_investigator_indexes", "user/time, tier/time, GIN rule_ids, transaction_id", _indexes
    ),
    Migration(
        "0003_alerts_hourly",
        "event_time index; alerts_hourly: alerts per hour by tier and rules (cagg or view)",
        _hourly,
    ),
)


def timescale_available(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """True when the server offers the ``timescaledb`` extension."""
    row = conn.execute(
        "select 1 from pg_available_extensions where name = 'timescaledb'"
    ).fetchone()
    return row is not None


def _setting(conn: psycopg.Connection[tuple[object, ...]], name: str) -> str:
    row = conn.execute("select current_setting(%s, true)", (name,)).fetchone()
    return str(row[0]) if row is not None and row[0] is not None else ""


def detect_timescale(
    conn: psycopg.Connection[tuple[object, ...]], *, create: bool = True
) -> Timescale:
    """Which TimescaleDB the server offers; creates the extension when it can (``create``).

    Never runs a statement that could be FATAL: ``CREATE EXTENSION`` of a library
    that is not in ``shared_preload_libraries`` ends the session, so that case is
    recognised from the settings first.
    """
    installed = conn.execute(
        "select extversion from pg_extension where extname = 'timescaledb'"
    ).fetchone()
    if installed is None:
        row = conn.execute(
            "select default_version from pg_available_extensions where name = 'timescaledb'"
        ).fetchone()
        if row is None:
            return Timescale(False, False, None, "no timescaledb extension on this server")
        version = str(row[0])
        preload = [p.strip() for p in _setting(conn, "shared_preload_libraries").split(",")]
        if not any(p.startswith("timescaledb") for p in preload):
            return Timescale(
                False,
                False,
                version,
                f"TimescaleDB {version} is installed but not in shared_preload_libraries",
            )
        if not create:
            return Timescale(True, False, version, "TimescaleDB not created in this database")
        try:
            with conn.transaction():  # a savepoint: a failure leaves the outer transaction usable
                conn.execute("create extension if not exists timescaledb")
        except psycopg.Error as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return Timescale(False, False, version, f"create extension timescaledb failed: {first}")
    else:
        version = str(installed[0])
    if _setting(conn, "timescaledb.license") == "apache":
        return Timescale(
            True,
            False,
            version,
            f"TimescaleDB {version} Apache-only: hypertables; compression, retention policies"
            " and the alerts_hourly continuous aggregate are off (alerts_hourly is a plain view)",
        )
    return Timescale(
        True,
        True,
        version,
        f"TimescaleDB {version}: hypertables, compression and retention policies,"
        " alerts_hourly continuous aggregate",
    )


def apply_migrations(
    conn: psycopg.Connection[tuple[object, ...]],
    migrations: Sequence[Migration] = MIGRATIONS,
    *,
    layout: str = "auto",
) -> list[str]:
    """Apply the pending ``migrations`` in one transaction; the ids applied, in order.

    ``layout`` (for a database without tables yet): ``auto`` uses TimescaleDB when the
    server offers it usable, ``partitioned`` always uses native partitions, ``timescale``
    requires TimescaleDB. Once the tables exist their layout wins. The chosen layout
    is logged once (one line) when tables are created.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    applied: list[str] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            sql.SQL(
                "create table if not exists {} (id text primary key, description text not null,"
                " layout text not null, applied_at timestamptz not null default now())"
            ).format(sql.Identifier(MIGRATIONS_TABLE))
        )
        done = {
            str(r[0])
            for r in conn.execute(
                sql.SQL("select id from {}").format(sql.Identifier(MIGRATIONS_TABLE))
            )
        }
        pending = [m for m in migrations if m.id not in done]
        if not pending:
            return applied
        fresh = "0001_decision_tables" in {m.id for m in pending}
        if fresh:
            ts = PARTITIONED_ONLY if layout == "partitioned" else detect_timescale(conn)
            if layout == "timescale" and not ts.hypertables:
                raise RuntimeError(f"layout timescale requested but {ts.reason}")
            log.info("%s", ts.describe())
        elif table_layout(conn) == "timescale":
            ts = detect_timescale(conn, create=False)
        else:
            ts = PARTITIONED_ONLY
        for m in pending:
            m.apply(conn, ts)
            conn.execute(
                sql.SQL("insert into {} (id, description, layout) values (%s, %s, %s)").format(
                    sql.Identifier(MIGRATIONS_TABLE)
                ),
                (m.id, m.description, ts.layout),
            )
            applied.append(m.id)
    return applied


def create_stage(
    conn: psycopg.Connection[Any], name: str, columns: Sequence[tuple[str, str]]
) -> None:
    """The session's temporary staging table ``name`` (``columns``: name, SQL type) that a
    sink COPYs one batch into; emptied at every commit."""
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns
    )
    conn.execute(
        sql.SQL("create temp table if not exists {} ({}) on commit delete rows").format(
            sql.Identifier(name), cols
        )
    )


def table_layout(conn: psycopg.Connection[tuple[object, ...]], table: str = "alerts") -> str:
    """``partitioned`` (native), ``timescale`` (hypertable), ``plain`` or ``missing``."""
    row = conn.execute(
        "select c.relkind from pg_class c where c.oid = to_regclass(%s)", (table,)
    ).fetchone()
    if row is None:
        return "missing"
    if row[0] == "p":
        return "partitioned"
    ts = conn.execute("select 1 from pg_extension where extname = 'timescaledb'").fetchone()
    if ts is not None:
        hyper = conn.execute(
            "select 1 from timescaledb_information.hypertables where hypertable_name = %s", (table,)
        ).fetchone()
        if hyper is not None:
            return "timescale"
    return "plain"


# --- monthly partitions (native layout) --------------------------------------


def month_start(ts: float) -> tuple[int, int]:
    """(year, month) of an epoch time in UTC.

    >>> month_start(0.0), month_start(1709251200.0)
    ((1970, 1), (2024, 3))
    """
    d = datetime.fromtimestamp(ts, UTC)
    return d.year, d.month


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """[first instant of the month, first instant of the next), UTC.

    >>> [d.isoformat() for d in month_bounds(2024, 12)]
    ['2024-12-01T00:00:00+00:00', '2025-01-01T00:00:00+00:00']
    """
    lo = datetime(year, month, 1, tzinfo=UTC)
    hi = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return lo, hi


def partition_name(table: str, year: int, month: int) -> str:
    """``alerts_p2024_03``: the monthly partition of ``table``."""
    return f"{table}_p{year:04d}_{month:02d}"


def existing_partitions(conn: psycopg.Connection[tuple[object, ...]], table: str) -> set[str]:
    """Names of the partitions attached to ``table``."""
    rows = conn.execute(
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
        " where i.inhparent = to_regclass(%s)",
        (table,),
    ).fetchall()
    return {str(r[0]) for r in rows}


def ensure_month_partition(
    conn: psycopg.Connection[tuple[object, ...]], table: str, year: int, month: int
) -> bool:
    """Create and attach ``table``'s partition for a month; True if it was made here.

    Rows of that month already in the DEFAULT partition are moved into the new
    partition first, so attaching never fails on them. Serialized per table by
    an advisory lock, so concurrent workers do not race.
    """
    name = partition_name(table, year, month)
    lo, hi = month_bounds(year, month)
    with conn.transaction():
        conn.execute(
            "select pg_advisory_xact_lock(%s::int4, hashtext(%s))", (LOCK_KEY & 0x7FFFFFFF, table)
        )
        if name in existing_partitions(conn, table):
            return False
        t, p, d = sql.Identifier(table), sql.Identifier(name), sql.Identifier(f"{table}_default")
        conn.execute(
            sql.SQL(
                "create table if not exists {} (like {} including defaults including constraints)"
            ).format(p, t)
        )
        conn.execute(
            sql.SQL(
                "with moved as (delete from {d} where event_time >= %s and event_time < %s"
                " returning *) insert into {p} select * from moved"
            ).format(d=d, p=p),
            (lo, hi),
        )
        conn.execute(
            sql.SQL("alter table {} attach partition {} for values from ({}) to ({})").format(
                t, p, sql.Literal(lo), sql.Literal(hi)
            )
        )
    return True

"""PostgreSQL schema of the decision store: versioned, idempotent migrations.

Two tables with the same columns: ``alerts`` (decisions with tier >= review)
and ``decisions`` (every decision, unless the sink runs ``alerts_only``).
With the ``timescaledb`` extension they are hypertables with compression and
retention policies; without it they are natively range-partitioned on
``event_time`` by month (partitions made on demand by the sink) with a
DEFAULT partition, so no row is ever refused. Queries are the same on both.

Applied migrations are rows of ``fraudflow_schema_migrations``; a migration
runs once, inside the transaction that records it, under an advisory lock so
that concurrent starters (a cluster's processes) apply it exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql

TABLES = ("alerts", "decisions")
MIGRATIONS_TABLE = "fraudflow_schema_migrations"
# pg_advisory_xact_lock key: the ASCII of "fraudflw" (any constant works)
LOCK_KEY = 0x66726175_64666C77

# Timescale settings: chunk width, compress after, drop after.
TIMESCALE_POLICIES = {
    "alerts": ("7 days", "30 days", "730 days"),
    "decisions": ("1 day", "7 days", "90 days"),
}

COLUMNS = """
    alert_id         text             not null,
    event_time       timestamptz      not null,
    processed_at     timestamptz      not null,
    transaction_id   text             not null,
    user_id          text             not null,
    amount           double precision not null,
    currency         text             not null,
    merchant_id      text,
    country          text,
    score            double precision not null,
    tier             text             not null check (tier in ('approve', 'review', 'block')),
    detector_scores  jsonb            not null,
    rule_ids         text[]           not null default '{{}}',
    rule_hits        jsonb            not null default '[]',
    reasons          jsonb            not null,
    rules_version    text             not null,
    model_version    text             not null,
    late             boolean          not null default false,
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    written_at       timestamptz      not null default now(),
    primary key (alert_id, event_time)
"""

# The columns the sink writes, in COPY order, with their PostgreSQL types.
WRITE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("alert_id", "text"),
    ("event_time", "timestamptz"),
    ("processed_at", "timestamptz"),
    ("transaction_id", "text"),
    ("user_id", "text"),
    ("amount", "float8"),
    ("currency", "text"),
    ("merchant_id", "text"),
    ("country", "text"),
    ("score", "float8"),
    ("tier", "text"),
    ("detector_scores", "jsonb"),
    ("rule_ids", "text[]"),
    ("rule_hits", "jsonb"),
    ("reasons", "jsonb"),
    ("rules_version", "text"),
    ("model_version", "text"),
    ("late", "bool"),
    ("source_topic", "text"),
    ("source_partition", "int4"),
    ("source_offset", "int8"),
)


@dataclass(frozen=True)
class Migration:
    """One schema step: ``apply(conn, timescale)`` runs inside the recording transaction."""

    id: str
    description: str
    apply: Callable[[psycopg.Connection[tuple[object, ...]], bool], None]


def _tables(conn: psycopg.Connection[tuple[object, ...]], timescale: bool) -> None:
    for table in TABLES:
        t = sql.Identifier(table)
        if timescale:
            conn.execute(sql.SQL("create table if not exists {} (" + COLUMNS + ")").format(t))
            chunk, compress_after, drop_after = TIMESCALE_POLICIES[table]
            conn.execute(
                "select create_hypertable(%s, 'event_time', chunk_time_interval => %s::interval,"
                " if_not_exists => true)",
                (table, chunk),
            )
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


def _indexes(conn: psycopg.Connection[tuple[object, ...]], timescale: bool) -> None:
    del timescale  # same indexes on both layouts
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


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_decision_tables", "alerts and decisions tables (hypertables or partitioned)", _tables
    ),
    Migration(
        "0002_investigator_indexes", "user/time, tier/time, GIN rule_ids, transaction_id", _indexes
    ),
)


def timescale_available(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """True when the server offers the ``timescaledb`` extension."""
    row = conn.execute(
        "select 1 from pg_available_extensions where name = 'timescaledb'"
    ).fetchone()
    return row is not None


def _enable_timescale(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Create the extension if offered; False (and no harm) when it cannot be loaded."""
    if not timescale_available(conn):
        return False
    try:
        with conn.transaction():  # a savepoint: a failure leaves the outer transaction usable
            conn.execute("create extension if not exists timescaledb")
    except psycopg.Error:
        return False  # offered but not preloaded (shared_preload_libraries): use native partitions
    return True


def apply_migrations(
    conn: psycopg.Connection[tuple[object, ...]], migrations: Sequence[Migration] = MIGRATIONS
) -> list[str]:
    """Apply the pending ``migrations`` in one transaction; the ids applied, in order."""
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
        timescale = (
            _enable_timescale(conn)
            if "0001_decision_tables" in {m.id for m in pending}
            else (table_layout(conn) == "timescale")
        )
        layout = "timescale" if timescale else "partitioned"
        for m in pending:
            m.apply(conn, timescale)
            conn.execute(
                sql.SQL("insert into {} (id, description, layout) values (%s, %s, %s)").format(
                    sql.Identifier(MIGRATIONS_TABLE)
                ),
                (m.id, m.description, layout),
            )
            applied.append(m.id)
    return applied


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

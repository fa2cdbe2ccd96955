"""PostgreSQL tables of training: the feature log, the labels store, the model registry.

They follow the decision tables' migrations (:mod:`fraudflow.sinks.schema`):
the same migrations table, advisory lock and layouts. ``feature_log`` has a
row per decision (the exact model inputs scored); on TimescaleDB it is a
compressed hypertable on ``event_time``, otherwise natively range-partitioned
by month with a DEFAULT partition (monthly partitions made on demand by the
sink). ``labels`` holds one row per transaction (the latest ``reported_at``
wins); ``model_registry`` one row per published artifact and ``entity_risk``
the risk tables published with it.
"""

from __future__ import annotations

from typing import Any

import psycopg

from fraudflow.sinks.schema import MIGRATIONS, Migration, Timescale, apply_migrations

FEATURE_LOG = "feature_log"
# chunk width, compress after, drop after (a year of training data by default)
FEATURE_LOG_POLICY = ("1 day", "7 days", "400 days")

FEATURE_LOG_COLUMNS = """
    alert_id        text             not null,
    event_time      timestamptz      not null,
    transaction_id  text             not null,
    user_id         text             not null,
    merchant_id     text,
    device_id       text,
    country         text,
    amount          double precision not null,
    features        jsonb            not null,
    score           double precision not null,
    model_version   text             not null,
    rules_version   text             not null,
    processed_at    timestamptz      not null,
    primary key (alert_id, event_time)
"""

# (column, type) in COPY order
FEATURE_LOG_WRITE: tuple[tuple[str, str], ...] = (
    ("alert_id", "text"),
    ("event_time", "timestamptz"),
    ("transaction_id", "text"),
    ("user_id", "text"),
    ("merchant_id", "text"),
    ("device_id", "text"),
    ("country", "text"),
    ("amount", "float8"),
    ("features", "jsonb"),
    ("score", "float8"),
    ("model_version", "text"),
    ("rules_version", "text"),
    ("processed_at", "timestamptz"),
)

Conn = psycopg.Connection[Any]


def _feature_log(conn: Conn, ts: Timescale) -> None:
    if ts.hypertables:
        conn.execute(f"create table if not exists feature_log ({FEATURE_LOG_COLUMNS})")
        chunk, compress_after, drop_after = FEATURE_LOG_POLICY
        conn.execute(
            "select create_hypertable('feature_log', 'event_time',"
            " chunk_time_interval => %s::interval, if_not_exists => true)",
            (chunk,),
        )
        if ts.policies:
            conn.execute(
                "alter table feature_log set (timescaledb.compress,"
                " timescaledb.compress_segmentby = '',"
                " timescaledb.compress_orderby = 'event_time, alert_id')"
            )
            conn.execute(
                "select add_compression_policy('feature_log', %s::interval, if_not_exists => true)",
                (compress_after,),
            )
            conn.execute(
                "select add_retention_policy('feature_log', %s::interval, if_not_exists => true)",
                (drop_after,),
            )
    else:
        conn.execute(
            f"create table if not exists feature_log ({FEATURE_LOG_COLUMNS})"
            " partition by range (event_time)"
        )
        conn.execute(
            "create table if not exists feature_log_default partition of feature_log default"
        )
    conn.execute(
        "create index if not exists feature_log_transaction_idx on feature_log (transaction_id)"
    )


def _labels(conn: Conn, ts: Timescale) -> None:
    del ts  # a plain table on every layout: one row per transaction, updated in place
    conn.execute(
        "create table if not exists labels ("
        " transaction_id text primary key,"
        " label smallint not null check (label in (0, 1)),"
        " reported_at timestamptz not null,"
        " received_at timestamptz not null default now(),"
        " source_topic text, source_partition integer, source_offset bigint,"
        " dead_at timestamptz)"
    )
    conn.execute("create index if not exists labels_reported_idx on labels (reported_at)")


def _registry(conn: Conn, ts: Timescale) -> None:
    del ts
    conn.execute(
        "create table if not exists model_registry ("
        " version text primary key,"
        " created_at timestamptz not null default now(),"
        " library text not null,"
        " model text not null,"
        " artifact jsonb not null,"
        " cutoff timestamptz not null,"
        " metrics jsonb not null,"
        " promoted boolean not null default false)"
    )
    conn.execute(
        "create table if not exists entity_risk ("
        " version text not null references model_registry (version) on delete cascade,"
        " field text not null, entity text not null,"
        " risk jsonb not null,"
        " primary key (version, field, entity))"
    )


TRAINING_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0101_feature_log",
        "feature_log: every decision's model inputs (hypertable or partitioned)",
        _feature_log,
    ),
    Migration("0102_labels", "labels: one row per transaction, latest reported_at wins", _labels),
    Migration("0103_model_registry", "model_registry and entity_risk", _registry),
)


def ensure_training_schema(conn: Conn, *, layout: str = "auto") -> list[str]:
    """Apply the decision tables' and training's pending migrations; the ids applied."""
    return apply_migrations(conn, (*MIGRATIONS, *TRAINING_MIGRATIONS), layout=layout)

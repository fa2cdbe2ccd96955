"""The console's own tables: verdicts, alert status (derived from verdicts) and audit.

The flow's ``alerts``/``decisions`` tables belong to the sink
(:mod:`fraudflow.sinks.schema`) and are not altered here, only indexed for the
review queue's sort orders: an index on a partitioned table or a hypertable is
created on every partition/chunk, so the same statements serve both layouts.
Migrations are rows of ``fraudflow_console_migrations``, applied once under
an advisory lock, like the sink's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from fraudflow.sinks.schema import apply_migrations as apply_sink_migrations

MIGRATIONS_TABLE = "fraudflow_console_migrations"
# pg_advisory_xact_lock key: the ASCII of "ffconsol"
LOCK_KEY = 0x6666636F_6E736F6C

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Migration:
    id: str
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "c0001_verdicts_audit",
        "verdicts (history), alert_status (latest verdict per alert, with its sort keys), audit",
        (
            """create table if not exists verdicts (
                id             bigserial   primary key,
                alert_id       text        not null,
                transaction_id text        not null,
                user_id        text        not null,
                label          text        not null check (label in ('fraud', 'legit')),
                note           text        not null default '',
                author         text        not null,
                created_at     timestamptz not null default now(),
                published_at   timestamptz
            )""",
            "create index if not exists verdicts_alert_idx on verdicts (alert_id, id desc)",
            "create index if not exists verdicts_unpublished_idx on verdicts (id)"
            " where published_at is null",
            """create table if not exists alert_status (
                alert_id       text        primary key,
                transaction_id text        not null,
                user_id        text        not null,
                score          double precision not null,
                event_time     timestamptz not null,
                status         text        not null check (status in ('fraud', 'legit')),
                verdict_id     bigint      not null references verdicts (id),
                updated_by     text        not null,
                updated_at     timestamptz not null
            )""",
            "create index if not exists alert_status_score_idx"
            " on alert_status (status, score desc, alert_id desc)",
            "create index if not exists alert_status_time_idx"
            " on alert_status (status, event_time desc, alert_id desc)",
            """create table if not exists audit (
                id      bigserial   primary key,
                at      timestamptz not null default now(),
                actor   text        not null,
                roles   text[]      not null,
                action  text        not null,
                target  text        not null,
                detail  jsonb       not null default '{}'
            )""",
            "create index if not exists audit_target_idx on audit (target, id desc)",
        ),
    ),
    Migration(
        "c0002_queue_indexes",
        "review-queue indexes on alerts: score and event time, with alert_id as tie-break",
        (
            "create index if not exists alerts_console_score_idx"
            " on alerts (score desc, alert_id desc)",
            "create index if not exists alerts_console_time_idx"
            " on alerts (event_time desc, alert_id desc)",
        ),
    ),
)


def apply_migrations(conn: Conn, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[str]:
    """The sink's migrations (so ``alerts`` exists), then the console's; the console ids applied."""
    apply_sink_migrations(conn)
    applied: list[str] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        table = sql.Identifier(MIGRATIONS_TABLE)
        conn.execute(
            sql.SQL(
                "create table if not exists {} (id text primary key, description text not null,"
                " applied_at timestamptz not null default now())"
            ).format(table)
        )
        done = {str(r[0]) for r in conn.execute(sql.SQL("select id from {}").format(table))}
        for m in migrations:
            if m.id in done:
                continue
            for stmt in m.statements:
                conn.execute(stmt)
            conn.execute(
                sql.SQL("insert into {} (id, description) values (%s, %s)").format(table),
                (m.id, m.description),
            )
            applied.append(m.id)
    return applied

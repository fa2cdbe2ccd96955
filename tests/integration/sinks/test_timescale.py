"""The TimescaleDB path: hypertables, policies run with ``CALL run_job``, the
continuous aggregate, replays onto compressed chunks, and the three other
cases a server can be in (Apache-only, not preloaded) on private servers.

These run only with a usable extension (see tests/support/timescale.py: CI
installs it from the bundle; a machine with neither skips them, loudly).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fraudflow.config.settings import Secret
from fraudflow.sinks.postgres import PostgresSink, migrate
from fraudflow.sinks.schema import HOURLY_VIEW, MIGRATIONS, TIMESCALE_POLICIES, table_layout
from tests.support.services import PrivatePostgres, private_postgres
from tests.unit.sinks.factory import make_decision

pytestmark = pytest.mark.integration
DAY = 86400.0
TIERS = ("approve", "review", "block")


def q(dsn: Secret | str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn.reveal() if isinstance(dsn, Secret) else dsn) as c:
        return c.execute(sql, args).fetchall()


@pytest.fixture
def ts_dsn(database: str, timescale_version: str) -> Secret:
    del timescale_version
    dsn = Secret(database)
    migrate(dsn, layout="timescale")
    return dsn


def job(dsn: Secret, proc: str, relation: str) -> int:
    rows = q(
        dsn,
        "select job_id from timescaledb_information.jobs where proc_name = %s"
        " and hypertable_name = %s",
        proc,
        relation,
    )
    assert len(rows) == 1, (proc, relation, rows)
    return int(rows[0][0])


def run_job(dsn: Secret, job_id: int) -> None:
    """Run a policy job in the foreground (see ../shared/timescaledb/README.md).

    The job is unscheduled first: the background scheduler may start the same
    job at any moment, and a refresh running there holds the lock ``run_job``
    needs (seen as LockNotAvailable under load).
    """
    with psycopg.connect(dsn.reveal(), autocommit=True) as c:
        c.execute("select alter_job(%s, scheduled => false)", (job_id,))
        for _ in range(50):
            busy = c.execute(
                "select count(*) from pg_stat_activity where application_name like %s",
                (f"%[{job_id}]",),
            ).fetchone()
            if not busy or busy[0] == 0:
                break
            time.sleep(0.1)
        c.execute("call run_job(%s)", (job_id,))


def test_the_log_names_the_full_timescaledb_layout(
    database: str, timescale_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="fraudflow.sinks.schema"):
        assert migrate(Secret(database)) == [m.id for m in MIGRATIONS]
    lines = [r.getMessage() for r in caplog.records if "layout" in r.getMessage()]
    assert lines == [
        f"PostgreSQL sink: layout timescale (TimescaleDB {timescale_version}: hypertables,"
        " compression and retention policies, alerts_hourly continuous aggregate)"
    ]


def test_hypertables_chunk_intervals_and_policies(ts_dsn: Secret) -> None:
    dims = dict(
        q(
            ts_dsn,
            "select hypertable_name, time_interval::text from timescaledb_information.dimensions",
        )
    )
    assert dims == {
        "alerts": "7 days",
        "decisions": "1 day",
        # the continuous aggregate's own materialization hypertable
        **{k: v for k, v in dims.items() if k.startswith("_materialized_hypertable")},
    }
    for table, (_, compress_after, drop_after) in TIMESCALE_POLICIES.items():
        comp = job(ts_dsn, "policy_compression", table)
        ret = job(ts_dsn, "policy_retention", table)
        cfg = dict(q(ts_dsn, "select job_id, config::text from timescaledb_information.jobs"))
        assert compress_after.split()[0] in cfg[comp]
        assert drop_after.split()[0] in cfg[ret]
    (kind,) = q(
        ts_dsn, "select materialized_only from timescaledb_information.continuous_aggregates"
    )
    assert kind == (False,)  # real time: the newest hour is read from alerts


def test_compression_and_retention_jobs_and_a_replay_onto_a_compressed_chunk(
    ts_dsn: Secret,
) -> None:
    now = time.time()
    recent = [
        make_decision(i, tier=TIERS[i % 3], user=f"u{i % 3}", at=now - 3600) for i in range(6)
    ]
    week_old = [
        make_decision(10 + i, tier=TIERS[i % 3], user=f"u{i % 3}", at=now - 20 * DAY)
        for i in range(6)
    ]
    ancient = [make_decision(20 + i, tier="block", at=now - 200 * DAY) for i in range(3)]
    part = PostgresSink(ts_dsn).build("pg", 0, 1)
    part.write_batch([*recent, *week_old, *ancient])
    assert q(ts_dsn, "select count(*) from decisions") == [(15,)]

    run_job(ts_dsn, job(ts_dsn, "policy_compression", "decisions"))
    compressed = q(
        ts_dsn,
        "select count(*) filter (where is_compressed), count(*) from timescaledb_information.chunks"
        " where hypertable_name = 'decisions'",
    )
    assert compressed[0][0] >= 2  # the 20-day and the 200-day chunks; not today's
    assert compressed[0][0] < compressed[0][1]

    run_job(ts_dsn, job(ts_dsn, "policy_retention", "decisions"))
    assert q(ts_dsn, "select count(*) from decisions") == [(12,)]  # 200 days > 90 days: dropped
    assert q(ts_dsn, "select count(*) from alerts") == [(11,)]  # alerts keep 730 days

    # a replay of what is kept, the 20-day rows landing on a compressed chunk, adds nothing
    part.write_batch([*week_old, *recent])
    part.close()
    assert q(ts_dsn, "select count(*), count(distinct alert_id) from decisions") == [(12, 12)]
    still = q(
        ts_dsn,
        "select count(*) from timescaledb_information.chunks"
        " where hypertable_name = 'decisions' and is_compressed",
    )
    assert still[0][0] >= 1


def test_the_continuous_aggregate_counts_alerts_per_hour_tier_and_rules(ts_dsn: Secret) -> None:
    now = time.time()
    ds = [
        make_decision(
            i,
            tier=TIERS[i % 3],
            rules=("R_A",) if i % 2 else ("R_A", "R_B"),
            at=now - 86400 - 600 * i,
        )
        for i in range(24)
    ]
    part = PostgresSink(ts_dsn).build("pg", 0, 1)
    part.write_batch(ds)
    part.close()
    run_job(ts_dsn, job(ts_dsn, "policy_refresh_continuous_aggregate", HOURLY_VIEW))
    (mat,) = q(
        ts_dsn,
        "select materialization_hypertable_name from timescaledb_information.continuous_aggregates",
    )[0]
    assert q(ts_dsn, f"select count(*) from _timescaledb_internal.{mat}")[0][0] > 0
    expected = q(
        ts_dsn,
        "select date_trunc('hour', event_time), tier, r, count(*) from alerts, unnest(rule_ids) r"
        " group by 1, 2, 3 order by 1, 2, 3",
    )
    got = q(
        ts_dsn,
        f"select bucket, tier, r, sum(alerts)::bigint from {HOURLY_VIEW}, unnest(rule_ids) r"
        " group by 1, 2, 3 order by 1, 2, 3",
    )
    assert got == expected
    assert sum(r[3] for r in got if r[2] == "R_A") == sum(d.is_alert for d in ds)


@pytest.fixture
def apache_only(timescale_version: str) -> Iterator[PrivatePostgres]:
    del timescale_version
    settings = {"shared_preload_libraries": "timescaledb", "timescaledb.license": "apache"}
    with private_postgres(settings) as server:
        yield server


def test_apache_only_gets_hypertables_without_policies(
    apache_only: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = Secret(apache_only.dsn)
    with caplog.at_level(logging.INFO, logger="fraudflow.sinks.schema"):
        assert migrate(dsn) == [m.id for m in MIGRATIONS]
    lines = [r.getMessage() for r in caplog.records if "layout" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith("PostgreSQL sink: layout timescale (TimescaleDB ")
    assert "Apache-only" in lines[0]
    assert (
        "compression, retention policies and the alerts_hourly continuous aggregate are off"
        in lines[0]
    )
    with psycopg.connect(apache_only.dsn) as c:
        assert table_layout(c, "alerts") == "timescale"
    assert q(
        dsn, "select count(*) from timescaledb_information.jobs where hypertable_name is not null"
    ) == [(0,)]
    assert q(dsn, "select relkind from pg_class where relname = %s", HOURLY_VIEW) == [("v",)]
    part = PostgresSink(dsn).build("pg", 0, 1)
    ds = [make_decision(i, tier=TIERS[i % 3]) for i in range(9)]
    part.write_batch(ds)
    part.write_batch(ds)
    part.close()
    assert q(dsn, "select count(*) from decisions") == [(9,)]
    assert q(dsn, f"select sum(alerts)::int from {HOURLY_VIEW}") == [(6,)]


def test_installed_but_not_preloaded_falls_back_to_partitions_on_the_same_connection(
    timescale_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    with private_postgres() as server:  # a fresh initdb preloads nothing
        dsn = Secret(server.dsn)
        assert q(dsn, "select 1 from pg_available_extensions where name = 'timescaledb'")
        with caplog.at_level(logging.INFO, logger="fraudflow.sinks.schema"):
            assert migrate(dsn) == [m.id for m in MIGRATIONS]  # no retry: one connection
        lines = [r.getMessage() for r in caplog.records if "layout" in r.getMessage()]
        assert lines == [
            f"PostgreSQL sink: layout partitioned (TimescaleDB {timescale_version} is installed"
            " but not in shared_preload_libraries)"
        ]
        with psycopg.connect(server.dsn) as c:
            assert table_layout(c, "alerts") == "partitioned"
        part = PostgresSink(dsn).build("pg", 0, 1)
        part.write_batch([make_decision(1, tier="block")])
        part.close()
        assert q(dsn, "select count(*) from alerts") == [(1,)]

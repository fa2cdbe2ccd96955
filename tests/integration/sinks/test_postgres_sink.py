"""PostgresSink and migrations against the machine's real PostgreSQL, on both layouts.

Tests taking ``store`` run twice: native partitions and TimescaleDB hypertables
(see conftest.py); the partition-maintenance tests are native-layout only.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fraudflow.config.settings import Secret
from fraudflow.sinks.postgres import PostgresSink, migrate
from fraudflow.sinks.retry import SinkUnavailable
from fraudflow.sinks.schema import MIGRATIONS, table_layout
from tests.support.services import free_port
from tests.support.timescale import Store
from tests.unit.sinks.factory import make_decision

pytestmark = pytest.mark.integration
TIERS = ("approve", "review", "block")


def q(dsn: Secret, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn.reveal()) as c:
        return c.execute(sql, args).fetchall()


def batch(n: int, start: int = 0, **kw: Any) -> list[Any]:
    return [
        make_decision(i, tier=TIERS[i % 3], user=f"u{i % 4}", **kw) for i in range(start, start + n)
    ]


def test_migrate_is_versioned_and_idempotent(store: Store) -> None:
    pg_dsn = store.dsn  # migrated once by the fixture, in store.layout
    assert migrate(pg_dsn) == []
    assert migrate(pg_dsn, layout="partitioned") == []  # the tables' layout wins
    rows = q(pg_dsn, "select id, layout from fraudflow_schema_migrations order by id")
    assert rows == [(m.id, store.layout) for m in MIGRATIONS]
    with psycopg.connect(pg_dsn.reveal()) as c:
        assert table_layout(c, "alerts") == store.layout
        assert table_layout(c, "decisions") == store.layout
    idx = {r[0] for r in q(pg_dsn, "select indexname from pg_indexes where tablename = 'alerts'")}
    assert {"alerts_user_time_idx", "alerts_tier_time_idx", "alerts_rule_ids_idx"} <= idx
    default = q(pg_dsn, "select relname from pg_class where relname = 'alerts_default'")
    assert bool(default) == (store.layout == "partitioned")


def test_a_fresh_database_gets_all_migrations(pg_dsn: Secret) -> None:
    assert migrate(pg_dsn, layout="partitioned") == [m.id for m in MIGRATIONS]
    assert migrate(pg_dsn) == []


def test_concurrent_migrations_apply_once(pg_dsn: Secret) -> None:
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(migrate(pg_dsn))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0, 0, 0, len(MIGRATIONS)]


def test_writes_rows_and_replays_add_nothing(store: Store) -> None:
    pg_dsn = store.dsn
    part = PostgresSink(pg_dsn).build("pg", 0, 1)
    ds = batch(30)
    part.write_batch(ds)
    part.write_batch(ds)  # a replay of the same batch
    part.write_batch(ds[5:12])  # and of a part of it, mixed with new rows
    part.write_batch([*ds[:3], *batch(3, start=100)])
    part.close()
    assert q(pg_dsn, "select count(*) from decisions") == [(33,)]
    n_alerts = sum(d.is_alert for d in ds) + sum(d.is_alert for d in batch(3, start=100))
    assert q(pg_dsn, "select count(*) from alerts") == [(n_alerts,)]
    assert q(pg_dsn, "select count(*) from alerts where tier = 'approve'") == [(0,)]
    d = ds[2]  # a block
    (row,) = q(
        pg_dsn,
        "select alert_id, event_time, transaction_id, user_id, amount, currency, merchant_id,"
        " country, score, tier, detector_scores, rule_ids, reasons, rules_version, model_version,"
        " processed_at from alerts where alert_id = %s",
        d.alert_id,
    )
    alert = d.to_dict()
    assert row[0] == d.alert_id
    assert row[1].timestamp() == d.txn.ts
    assert row[2:8] == (
        d.txn.transaction_id,
        d.txn.user_id,
        d.txn.amount,
        "EUR",
        d.txn.merchant_id,
        "FR",
    )
    assert row[8] == pytest.approx(d.score)
    assert row[9] == "block"
    assert row[10] == alert["detector_scores"]
    assert row[11] == ["R_VELOCITY"]
    assert row[12] == alert["reasons"]
    assert row[13:15] == (d.rules_version, d.model_version)
    assert row[15].timestamp() == d.processed_at


def test_alerts_only_skips_decisions(store: Store) -> None:
    pg_dsn = store.dsn
    part = PostgresSink(pg_dsn, alerts_only=True).build("pg", 0, 1)
    part.write_batch(batch(9))
    part.write_batch([make_decision(99, tier="approve")])
    part.close()
    assert q(pg_dsn, "select count(*) from alerts") == [(6,)]
    assert q(pg_dsn, "select count(*) from decisions") == [(0,)]


def test_the_sink_migrates_an_empty_database_itself(pg_dsn: Secret) -> None:
    part = PostgresSink(pg_dsn, layout="partitioned").build("pg", 0, 1)
    part.write_batch(batch(3))
    part.close()
    assert q(pg_dsn, "select count(*) from decisions") == [(3,)]
    with psycopg.connect(pg_dsn.reveal()) as c:
        assert table_layout(c) == "partitioned"


def test_monthly_partitions_are_made_across_months_and_years(pg_dsn: Secret) -> None:
    migrate(pg_dsn, layout="partitioned")
    times = [
        "2023-11-30T23:59:59",
        "2023-12-15T00:00:00",
        "2024-01-01T00:00:00",
        "2024-02-29T12:00:00",
    ]
    ds = [make_decision(i, tier="block", at=t) for i, t in enumerate(times)]
    sink = PostgresSink(pg_dsn)
    part = sink.build("pg", 0, 1)
    part.write_batch(ds[:2])
    part.write_batch(ds)  # two more months, and a replay of the first two
    part.close()
    where = dict(q(pg_dsn, "select alert_id, tableoid::regclass::text from alerts"))
    assert [where[d.alert_id] for d in ds] == [
        "alerts_p2023_11",
        "alerts_p2023_12",
        "alerts_p2024_01",
        "alerts_p2024_02",
    ]
    parts = {
        r[0]
        for r in q(
            pg_dsn,
            "select relname from pg_class where relkind = 'r' and relname like 'decisions_p%%'",
        )
    }
    assert parts == {
        "decisions_p2023_11",
        "decisions_p2023_12",
        "decisions_p2024_01",
        "decisions_p2024_02",
    }
    assert q(pg_dsn, "select count(*) from alerts_default") == [(0,)]
    # a second worker that knows nothing of these partitions writes into them too
    other = sink.build("pg", 1, 2)
    other.write_batch([make_decision(10, tier="review", at="2024-01-20T00:00:00")])
    other.close()
    assert q(pg_dsn, "select count(*) from alerts_p2024_01") == [(2,)]


def test_rows_parked_in_default_move_to_their_new_partition(pg_dsn: Secret) -> None:
    migrate(pg_dsn, layout="partitioned")
    early = make_decision(1, tier="review", at="2022-06-01T00:00:00")
    with psycopg.connect(pg_dsn.reveal()) as c:
        # as if written while the month had no partition yet
        c.execute(
            "insert into alerts (alert_id, event_time, processed_at, transaction_id, user_id,"
            " amount,"
            " currency, score, tier, detector_scores, reasons, rules_version, model_version)"
            " values (%s, to_timestamp(%s), now(), 'tx', 'u', 1, 'EUR', 0.6, 'review', '{}', '[]',"
            " 'r', 'm')",
            (early.alert_id, early.txn.ts),
        )
    assert q(pg_dsn, "select count(*) from alerts_default") == [(1,)]
    part = PostgresSink(pg_dsn).build("pg", 0, 1)
    part.write_batch([early, make_decision(2, tier="block", at="2022-06-02T00:00:00")])
    part.close()
    assert q(pg_dsn, "select count(*) from alerts_default") == [(0,)]
    assert q(pg_dsn, "select count(*) from alerts_p2022_06") == [
        (2,)
    ]  # the replay did not duplicate


def _grafana_macros(sql: str) -> str:
    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 between '2024-01-01' and '2024-12-31'", sql)

    def group(m: re.Match[str]) -> str:
        secs = int(m[2]) * (60 if m[3] == "m" else 3600)
        return f"to_timestamp(floor(extract(epoch from {m[1]}) / {secs}) * {secs}) as time"

    return re.sub(r"\$__timeGroupAlias\((\w+), '(\d+)([mh])'\)", group, sql)


def test_dashboard_sql_runs_on_the_schema(store: Store) -> None:
    pg_dsn = store.dsn
    part = PostgresSink(pg_dsn).build("pg", 0, 1)
    part.write_batch(batch(12, at="2024-05-05T10:00:00"))
    part.close()
    dash = json.loads(
        (Path(__file__).resolve().parents[3] / "dashboards" / "grafana-fraudflow.json").read_text()
    )
    sqls = [t["rawSql"] for p in dash["panels"] for t in p.get("targets", []) if "rawSql" in t]
    assert sqls
    for sql in sqls:
        rows = q(pg_dsn, _grafana_macros(sql))
        assert rows, sql


def test_an_unreachable_server_fails_after_the_limit_without_the_password() -> None:
    dsn = Secret(f"postgresql://fraud:Sup3r-S3cret@127.0.0.1:{free_port()}/x")
    part = PostgresSink(dsn, retry_limit=timedelta(seconds=0.3)).build("pg", 0, 1)
    with pytest.raises(SinkUnavailable) as info:
        part.write_batch(batch(2))
    assert "Sup3r-S3cret" not in str(info.value)
    assert info.value.__cause__ is None
    with pytest.raises(SinkUnavailable) as info2:
        migrate(dsn, retry_limit=timedelta(seconds=0.2))
    assert "Sup3r-S3cret" not in str(info2.value)

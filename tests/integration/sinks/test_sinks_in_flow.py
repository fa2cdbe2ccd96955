"""The detection flow writing to the real stores, run twice as a replay would,
into both layouts (native partitions and TimescaleDB): the same ``alerts`` rows."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import orjson
import psycopg
import pytest
import redis
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from fraudflow.config.settings import Secret, Settings
from fraudflow.flows.detection import FlowIO, build_flow
from fraudflow.flows.wiring import store_sinks
from fraudflow.records import DeadLetter, Decision
from fraudflow.sinks.postgres import migrate
from fraudflow.sinks.redis_profiles import RedisProfileSink
from fraudflow.sinks.schema import table_layout
from tests.support.system import fresh_database
from tests.support.timescale import Store

pytestmark = pytest.mark.integration
T0 = 1_706_745_600.0  # 2024-02-01: the stream crosses into March


def messages(n: int = 400) -> list[KafkaSourceMessage[bytes, bytes]]:
    rnd = random.Random(11)
    out = []
    for i in range(n):
        user = f"u{rnd.randrange(15)}"
        amount = 4000.0 if i % 41 == 0 and i else round(rnd.lognormvariate(3, 0.4), 2)
        rec = {
            "transaction_id": f"t{i}",
            "user_id": user,
            "amount": amount,
            "timestamp": int((T0 + 9000 * i) * 1000),
            "merchant_id": f"m{rnd.randrange(6)}",
            "country": "DE",
        }
        out.append(
            KafkaSourceMessage(
                key=user.encode(), value=orjson.dumps(rec), topic="tx", partition=0, offset=i
            )
        )
    return out


def run_once(
    s: Settings, redis_sink: RedisProfileSink, *, fixed_clock: bool = False
) -> tuple[list[Decision], list[Decision]]:
    alerts: list[Decision] = []
    decisions: list[Decision] = []
    dead: list[DeadLetter] = []
    io = FlowIO(
        source=TestingSource(messages()),
        alerts=TestingSink(alerts),
        dead_letters=TestingSink(dead),
        decisions=[*store_sinks(s), ("redis", redis_sink), ("all", TestingSink(decisions))],
    )
    if fixed_clock:  # processed_at from a fixed clock, so two runs write the same rows
        io.clock = lambda: T0 + 9000 * 400
    run_main(build_flow(s, io))
    assert not dead
    return alerts, decisions


def test_flow_to_postgres_and_redis_and_replay(
    store: Store, redis_url: str, redis_prefix: str
) -> None:
    pg_dsn = store.dsn  # migrated in store.layout: the flow keeps it
    s = Settings().replace(hst_warmup=50, hst_window=50, postgres_dsn=pg_dsn.reveal())
    rsink = RedisProfileSink(Secret(redis_url), timedelta(hours=1), key_prefix=redis_prefix)
    alerts, decisions = run_once(s, rsink)
    assert alerts  # the spikes
    again, _ = run_once(s, rsink)  # a replay from the start: same alert ids
    assert {a.alert_id for a in again} == {a.alert_id for a in alerts}
    with psycopg.connect(pg_dsn.reveal()) as c:

        def one(sql: str) -> Any:
            row = c.execute(sql).fetchone()
            assert row is not None
            return row[0]

        assert one("select count(*) from decisions") == len(decisions) == 400
        assert one("select count(*) from alerts") == len(alerts)
        assert {r[0] for r in c.execute("select alert_id from alerts")} == {
            a.alert_id for a in alerts
        }
        assert table_layout(c, "alerts") == store.layout
        if store.layout == "partitioned":
            assert one("select count(*) from pg_class where relname like 'alerts_p2024_0%%'") >= 2
        else:
            chunks = "select count(*) from show_chunks('alerts')"
            assert one(chunks) >= 2  # February and March, 7-day chunks
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = list(client.scan_iter(match=redis_prefix + "*"))
    users = {d.txn.user_id for d in decisions}
    assert len(keys) == len(users)
    for u in users:
        newest = max((d for d in decisions if d.txn.user_id == u), key=lambda d: d.txn.ts)
        assert client.hget(redis_prefix + u, "last_decision_id") == newest.alert_id
    client.close()


ROW = (
    "select alert_id, event_time, processed_at, transaction_id, user_id, amount, currency,"
    " merchant_id, country, score, tier, detector_scores, rule_ids, rule_hits, reasons,"
    " rules_version, model_version, late, source_topic, source_partition, source_offset"
    " from {} order by alert_id"
)


def test_both_layouts_get_identical_alert_rows(
    postgres_dsn: str, timescale_version: str, redis_url: str, redis_prefix: str
) -> None:
    del timescale_version
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for layout in ("partitioned", "timescale"):
        with fresh_database(postgres_dsn) as dsn:
            migrate(Secret(dsn), layout=layout)
            s = Settings().replace(hst_warmup=50, hst_window=50, postgres_dsn=dsn)
            rsink = RedisProfileSink(Secret(redis_url), timedelta(hours=1), key_prefix=redis_prefix)
            run_once(s, rsink, fixed_clock=True)
            with psycopg.connect(dsn) as c:
                assert table_layout(c, "alerts") == layout
                rows[layout] = c.execute(ROW.format("alerts")).fetchall()
            run_once(s, rsink, fixed_clock=True)  # a replay adds none
            with psycopg.connect(dsn) as c:
                assert c.execute(ROW.format("alerts")).fetchall() == rows[layout]
    assert rows["partitioned"]
    assert rows["timescale"] == rows["partitioned"]

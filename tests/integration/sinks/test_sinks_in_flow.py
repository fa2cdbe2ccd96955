"""The detection flow writing to the real stores, run twice as a replay would."""

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
from fraudflow.sinks.redis_profiles import RedisProfileSink

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


def run_once(s: Settings, redis_sink: RedisProfileSink) -> tuple[list[Decision], list[Decision]]:
    alerts: list[Decision] = []
    decisions: list[Decision] = []
    dead: list[DeadLetter] = []
    io = FlowIO(
        source=TestingSource(messages()),
        alerts=TestingSink(alerts),
        dead_letters=TestingSink(dead),
        decisions=[*store_sinks(s), ("redis", redis_sink), ("all", TestingSink(decisions))],
    )
    run_main(build_flow(s, io))
    assert not dead
    return alerts, decisions


def test_flow_to_postgres_and_redis_and_replay(
    pg_dsn: Secret, redis_url: str, redis_prefix: str
) -> None:
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
        assert one("select count(*) from pg_class where relname like 'alerts_p2024_0%%'") >= 2
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = list(client.scan_iter(match=redis_prefix + "*"))
    users = {d.txn.user_id for d in decisions}
    assert len(keys) == len(users)
    for u in users:
        newest = max((d for d in decisions if d.txn.user_id == u), key=lambda d: d.txn.ts)
        assert client.hget(redis_prefix + u, "last_decision_id") == newest.alert_id
    client.close()

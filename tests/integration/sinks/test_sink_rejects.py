"""Issue 13 item 2 and 8: a decision PostgreSQL refuses for its content is
dead-lettered and the rest of its batch written (both layouts); a connection
no retry can fix (missing database, bad DSN) fails at once, not after the
retry limit."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import orjson
import psycopg
import pytest
import redis
from bytewax.testing import TestingSink

from fraudflow.config.settings import Secret
from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.topics import ensure_topic
from fraudflow.observability import metrics
from fraudflow.records import DeadLetter, Decision
from fraudflow.sinks.postgres import PostgresSink, migrate
from fraudflow.sinks.redis_profiles import RedisProfileSink
from fraudflow.sinks.rejects import REJECTED_CODE
from fraudflow.sinks.retry import SinkError, SinkUnavailable
from tests.support.timescale import Store
from tests.unit.sinks.factory import make_decision

pytestmark = pytest.mark.integration
TIERS = ("approve", "review", "block")


def q(dsn: Secret, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn.reveal()) as c:
        return c.execute(sql, args).fetchall()


def rejected() -> float:
    return metrics.value("fraudflow_sink_rejected_total", {"sink": "postgres"})


def nul_in_text(n: int) -> Decision:
    """A NUL in a text column: refused by psycopg's COPY (client side)."""
    d = make_decision(n, tier="block", user="u-nul")
    return dataclasses.replace(d, txn=dataclasses.replace(d.txn, merchant_id="m\x00evil"))


def nul_in_json(n: int) -> Decision:
    """``\\u0000`` in a jsonb value: refused by the server (untranslatable character)."""
    d = make_decision(n, tier="review", user="u-json")
    return dataclasses.replace(d, detector_scores={**d.detector_scores, "x\x00": 0.5})


def test_refused_rows_are_dead_lettered_and_the_rest_written(store: Store) -> None:
    dead: list[DeadLetter] = []
    part = PostgresSink(store.dsn, dead_letters=TestingSink(dead)).build("pg", 0, 1)
    good = [make_decision(i, tier=TIERS[i % 3], user=f"u{i % 4}") for i in range(40)]
    bad = [nul_in_text(100), nul_in_json(101)]
    batch = [*good[:13], bad[0], *good[13:29], bad[1], *good[29:]]
    before = rejected()
    part.write_batch(batch)
    assert q(store.dsn, "select count(*) from decisions") == [(40,)]
    assert q(store.dsn, "select count(*) from alerts") == [(sum(d.is_alert for d in good),)]
    assert [(d.code, d.step, d.offset) for d in dead] == [
        (REJECTED_CODE, "sink:postgres", 100),
        (REJECTED_CODE, "sink:postgres", 101),
    ]
    assert "NUL" in dead[0].message
    assert dead[0].message.startswith("postgres sink refused the decision: DataError: ")
    assert dead[1].message.startswith("postgres sink refused the decision: ")
    assert dead[0].value is not None
    assert orjson.loads(dead[0].value)["alert_id"] == bad[0].alert_id
    assert rejected() == before + 2
    # a replay: the good rows add nothing, the bad ones are dead-lettered again
    part.write_batch(batch)
    part.close()
    assert q(store.dsn, "select count(*), count(distinct alert_id) from decisions") == [(40, 40)]
    assert len(dead) == 4


def test_a_batch_of_only_refused_rows_writes_nothing_and_does_not_raise(store: Store) -> None:
    dead: list[DeadLetter] = []
    part = PostgresSink(store.dsn, dead_letters=TestingSink(dead)).build("pg", 0, 1)
    part.write_batch([nul_in_text(1)])
    part.write_batch([make_decision(2, tier="block")])  # the connection is still usable
    part.close()
    assert len(dead) == 1
    assert q(store.dsn, "select count(*) from decisions") == [(1,)]


def test_without_a_dead_letter_output_a_refused_row_is_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    part = PostgresSink(store.dsn).build("pg", 0, 1)
    part.write_batch([nul_in_text(7), make_decision(8)])
    part.close()
    assert q(store.dsn, "select count(*) from decisions") == [(1,)]
    assert any("refused the decision" in r.getMessage() for r in caplog.records)


def retries() -> float:
    return metrics.value("fraudflow_sink_retries_total", {"sink": "postgres"})


def test_migrate_fails_at_once_on_a_missing_database(postgres_dsn: str) -> None:
    dsn = Secret(postgres_dsn.rpartition("/")[0] + "/fraudflow_no_such_database")
    before = retries()
    with pytest.raises(SinkError, match="does not exist") as info:
        migrate(dsn, retry_limit=timedelta(seconds=600))
    assert not isinstance(info.value, SinkUnavailable)
    assert retries() == before  # no retry at all


def test_migrate_fails_at_once_on_a_bad_dsn_without_echoing_it() -> None:
    dsn = Secret("postgresql://fraud:Pw-n0t-sh0wn@127.0.0.1:5432/x?no_such_option=1")
    before = retries()
    with pytest.raises(SinkError) as info:
        migrate(dsn, retry_limit=timedelta(seconds=600))
    assert not isinstance(info.value, SinkUnavailable)
    assert "Pw-n0t-sh0wn" not in str(info.value)
    assert retries() == before


def test_the_sink_also_fails_at_once_on_a_missing_database(postgres_dsn: str) -> None:
    dsn = Secret(postgres_dsn.rpartition("/")[0] + "/fraudflow_no_such_database")
    part = PostgresSink(dsn, retry_limit=timedelta(seconds=600)).build("pg", 0, 1)
    with pytest.raises(SinkError, match="does not exist") as info:
        part.write_batch([make_decision(1)])
    assert not isinstance(info.value, SinkUnavailable)
    part.close()


def test_run_stops_with_one_clear_line_when_the_database_is_missing(
    postgres_dsn: str, broker: EmbeddedBroker, topic: str
) -> None:
    # a reachable broker and an existing topic, so the start-up checks pass and the
    # migration meets the missing database
    ensure_topic(broker.bootstrap, topic, 1)
    missing = postgres_dsn.rpartition("/")[0] + "/fraudflow_no_such_database"
    cmd = [sys.executable, "-m", "fraudflow", "run", "--brokers", broker.bootstrap,
           "--input-topic", topic, "--postgres-dsn", missing, "--quiet"]  # fmt: skip
    env = {**os.environ, "FRAUDFLOW_SINK_RETRY_LIMIT": "600s"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("fraudflow: error:")]
    assert len(errors) == 1
    assert "postgres sink" in errors[0]
    assert "does not exist" in errors[0]


def lone_surrogate(n: int) -> Decision:
    """Text no UTF-8 encoder accepts (a lone surrogate): refused before it leaves."""
    return make_decision(n, tier="block", user="u\ud800x", txn_id=f"t-surrogate-{n}")


def test_unencodable_text_is_dead_lettered_by_postgres(store: Store) -> None:
    dead: list[DeadLetter] = []
    part = PostgresSink(store.dsn, dead_letters=TestingSink(dead)).build("pg", 0, 1)
    part.write_batch([make_decision(1), lone_surrogate(2), make_decision(3)])
    part.close()
    assert q(store.dsn, "select count(*) from decisions") == [(2,)]
    assert [(d.code, d.offset) for d in dead] == [(REJECTED_CODE, 2)]
    assert "UnicodeEncodeError" in dead[0].message


def test_redis_dead_letters_a_refused_key_and_writes_the_others(
    redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.set(redis_prefix + "u-clash", "not a hash")  # HSET on it: WRONGTYPE
    dead: list[DeadLetter] = []
    sink = RedisProfileSink(
        Secret(redis_url),
        timedelta(hours=1),
        key_prefix=redis_prefix,
        dead_letters=TestingSink(dead),
    )
    part = sink.build("redis", 0, 1)
    before = metrics.value("fraudflow_sink_rejected_total", {"sink": "redis"})
    ok = make_decision(1, user="u-ok")
    part.write_batch([ok, make_decision(2, user="u-clash"), lone_surrogate(3)])
    part.close()
    assert client.hget(redis_prefix + "u-ok", "last_decision_id") == ok.alert_id
    assert [(d.code, d.step, d.offset) for d in dead] == [
        (REJECTED_CODE, "sink:redis", 3),
        (REJECTED_CODE, "sink:redis", 2),
    ]
    assert "WRONGTYPE" in dead[1].message
    assert metrics.value("fraudflow_sink_rejected_total", {"sink": "redis"}) == before + 2
    client.close()

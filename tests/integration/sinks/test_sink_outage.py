"""Stores that go down mid-stream: private servers this test may stop and start.

Retries must happen (and be counted), every alert must arrive exactly once
after the server comes back within the limit, and an outage longer than the
limit must raise so the process exits and recovery replays.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest
import redis

from fraudflow.config.settings import Secret
from fraudflow.observability import metrics
from fraudflow.sinks.postgres import PostgresSink, migrate
from fraudflow.sinks.redis_profiles import RedisProfileSink
from fraudflow.sinks.retry import SinkUnavailable
from tests.support.services import PrivatePostgres, PrivateRedis, private_postgres, private_redis
from tests.unit.sinks.factory import make_decision

pytestmark = pytest.mark.integration
TIERS = ("approve", "review", "block")


@pytest.fixture
def pg() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest.fixture
def rds() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll until ``cond`` holds; fail (not skip) if it never does."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


class Writer(threading.Thread):
    """Runs one write_batch in the background and keeps its outcome."""

    def __init__(self, fn: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.fn()
        except BaseException as exc:
            self.error = exc


def retries(sink: str) -> float:
    return metrics.value("fraudflow_sink_retries_total", {"sink": sink})


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as c:
        row = c.execute(f"select count(*), count(distinct alert_id) from {table}").fetchone()
    assert row is not None
    assert row[0] == row[1]
    return int(row[0])


def test_postgres_outage_within_the_limit_loses_and_duplicates_nothing(pg: PrivatePostgres) -> None:
    dsn = Secret(pg.dsn)
    migrate(dsn)
    part = PostgresSink(dsn, retry_limit=timedelta(seconds=60)).build("pg", 0, 1)
    ds = [make_decision(i, tier=TIERS[i % 3], user=f"u{i % 7}") for i in range(60)]
    part.write_batch(ds[:20])
    pg.stop()
    before = retries("postgres")
    w = Writer(lambda: part.write_batch(ds[20:40]))
    w.start()
    wait_for(lambda: retries("postgres") >= before + 3, "three PostgreSQL retries")
    assert w.is_alive()  # still holding the batch, not dropping it
    pg.start()
    w.join(timeout=60)
    assert not w.is_alive()
    assert w.error is None
    part.write_batch(ds[20:60])  # the restart replays part of what was written
    part.close()
    assert count(pg.dsn, "decisions") == 60
    assert count(pg.dsn, "alerts") == sum(d.is_alert for d in ds)


def test_postgres_outage_past_the_limit_raises(pg: PrivatePostgres) -> None:
    dsn = Secret(pg.dsn)
    migrate(dsn)
    part = PostgresSink(dsn, retry_limit=timedelta(seconds=1)).build("pg", 0, 1)
    part.write_batch([make_decision(1)])
    pg.stop()
    before = retries("postgres")
    with pytest.raises(SinkUnavailable, match="postgres sink: store unavailable"):
        part.write_batch([make_decision(2)])
    assert retries("postgres") > before
    pg.start()
    # the process would exit here; a restarted sink replays and finds the first row once
    again = PostgresSink(dsn).build("pg", 0, 1)
    again.write_batch([make_decision(1), make_decision(2)])
    again.close()
    assert count(pg.dsn, "decisions") == 2


def test_redis_outage_within_the_limit(rds: PrivateRedis) -> None:
    sink = RedisProfileSink(Secret(rds.url), timedelta(hours=1), retry_limit=timedelta(seconds=60))
    part = sink.build("redis", 0, 1)
    first = [make_decision(i, user=f"u{i}") for i in range(5)]
    part.write_batch(first)
    rds.stop()
    before = retries("redis")
    newer = [make_decision(10 + i, user=f"u{i}", at="2024-03-11T00:00:00") for i in range(5)]
    w = Writer(lambda: part.write_batch(newer))
    w.start()
    wait_for(lambda: retries("redis") >= before + 3, "three Redis retries")
    assert w.is_alive()
    rds.start()
    w.join(timeout=60)
    assert w.error is None
    client = redis.Redis.from_url(rds.url, decode_responses=True)
    # the restarted server had lost its scripts: they were loaded again
    for d in newer:
        assert client.hget(f"fraudflow:profile:{d.txn.user_id}", "last_decision_id") == d.alert_id
    part.write_batch(first)  # a replay of older decisions changes nothing
    for d in newer:
        assert client.hget(f"fraudflow:profile:{d.txn.user_id}", "last_decision_id") == d.alert_id
    part.close()
    client.close()


def test_redis_outage_past_the_limit_raises(rds: PrivateRedis) -> None:
    url = rds.url.replace("redis://", "redis://:n0t-shown@")
    # a password the server does not need is fine for this test: it never answers
    part = RedisProfileSink(
        Secret(url), timedelta(hours=1), retry_limit=timedelta(seconds=1)
    ).build("redis", 0, 1)
    rds.stop()
    with pytest.raises(SinkUnavailable, match="redis sink: store unavailable") as info:
        part.write_batch([make_decision(1)])
    assert "n0t-shown" not in str(info.value)
    part.close()

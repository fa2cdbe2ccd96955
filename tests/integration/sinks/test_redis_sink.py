"""RedisProfileSink against the machine's real Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis

from fraudflow.config.settings import Secret
from fraudflow.sinks.redis_profiles import RedisProfileSink
from tests.unit.sinks.factory import make_decision

pytestmark = pytest.mark.integration
TTL = timedelta(hours=2)


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def sink(redis_url: str, prefix: str) -> RedisProfileSink:
    return RedisProfileSink(Secret(redis_url), TTL, key_prefix=prefix)


def test_profile_hash_contents_and_ttl(
    redis_url: str, redis_prefix: str, client: redis.Redis
) -> None:
    part = sink(redis_url, redis_prefix).build("redis", 0, 1)
    d = make_decision(1, user="alice", tier="block", rules=("R_X",))
    part.write_batch([d])
    part.close()
    h = client.hgetall(redis_prefix + "alice")
    assert h["user_id"] == "alice"
    assert h["last_tier"] == "block"
    assert float(h["last_score"]) == pytest.approx(0.9)
    assert h["last_alert_id"] == h["last_decision_id"] == d.alert_id
    assert h["last_transaction_id"] == d.txn.transaction_id
    assert float(h["last_event_ts"]) == d.txn.ts
    assert h["last_event_time"] == "2024-03-10T12:00:00.000Z"
    assert (h["count_1m"], h["count_1h"], h["count_24h"]) == ("1", "3", "7")
    assert h["amount_z"] == "2.5"
    assert h["schema"] == "1"
    ttl_ms = client.pttl(redis_prefix + "alice")
    assert 0 < ttl_ms <= TTL.total_seconds() * 1000


def test_latest_in_batch_wins_and_old_events_never_go_back(
    redis_url: str, redis_prefix: str, client: redis.Redis
) -> None:
    part = sink(redis_url, redis_prefix).build("redis", 0, 1)
    t1 = make_decision(1, user="bob", tier="review", at="2024-03-10T12:00:00")
    t2 = make_decision(2, user="bob", tier="approve", at="2024-03-10T12:10:00")
    t3 = make_decision(3, user="bob", tier="approve", at="2024-03-10T12:05:00")
    part.write_batch([t2, t1, t3])  # out of order in one batch
    key = redis_prefix + "bob"
    assert client.hget(key, "last_decision_id") == t2.alert_id
    # an older event (a late record, or a replay of an earlier batch) changes nothing
    part.write_batch([t1])
    part.write_batch([t3])
    assert client.hget(key, "last_decision_id") == t2.alert_id
    assert client.hget(key, "last_tier") == "approve"
    # the last alert stays known across approvals; a newer alert replaces it
    assert client.hget(key, "last_alert_id") is None  # t1 lost to t2 inside the batch
    t4 = make_decision(4, user="bob", tier="block", at="2024-03-10T12:20:00")
    t5 = make_decision(5, user="bob", tier="approve", at="2024-03-10T12:30:00")
    part.write_batch([t4])
    part.write_batch([t5])
    assert client.hget(key, "last_alert_id") == t4.alert_id
    assert client.hget(key, "last_decision_id") == t5.alert_id
    part.close()


def test_replays_are_idempotent_and_ties_are_ordered(
    redis_url: str, redis_prefix: str, client: redis.Redis
) -> None:
    part = sink(redis_url, redis_prefix).build("redis", 0, 1)
    batch = [make_decision(i, user=f"u{i % 5}", at=f"2024-03-10T12:{i:02d}:00") for i in range(20)]
    part.write_batch(batch)
    snap = {k: client.hgetall(k) for k in client.scan_iter(match=redis_prefix + "*")}
    assert len(snap) == 5
    part.write_batch(batch)
    part.write_batch(batch[::-1][:7])
    assert {k: client.hgetall(k) for k in client.scan_iter(match=redis_prefix + "*")} == snap
    # same event time: the higher alert_id wins in whichever order the batches come
    x = make_decision(100, user="tie", at="2024-03-10T13:00:00")
    y = make_decision(101, user="tie", at="2024-03-10T13:00:00")
    win, lose = sorted((x, y), key=lambda d: d.alert_id, reverse=True)
    part.write_batch([win])
    part.write_batch([lose])
    assert client.hget(redis_prefix + "tie", "last_decision_id") == win.alert_id
    part.close()

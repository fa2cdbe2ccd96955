"""Issue 13, acceptance: no poison pill.

Every poison message of the issue, plus 10,000 normal transactions, in one topic on the
real broker, with PostgreSQL and Redis on. ``fraudflow run --exit-at-end`` exits 0, every
received record is scored or dead-lettered, each poison message meets its documented fate
(docs/dead-letters.md, docs/event-time.md), and the normal traffic gets exactly the alerts
of a run without the poison.

Layout of the poison topic, per partition: the poison that is dead-lettered at
validation first (it must not stop the flow before any normal record), then the normal
traffic, then the poison that is scored or dead-lettered by the score step. Each shard
(input partition) has its own model, which learns from every scored record in source
order; putting the scored poison after the normal traffic keeps the normal scores
comparable with the clean run, while a crash on any poison message still fails the run.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from fraudflow.connectors.broker import EmbeddedBroker
from tests.support.system import fresh_database

pytestmark = pytest.mark.integration

NORMAL = 10_000
PARTITIONS = 2
# a 10 MB message needs a producer limit above it (Tansu stores it as is)
BIG = {"message.max.bytes": 20_000_000}
BIG_FETCH = {"fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 20_000_000}
T_PAST = 1_767_225_600_000  # 2026-01-01, after the generated traffic (2025)


def txn(tid: str, user: str, amount: Any, ts_ms: int, **extra: Any) -> dict[str, Any]:
    return {"transaction_id": tid, "user_id": user, "amount": amount, "timestamp": ts_ms, **extra}


def enc(rec: dict[str, Any]) -> bytes:
    return orjson.dumps(rec)


@dataclass(frozen=True)
class Case:
    """One poison message and its documented fate: a dead-letter code, or None (scored)."""

    name: str
    value: bytes
    key: bytes
    fate: str | None


def head_cases() -> list[Case]:
    """Poison that validation dead-letters."""
    ok = txn("pk-1", "p-key", 10.0, T_PAST)
    return [
        Case("600 KB of quotes", b'"' * 600_000, b"p-quote", "oversize"),
        Case("800 KB binary", bytes(range(256)) * 3200, b"p-bin", "oversize"),
        Case("1 MB key", enc(ok), b"k" * 1_000_000, "key_mismatch"),
        Case("10 MB value", b"x" * 10_000_000, b"p-ten", "oversize"),
        Case(
            "NUL in user_id",
            enc(txn("pn-1", "p-nul\x00user", 10.0, T_PAST)),
            b"p-nul\x00user",
            "bad_value",
        ),
        Case(
            "NUL in merchant_id",
            enc(txn("pn-2", "p-nulm", 10.0, T_PAST, merchant_id="m\x00x")),
            b"p-nulm",
            "bad_value",
        ),
        Case(
            "duplicate JSON keys",
            b'{"transaction_id": "pd-1", "user_id": "p-dupkey", "amount": -5, "amount": 5,'
            b' "timestamp": ' + str(T_PAST).encode() + b"}",
            b"p-dupkey",
            "duplicate_key",
        ),
        Case(
            "BEL in merchant_id",
            enc(txn("pc-1", "p-ctl", 10.0, T_PAST, merchant_id="m\x07x")),
            b"p-ctl",
            "bad_value",
        ),
        Case(
            "ESC in transaction_id",
            enc(txn("pc-\x1b[2J", "p-ctl", 10.0, T_PAST)),
            b"p-ctl",
            "bad_value",
        ),
        Case(
            "C1 in channel",
            enc(txn("pc-3", "p-ctl", 10.0, T_PAST, channel="web\x85")),
            b"p-ctl",
            "bad_value",
        ),
        Case(
            "DEL in user_id",
            enc(txn("pc-4", "p-ctl\x7f", 10.0, T_PAST)),
            b"p-ctl\x7f",
            "bad_value",
        ),
    ]


BURST = 6  # card testing: 6 charges of 1.00, 10 s apart (the bundled card_testing rule)


def tail_cases(now_ms: int) -> list[Case]:
    """Poison that reaches the score step: scored, or dead-lettered as `duplicate`."""
    out: list[Case] = []

    def add(name: str, rec: dict[str, Any], fate: str | None) -> None:
        out.append(Case(name, enc(rec), str(rec["user_id"]).encode(), fate))

    for i in range(3):  # three 1e308 within a minute
        add(f"1e308 #{i}", txn(f"pb-{i}", "p-big", 1e308, T_PAST + 20_000 * i), None)
    add("-0.0 amount", txn("pz-1", "p-zero", -0.0, T_PAST), None)
    # a resend (the same bytes), and the same id for two users
    add("original", txn("pr-1", "p-resend", 25.0, T_PAST), None)
    add("resend", txn("pr-1", "p-resend", 25.0, T_PAST), "duplicate")
    add("shared id, user 1", txn("p-shared", "p-share-1", 30.0, T_PAST), None)
    add("shared id, user 2", txn("p-shared", "p-share-2", 30.0, T_PAST), None)
    # a resend after 1,000 events of one user (one a minute: 16.7 h, inside the 24 h horizon)
    for i in range(1000):
        add(f"many #{i}", txn(f"pm-{i}", "p-many", 20.0 + i % 7, T_PAST + 60_000 * i), None)
    add("resend after 1,000", txn("pm-0", "p-many", 20.0, T_PAST), "duplicate")
    # a future-dated transaction, then a card-testing burst; the control user has no future one.
    # Live runs bound a user's clock by wall time: the burst is dated 3 min after `now_ms`, so
    # it is on time (not late) as long as the flow reads it within 8 min of `now_ms`.
    burst_ms = now_ms + 180_000
    for user in ("p-future", "p-control"):
        for h in (3, 2, 1):
            add(f"{user} history", txn(f"{user}-h{h}", user, 40.0, now_ms - h * 3_600_000), None)
        if user == "p-future":
            add("future-dated", txn("p-future-ahead", user, 40.0, now_ms + 12 * 3_600_000), None)
        for i in range(BURST):
            add(f"{user} burst", txn(f"{user}-b{i}", user, 1.0, burst_ms + 10_000 * i), None)
    return out


def produce(bootstrap: str, topic: str, cases: list[Case]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **BIG})
    for c in cases:
        p.produce(topic, value=c.value, key=c.key)
        if len(c.value) + len(c.key) > 100_000:
            assert p.flush(60) == 0
    assert p.flush(60) == 0


def produce_normal(bootstrap: str, topic: str) -> None:
    cmd = [
        sys.executable, "-m", "fraudflow", "produce", "--brokers", bootstrap, "--topic", topic,
        "--count", str(NORMAL), "--users", "300", "--seed", "13",
        "--partitions", str(PARTITIONS), "--quiet",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def run_flow(
    bootstrap: str, topic: str, dsn: str, redis_url: str, prefix: str, tmp: Path
) -> dict[str, Any]:
    summary = tmp / f"{topic}.summary.json"
    cmd = [
        sys.executable, "-m", "fraudflow", "run", "--brokers", bootstrap,
        "--input-topic", topic, "--alerts-topic", f"{topic}-alerts", "--dlq-topic", f"{topic}-dlq",
        "--from-beginning", "--exit-at-end", "--quiet", "--summary-json", str(summary),
    ]  # fmt: skip
    # DSN and URL by environment, as documented (no secret on the command line)
    env = {
        **os.environ,
        "FRAUDFLOW_POSTGRES_DSN": dsn,
        "FRAUDFLOW_REDIS_URL": redis_url,
        "FRAUDFLOW_REDIS_KEY_PREFIX": prefix,
    }
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = orjson.loads(summary.read_bytes())
    return out


def read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` as JSON, up to each partition's end (plain confluent_kafka)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"poison-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 2,
            **BIG_FETCH,
        }
    )
    out: list[dict[str, Any]] = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        assert meta.error is None, meta.error
        pending = set(meta.partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in sorted(pending)])
        deadline = time.monotonic() + 60
        while pending:
            assert time.monotonic() < deadline, f"end of {topic} not reached"
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err.str()
                    pending.discard(msg.partition())
                    continue
                out.append(orjson.loads(msg.value() or b"null"))
    finally:
        consumer.close()
    return out


def alerts_by_txn(alerts: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[float, str]]:
    out: dict[tuple[str, str], tuple[float, str]] = {}
    for a in alerts:
        key = (str(a["user_id"]), str(a["transaction_id"]))
        assert out.setdefault(key, (a["score"], a["tier"])) == (a["score"], a["tier"])
    return out


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"poison-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        r.delete(*keys)


def test_no_poison_pill(
    broker: EmbeddedBroker, postgres_dsn: str, redis_url: str, redis_prefix: str, topic: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    clean, poisoned = f"{topic}-clean", f"{topic}-poison"
    for name in (clean, poisoned):
        broker.create_topic(name, PARTITIONS)
    produce_normal(broker.bootstrap, clean)
    head = head_cases()
    produce(broker.bootstrap, poisoned, head)
    produce_normal(broker.bootstrap, poisoned)
    tail = tail_cases(int(time.time() * 1000))
    produce(broker.bootstrap, poisoned, tail)
    cases = head + tail

    with fresh_database(postgres_dsn) as clean_db, fresh_database(postgres_dsn) as poison_db:
        summary = run_flow(broker.bootstrap, poisoned, poison_db, redis_url, redis_prefix, tmp_path)
        base = run_flow(broker.bootstrap, clean, clean_db, redis_url, f"{redis_prefix}c:", tmp_path)
        with psycopg.connect(poison_db) as db:
            rows = db.execute(
                "select user_id, transaction_id, score, tier, amount::text, late, alert_id"
                " from decisions"
            ).fetchall()

    # every record is scored or dead-lettered; the normal ones all scored
    assert summary["received"] == NORMAL + len(cases)
    assert summary["received"] == summary["valid"] + summary["dead_lettered"]
    assert sum(summary["tiers"].values()) == summary["valid"]
    expected_dead: dict[str, int] = {}
    for c in cases:
        if c.fate is not None:
            expected_dead[c.fate] = expected_dead.get(c.fate, 0) + 1
    assert base["dead_lettered"] == 0
    assert base["received"] == base["valid"] == NORMAL
    assert summary["dead_by_code"] == expected_dead
    assert summary["valid"] == NORMAL + sum(c.fate is None for c in cases)

    # each dead letter names its code; the dead-letter topic holds one per message
    dead = read_topic(broker.bootstrap, f"{poisoned}-dlq")
    assert sorted(d["error"]["code"] for d in dead) == sorted(
        c.fate for c in cases if c.fate is not None
    )
    for d in dead:  # docs/dead-letters.md: at most 130,904 bytes with the default payload
        assert len(orjson.dumps(d)) <= 130_904
    by_size = {d["value_bytes"]: d for d in dead if d["error"]["code"] == "oversize"}
    assert sorted(by_size) == sorted(len(c.value) for c in head if c.fate == "oversize")
    assert {d["error"]["code"] for d in dead if d["key_bytes"] == 1_000_000} == {"key_mismatch"}

    # the scored poison: a decision row each, finite scores
    decided = {(u, t): tuple(rest) for u, t, *rest in rows}
    assert len(decided) == len(rows) == summary["valid"]
    for c in tail:
        if c.fate is None:
            rec = orjson.loads(c.value)
            assert (rec["user_id"], rec["transaction_id"]) in decided, c.name
    big = [decided[("p-big", f"pb-{i}")] for i in range(3)]
    assert all(math.isfinite(s) for s, *_ in big)
    assert decided[("p-zero", "pz-1")][2] == "0"  # -0.0 is not echoed
    # the same id for two users: two rows, two alert ids
    assert decided[("p-share-1", "p-shared")][4] != decided[("p-share-2", "p-shared")][4]
    assert len(rows) == len({(u, t) for u, t, *_ in rows})

    # the future-dated transaction does not blind the user: its burst alerts like the control
    alerts = read_topic(broker.bootstrap, f"{poisoned}-alerts")
    got = alerts_by_txn(alerts)

    def burst_alerts(user: str) -> list[str]:
        keys = [(user, f"{user}-b{i}") for i in range(BURST)]
        return [got[k][1] for k in keys if k in got]

    assert not any(decided[("p-future", f"p-future-b{i}")][3] for i in range(BURST))
    assert len(burst_alerts("p-control")) >= 3
    assert burst_alerts("p-future") == burst_alerts("p-control")

    # Redis profiles were written for the scored poison users
    r = redis.Redis.from_url(redis_url)
    for user in ("p-big", "p-zero", "p-many", "p-future", "p-share-1", "p-share-2"):
        assert r.exists(f"{redis_prefix}{user}"), user
    assert r.hget(f"{redis_prefix}p-zero", "last_amount") in (b"0", b"0.0")
    assert float(r.hget(f"{redis_prefix}p-big", "last_amount") or b"nan") == 1e308

    # every alert of the normal traffic, with the same score and tier
    expected = alerts_by_txn(read_topic(broker.bootstrap, f"{clean}-alerts"))
    assert len(expected) > 50
    normal = {k: v for k, v in got.items() if not k[0].startswith("p-")}
    assert normal == expected

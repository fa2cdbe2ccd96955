"""Issue 4 on a real broker, PostgreSQL and Redis: the alerts table holds exactly
the alert_ids of the alerts topic, a second run of the same input adds no rows,
Redis has each alerted user's profile, and /metrics answers during the run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid

import psycopg
import pytest
import redis

from fraudflow.connectors.broker import EmbeddedBroker, free_port
from fraudflow.connectors.topics import read_topic
from fraudflow.generator.stream import produce_to_kafka

pytestmark = pytest.mark.integration


def metric(text: str, name: str) -> float:
    """Sum of every sample of ``name`` (all label sets)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head = line.split(" ")[0]
            if head == name or head.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_stores_match_the_alerts_topic_and_metrics_are_served(
    broker: EmbeddedBroker, database: str, redis_url: str, topic: str
) -> None:
    produce_to_kafka(
        broker.bootstrap, topic, 20_000, users=500, seed=21, malformed=30, partitions=2
    )
    prefix = f"fraudflow-test:{uuid.uuid4().hex[:8]}:profile:"
    port = free_port()
    env = {**os.environ, "FRAUDFLOW_REDIS_KEY_PREFIX": prefix}

    def run(alerts: str, metrics_port: int | None) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "fraudflow", "run", "--brokers", broker.bootstrap,
               "--input-topic", topic, "--alerts-topic", alerts, "--dlq-topic", f"{alerts}-dlq",
               "--from-beginning", "--exit-at-end", "--quiet", "--postgres-dsn", database,
               "--redis-url", redis_url]  # fmt: skip
        if metrics_port is not None:
            cmd += ["--metrics-port", str(metrics_port)]
        return subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    proc = run(f"{topic}-a1", port)
    scraped = ""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                text = r.read().decode()
            if metric(text, "fraudflow_records_received_total") > 0:
                scraped = text
        except OSError:
            pass
        time.sleep(0.3)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]

    assert scraped, "/metrics never answered with records during the run"
    received = metric(scraped, "fraudflow_records_received_total")
    assert 0 < received <= 20_030
    assert metric(scraped, "fraudflow_records_dead_lettered_total") <= 30
    for name in ("fraudflow_alerts_total", "fraudflow_score_bucket", "fraudflow_active_users",
                 "fraudflow_event_time_lag_seconds", "fraudflow_batch_size_count"):  # fmt: skip
        assert name.split("_bucket")[0].split("_count")[0] in scraped, name

    topic_ids = {str(a["alert_id"]) for a in read_topic(broker.bootstrap, f"{topic}-a1")}
    with psycopg.connect(database) as c:
        table_ids = {r[0] for r in c.execute("select alert_id from alerts").fetchall()}
        (decisions,) = c.execute("select count(*) from decisions").fetchone() or (0,)
        (users,) = c.execute("select count(distinct user_id) from decisions").fetchone() or (0,)
    assert table_ids == topic_ids
    assert decisions == 20_000

    again = run(f"{topic}-a2", None)
    _out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    with psycopg.connect(database) as c:
        (rows,) = c.execute("select count(*) from alerts").fetchone() or (0,)
        (decisions2,) = c.execute("select count(*) from decisions").fetchone() or (0,)
    assert rows == len(table_ids)
    assert decisions2 == 20_000

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys: list[str] = []
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        assert len(keys) == users  # every user seen has a profile
        alerted_user = next(iter(read_topic(broker.bootstrap, f"{topic}-a1")))["user_id"]
        profile = client.hgetall(f"{prefix}{alerted_user}")
        assert profile["last_tier"] in ("approve", "review", "block")
        assert 0 < client.ttl(f"{prefix}{alerted_user}") <= 7 * 86400
    finally:
        if keys:
            client.delete(*keys)
        client.close()

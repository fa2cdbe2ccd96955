"""Issue 17 acceptance: a catch-up run with the labels topic ahead of the transactions
loses no label. Every label lands in PostgreSQL's ``labels`` table and joins the
``feature_log`` row of its transaction, though all labels were read before it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from confluent_kafka import Producer

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.topics import read_topic

pytestmark = pytest.mark.integration

N = 300
# recent event times: with TimescaleDB the feature log's retention policy (400 days) would
# drop older rows while the test reads them
T0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=40)


def produce(broker: EmbeddedBroker, topic: str) -> tuple[str, str]:
    tx, labels = f"{topic}-tx", f"{topic}-labels"
    broker.create_topic(tx, 2)
    broker.create_topic(labels, 1)
    broker.create_topic(f"{topic}-dlq", 1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    # the labels first: a catch-up run reads them all before most transactions
    for i in range(N):
        at = T0 + timedelta(days=7, minutes=i)
        value = {
            "transaction_id": f"tx-{i}",
            "label": int(i % 10 == 0),
            "reported_at": at.isoformat(),
        }
        p.produce(labels, key=f"u{i % 17}".encode(), value=orjson.dumps(value))
    # a later verdict for tx-1 (fraud after all), and an older one for tx-0 (ignored)
    for tid, lab, days in (("tx-1", 1, 9), ("tx-0", 0, 1)):
        value = {"transaction_id": tid, "label": lab,
                 "reported_at": (T0 + timedelta(days=days)).isoformat()}  # fmt: skip
        p.produce(labels, key=b"u0", value=orjson.dumps(value))
    p.flush(10)
    for i in range(N):
        user = f"u{i % 17}"
        rec = {"transaction_id": f"tx-{i}", "user_id": user, "amount": 10.0 + i % 50,
               "timestamp": (T0 + timedelta(minutes=i)).isoformat(),
               "merchant_id": f"m{i % 7}"}  # fmt: skip
        p.produce(tx, key=user.encode(), value=orjson.dumps(rec))
    assert p.flush(30) == 0
    return tx, labels


def counts(dsn: str) -> tuple[int, int]:
    """(labels stored, transactions logged), (0, 0) before the tables exist."""
    try:
        with psycopg.connect(dsn) as c:
            n_labels = c.execute("select count(*) from labels").fetchone()
            n_logged = c.execute(
                "select count(distinct transaction_id) from feature_log"
            ).fetchone()
    except psycopg.errors.UndefinedTable:
        return 0, 0
    return int(n_labels[0]) if n_labels else 0, int(n_logged[0]) if n_logged else 0


def test_labels_ahead_of_transactions_are_all_kept_and_joined(
    broker: EmbeddedBroker, topic: str, database: str
) -> None:
    tx, labels = produce(broker, topic)
    env = {
        **os.environ,
        "FRAUDFLOW_LABELS_TOPIC": labels,
        "FRAUDFLOW_LABEL_STORE": "true",
        "FRAUDFLOW_FEATURE_LOG": "true",
        "FRAUDFLOW_POSTGRES_DSN": database,
    }
    cmd = [sys.executable, "-m", "fraudflow", "run", "--brokers", broker.bootstrap,
           "--input-topic", tx, "--alerts-topic", f"{topic}-alerts", "--dlq-topic",
           f"{topic}-dlq", "--from-beginning", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while counts(database) != (N, N):
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline, f"(labels, logged) = {counts(database)}"
            time.sleep(0.3)
        time.sleep(2)  # a late re-delivery of the older tx-0 verdict would show now
    finally:
        proc.terminate()
        proc.wait(30)
    with psycopg.connect(database) as conn:
        stored = dict(conn.execute("select transaction_id, label from labels").fetchall())
        joined = conn.execute(
            "select count(*) from labels l join feature_log f using (transaction_id)"
        ).fetchone()
        logged = conn.execute("select count(distinct transaction_id) from feature_log").fetchone()
    assert len(stored) == N  # no label lost
    assert stored["tx-1"] == 1  # the later verdict won
    assert stored["tx-0"] == 1  # the older one did not replace the newer
    assert stored["tx-2"] == 0
    assert logged == (N,)
    assert joined == (N,)  # every label meets the logged inputs of its transaction
    dead = read_topic(broker.bootstrap, f"{topic}-dlq")
    assert not [d for d in dead if "label" in orjson.dumps(d).decode()]


def test_missing_labels_topic_is_a_clear_error(
    broker: EmbeddedBroker, topic: str, database: str
) -> None:
    """The labels store on a labels topic that does not exist would stay empty, silently:
    the flow refuses to start and names the topic."""
    broker.create_topic(f"{topic}-tx", 1)
    env = {**os.environ, "FRAUDFLOW_LABEL_STORE": "true", "FRAUDFLOW_POSTGRES_DSN": database}
    cmd = [sys.executable, "-m", "fraudflow", "run", "--brokers", broker.bootstrap,
           "--input-topic", f"{topic}-tx", "--labels-topic", f"{topic}-nolabels",
           "--exit-at-end", "--quiet"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"topic '{topic}-nolabels' does not exist" in done.stderr


def test_run_feedback_is_refused_as_retired(broker: EmbeddedBroker, topic: str) -> None:
    """``fraudflow run --feedback`` (and FRAUDFLOW_FEEDBACK) fail at start, naming the setting
    and its successor, before any broker is asked."""
    for extra, env in (
        (["--feedback"], {}),
        ([], {"FRAUDFLOW_FEEDBACK": "true"}),
    ):
        cmd = [sys.executable, "-m", "fraudflow", "run", "--brokers", broker.bootstrap,
               "--input-topic", f"{topic}-tx", "--quiet", *extra]  # fmt: skip
        done = subprocess.run(
            cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr[-2000:]
        assert "feedback.feedback was retired with the in-flow feedback step" in done.stderr
        assert "docs/training.md" in done.stderr

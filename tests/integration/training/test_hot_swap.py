"""Issue 17 acceptance: ``fraudflow train`` publishes a model, a running 2-process flow
picks it up without a restart, its decisions carry the new version, and their scores
equal a 1-process run's with the same model version (pinned)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import Producer

from fraudflow.backtest.replay import CollectSink
from fraudflow.config.settings import load_settings
from fraudflow.connectors.broker import EmbeddedBroker, free_port
from fraudflow.flows.detection import build_flow
from fraudflow.flows.wiring import kafka_io, run_flow
from fraudflow.records import Decision

pytestmark = pytest.mark.integration

# recent event times: with TimescaleDB the feature log's retention policy (400 days) would
# drop older rows while the test reads them
T0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=40)
DAYS = 20
TRAIN_ROWS = 3000
SWAP_WAIT = 10.0  # seconds the flow has to serve a published model (issue 17)


def transactions(rng: random.Random, prefix: str, n: int, start: datetime, span: timedelta
                 ) -> list[dict[str, Any]]:  # fmt: skip
    """Users u00..u19; merchant m-bad is compromised: half its visits are fraud, larger."""
    out = []
    for i in range(n):
        merchant = "m-bad" if rng.random() < 0.08 else f"m{rng.randrange(12)}"
        fraud = int(merchant == "m-bad" and rng.random() < 0.5)
        out.append({
            "transaction_id": f"{prefix}-{i}", "user_id": f"u{rng.randrange(20):02d}",
            "amount": round(rng.lognormvariate(3, 0.5) * (4 if fraud else 1), 2),
            "timestamp": (start + span * i / n).isoformat(), "merchant_id": merchant,
            "_label": fraud,
        })  # fmt: skip
    return out


def send(bootstrap: str, topic: str, recs: list[dict[str, Any]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for r in recs:
        p.produce(topic, key=r["user_id"].encode(), value=orjson.dumps(r))
    p.flush(10)


def run_cmd(bootstrap: str, topic: str, prefix: str) -> list[str]:
    return [sys.executable, "-m", "fraudflow", "run", "--brokers", bootstrap,
            "--input-topic", topic, "--alerts-topic", f"{prefix}-alerts",
            "--dlq-topic", f"{prefix}-dlq", "--from-beginning", "--quiet"]  # fmt: skip


def versions_seen(dsn: str, ids: list[str]) -> dict[str, str]:
    try:
        with psycopg.connect(dsn) as c:
            return dict(c.execute(
                "select transaction_id, model_version from decisions"
                " where transaction_id = any(%s)", (ids,)).fetchall())  # fmt: skip
    except psycopg.errors.UndefinedTable:
        return {}


def test_train_publishes_and_a_running_cluster_swaps_in_the_model(
    broker: EmbeddedBroker, topic: str, database: str, tmp_path: Path
) -> None:
    rng = random.Random(5)
    env = {**os.environ, "FRAUDFLOW_POSTGRES_DSN": database, "FRAUDFLOW_FEATURE_LOG": "true"}
    # 1. a feature log to train on: a 1-process catch-up over 20 days of history
    hist = f"{topic}-hist"
    broker.create_topic(hist, 2)
    history = transactions(rng, "h", TRAIN_ROWS, T0, timedelta(days=DAYS))
    send(broker.bootstrap, hist, history)
    done = subprocess.run([*run_cmd(broker.bootstrap, hist, topic), "--exit-at-end"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with psycopg.connect(database) as c, c.cursor() as cur:
        cur.executemany(
            "insert into labels (transaction_id, label, reported_at) values (%s, %s, %s)",
            [(r["transaction_id"], r["_label"],
              datetime.fromisoformat(r["timestamp"]) + timedelta(days=1)) for r in history],
        )  # fmt: skip
    # 2. a 2-process flow with the trained model on, tailing a live topic (no model yet)
    live = f"{topic}-live"
    broker.create_topic(live, 2)
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    live_env = {**env, "FRAUDFLOW_TRAINED_MODEL": "true", "FRAUDFLOW_MODEL_RELOAD_INTERVAL": "1s"}
    procs = []
    for i in range(2):
        log = (tmp_path / f"flow-{i}.log").open("wb")
        cmd = [*run_cmd(broker.bootstrap, live, topic), "--process-id", str(i),
               "--addresses", addresses]  # fmt: skip
        procs.append(subprocess.Popen(cmd, env=live_env, stdout=log, stderr=subprocess.STDOUT))
    try:
        start = T0 + timedelta(days=DAYS + 3)
        before = transactions(rng, "a", 200, start, timedelta(hours=5))
        send(broker.bootstrap, live, before)
        ids = [r["transaction_id"] for r in before]
        deadline = time.monotonic() + 120
        while len(seen := versions_seen(database, ids)) < len(ids):
            assert all(p.poll() is None for p in procs), (tmp_path / "flow-0.log").read_text()
            assert time.monotonic() < deadline, f"{len(seen)} of {len(ids)} decisions"
            time.sleep(0.2)
        assert not any(v.startswith("gbm-") for v in seen.values())  # no model yet
        # 3. train and publish
        cutoff = (T0 + timedelta(days=DAYS + 2)).isoformat()
        trained = subprocess.run(
            [sys.executable, "-m", "fraudflow", "train", "--cutoff", cutoff, "--label-delay",
             "1d", "--holdout", "4d", "--horizon", "1000d"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert trained.returncode == 0, trained.stdout + trained.stderr[-2000:]
        assert "promoted" in trained.stdout
        with psycopg.connect(database) as c:
            row = c.execute("select version from model_registry where promoted").fetchone()
        assert row is not None
        version = str(row[0])
        # 4. probes on every user (both partitions) until each process serves the new model
        probes: list[str] = []
        published = time.monotonic()
        t = start + timedelta(hours=6)
        while True:
            batch = transactions(rng, f"p{len(probes)}", 40, t, timedelta(minutes=30))
            t += timedelta(hours=1)
            send(broker.bootstrap, live, batch)
            probes += [r["transaction_id"] for r in batch]
            time.sleep(0.5)
            got = versions_seen(database, probes)
            new = {tid for tid, v in got.items() if v == version}
            if len(new) >= 40 and _both_partitions(database, new):
                break
            assert time.monotonic() - published < SWAP_WAIT + 30, "the model was not swapped in"
        after = transactions(rng, "b", 200, t + timedelta(hours=1), timedelta(hours=5))
        send(broker.bootstrap, live, after)
        b_ids = [r["transaction_id"] for r in after]
        deadline = time.monotonic() + 120
        while len(got_b := versions_seen(database, b_ids)) < len(b_ids):
            assert time.monotonic() < deadline, f"{len(got_b)} of {len(b_ids)} decisions"
            time.sleep(0.2)
        assert set(got_b.values()) == {version}  # every decision carries the new version
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    # 5. a 1-process run with that version pinned scores the same
    with psycopg.connect(database) as c:
        two = dict(c.execute(
            "select transaction_id, score from decisions where model_version = %s",
            (version,)).fetchall())  # fmt: skip
    settings = load_settings(environ={
        **{k: v for k, v in env.items() if k.startswith("FRAUDFLOW_")},
        "FRAUDFLOW_TRAINED_MODEL": "true", "FRAUDFLOW_MODEL_PIN": version,
        "FRAUDFLOW_FEATURE_LOG": "false", "FRAUDFLOW_BROKERS": broker.bootstrap,
        "FRAUDFLOW_INPUT_TOPIC": live, "FRAUDFLOW_FROM_BEGINNING": "true",
        "FRAUDFLOW_EXIT_AT_END": "true", "FRAUDFLOW_ALERTS_TOPIC": f"{topic}-alerts",
        "FRAUDFLOW_DLQ_TOPIC": f"{topic}-dlq",
    })  # fmt: skip
    one: list[Decision] = []
    run_flow(build_flow(settings, kafka_io(settings, [("collect", CollectSink(one))])), settings)
    single = {d.txn.transaction_id: d for d in one}
    assert len(two) >= 240
    assert len({round(v, 6) for v in two.values()}) > 10  # a real model, not a constant
    for tid, score in two.items():
        assert single[tid].model_version == version
        assert single[tid].score == pytest.approx(score, abs=1e-9), tid


def _both_partitions(dsn: str, ids: set[str]) -> bool:
    with psycopg.connect(dsn) as c:
        parts = c.execute(
            "select distinct source_partition from decisions where transaction_id = any(%s)",
            (list(ids),),
        ).fetchall()
    return len(parts) == 2

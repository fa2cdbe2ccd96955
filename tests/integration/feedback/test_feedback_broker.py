"""Label feedback on a real broker: labels published to the labels topic change
the entity risk features and the supervised model's scores of later
transactions, and what was learned survives a SIGKILL restart.

Labels come in two rounds. The first makes merchant ``m-bad`` risky, but the
rows it labels were scored before any label, so their entity features were
all zero and teach the model nothing about them (a constant input is
standardised to 0). The second round labels rows scored *after* the first,
whose entity features already told ``m-bad`` apart: only then can the model
score ``m-bad`` above ``m0``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.topics import read_topic

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
USERS = 20
BAD_USERS = range(8)  # the users whose phase-1 visits to m-bad are confirmed fraud
CLEAN_USERS = range(8, USERS)  # no phase-1 fraud: their devices stay below the overall rate
ENTITY_RISKY = 0.1  # m-bad's entity risk is ~0.41 after round 1, ~0.56 after round 2
ENTITY_CLEAN = 0.01  # m0 has no fraud: its smoothed rate is below the overall one, risk 0


@dataclass
class Topics:
    tx: str
    labels: str
    alerts: str
    dlq: str


@dataclass
class Feed:
    """Produces transactions and labels, and remembers what it sent."""

    producer: Producer
    topics: Topics
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    amounts: dict[str, float] = field(default_factory=dict)
    sent: dict[str, tuple[datetime, str]] = field(default_factory=dict)  # id -> (time, merchant)

    def transactions(self, name: str, start: datetime, visits: dict[int, list[str]]) -> list[str]:
        """User ``u`` visits ``visits[u]`` an hour apart from ``start``; ids in event-time order."""
        planned = sorted(
            (start + j * HOUR + u * timedelta(minutes=5), u, j, merchant)
            for u, merchants in visits.items()
            for j, merchant in enumerate(merchants)
        )
        ids = []
        for ts, u, j, merchant in planned:
            user = f"u{u:02d}"
            base = self.amounts.setdefault(user, self.rng.uniform(20.0, 80.0))
            tid = f"{name}-{user}-{j:02d}"
            rec = {
                "transaction_id": tid,
                "user_id": user,
                "amount": round(base * self.rng.uniform(0.8, 1.2), 2),
                "currency": "EUR",
                "timestamp": ts.isoformat(),
                "merchant_id": merchant,
                "country": "DE",
                "device_id": f"d-{user}",
            }
            self.producer.produce(self.topics.tx, key=user.encode(), value=orjson.dumps(rec))
            self.sent[tid] = (ts, merchant)
            ids.append(tid)
        self.producer.flush(10)
        return ids

    def labels(self, ids: list[str], reported: datetime, marker: str) -> None:
        """Fraud for m-bad rows, legit for the rest, then a label of an unknown transaction.

        Half of them say "fraud"/"legit" with RFC 3339 times, half 1/0 with epoch ms.
        """
        for i, tid in enumerate([*ids, marker]):
            fraud = tid == marker or self.sent[tid][1] == "m-bad"
            at = reported + timedelta(seconds=i)
            value: dict[str, Any] = (
                {"label": "fraud" if fraud else "legit", "reported_at": at.isoformat()}
                if i % 2
                else {"label": int(fraud), "reported_at": int(at.timestamp() * 1000)}
            )
            value["transaction_id"] = tid
            self.producer.produce(self.topics.labels, key=tid.encode(), value=orjson.dumps(value))
        self.producer.flush(10)


class DeadLetters:
    """Tails the dead-letter topic from its start."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"feedback-test-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.seen: list[dict[str, Any]] = []

    def wait_for_unknown(self, tid: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.consumer.consume(100, 0.2):
                value = m.value()
                if m.error() is None and value is not None:
                    self.seen.append(orjson.loads(value))
            if any(_unknown_label_id(d) == tid for d in self.seen):
                return
        raise AssertionError(f"no label_unknown_transaction dead letter for {tid} in {timeout}s")

    def close(self) -> None:
        self.consumer.close()


def _unknown_label_id(dead: dict[str, Any]) -> str | None:
    if dead["error"]["code"] != "label_unknown_transaction":
        return None
    assert dead["error"]["step"] == "feedback"
    return str(orjson.loads(dead["value"])["transaction_id"])


class Flow:
    """``fraudflow run --feedback`` in tail mode, as its own process group."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.cmd, self.env, self.log = cmd, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a node loss would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def check_alive(self) -> None:
        assert self.proc is not None
        assert self.proc.poll() is None, f"the flow exited ({self.proc.returncode})\n{self.tail()}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def decisions(dsn: str, ids: list[str], flow: Flow, timeout: float = 60.0) -> dict[str, Any]:
    """The detector scores of every decision in ``ids``, once all of them are in PostgreSQL."""
    deadline = time.monotonic() + timeout
    got: dict[str, Any] = {}
    while True:
        flow.check_alive()
        try:
            with psycopg.connect(dsn) as c:
                got = dict(
                    c.execute(
                        "select transaction_id, detector_scores from decisions"
                        " where transaction_id = any(%s)",
                        (ids,),
                    ).fetchall()
                )
        except psycopg.errors.UndefinedTable:
            pass  # the flow has not migrated the database yet
        if len(got) == len(ids):
            return got
        assert time.monotonic() < deadline, f"{len(got)} of {len(ids)} decisions in {timeout}s"
        time.sleep(0.1)


def assert_learned(scores: dict[str, Any], feed: Feed, what: str) -> None:
    """m-bad is risky and the model ranks it above m0; m0 has no entity risk."""
    bad = {t: s for t, s in scores.items() if feed.sent[t][1] == "m-bad"}
    m0 = {t: s for t, s in scores.items() if feed.sent[t][1] == "m0"}
    assert bad
    assert m0
    detail = f"{what}: m-bad {bad}\nm0 {m0}"
    assert all(s["entity"] > ENTITY_RISKY for s in bad.values()), detail
    assert all(s["entity"] < ENTITY_CLEAN for s in m0.values()), detail
    assert all(s["supervised"] > 0 for s in m0.values()), detail  # past its warm-up
    lowest_bad = min(s["supervised"] for s in bad.values())
    assert lowest_bad > max(s["supervised"] for s in m0.values()), detail


@pytest.fixture
def topics(broker: EmbeddedBroker, topic: str) -> Topics:
    t = Topics(f"{topic}-tx", f"{topic}-labels", f"{topic}-alerts", f"{topic}-dlq")
    broker.create_topic(t.tx, 2)
    broker.create_topic(t.labels, 1)  # before the flow starts: its source needs it
    broker.create_topic(t.alerts, 1)
    broker.create_topic(t.dlq, 1)
    return t


@pytest.fixture
def flow(broker: EmbeddedBroker, topics: Topics, database: str, tmp_path: Path) -> Iterator[Flow]:
    cmd = [
        sys.executable, "-m", "fraudflow", "run", "--brokers", broker.bootstrap,
        "--input-topic", topics.tx, "--feedback", "--labels-topic", topics.labels,
        "--alerts-topic", topics.alerts, "--dlq-topic", topics.dlq, "--from-beginning",
        "--recovery-dir", str(tmp_path / "recovery"), "--snapshot-interval", "1s",
        "--postgres-dsn", database, "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "FRAUDFLOW_SUPERVISED_WARMUP": "5"}
    f = Flow(cmd, env, tmp_path / "flow.log")
    try:
        yield f
    finally:
        f.kill()


def test_labels_change_later_scores_and_survive_sigkill(
    broker: EmbeddedBroker, topics: Topics, database: str, flow: Flow
) -> None:
    feed = Feed(Producer({"bootstrap.servers": broker.bootstrap}), topics)
    dead = DeadLetters(broker.bootstrap, topics.dlq)
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 10 * DAY
    flow.start()
    try:
        # phase 1: ordinary traffic; the bad users' 3rd and 8th visits are to m-bad
        p1 = feed.transactions(
            "p1",
            t0,
            {
                u: ["m-bad" if u in BAD_USERS and j in (2, 7) else f"m{(u + j) % 5}"
                    for j in range(12)]
                for u in range(USERS)
            },
        )  # fmt: skip
        for s in decisions(database, p1, flow).values():
            assert s["entity"] == 0  # nothing labelled yet
            assert s["supervised"] == 0  # not warmed up

        # round 1: m-bad's 16 rows are fraud, the other 224 legit
        last = max(feed.sent[t][0] for t in p1)
        feed.labels(p1, last + HOUR, "unknown-1")
        dead.wait_for_unknown("unknown-1", 60)  # labels are applied in order: all are in

        # phase 2: everyone goes to m-bad once; the clean users also to m0
        p2 = feed.transactions(
            "p2",
            t0 + 3 * DAY,
            {u: ["m-bad", f"m{u % 5}"] if u in BAD_USERS else ["m-bad", "m0", f"m{1 + u % 4}"]
             for u in range(USERS)},
        )  # fmt: skip
        scores = decisions(database, p2, flow)
        bad = [s for t, s in scores.items() if feed.sent[t][1] == "m-bad"]
        assert all(s["entity"] > ENTITY_RISKY for s in bad), bad
        assert all(s["supervised"] > 0 for s in scores.values()), scores  # warmed up

        # round 2: the rows that already carried m-bad's risk teach the model
        feed.labels(p2, t0 + 4 * DAY, "unknown-2")
        dead.wait_for_unknown("unknown-2", 60)

        # phase 3: later transactions at m-bad and m0
        p3 = feed.transactions(
            "p3", t0 + 4 * DAY + 12 * HOUR, {u: ["m-bad", "m0"] for u in CLEAN_USERS[:6]}
        )
        assert_learned(decisions(database, p3, flow), feed, "before the kill")

        time.sleep(3.5)  # > 2 snapshot intervals: the state above is in a snapshot
        flow.kill()
        flow.start()

        # phase 4, after the restart: no new labels, the learned state still scores
        p4 = feed.transactions(
            "p4", t0 + 5 * DAY + 12 * HOUR, {u: ["m-bad", "m0"] for u in CLEAN_USERS[6:]}
        )
        assert_learned(decisions(database, p4, flow), feed, "after the restart")

        # nothing lost, nothing extra, and the labels were not read again
        with psycopg.connect(database) as c:
            rows = c.execute("select transaction_id from decisions").fetchall()
        assert sorted(r[0] for r in rows) == sorted(feed.sent)
        letters = read_topic(broker.bootstrap, topics.dlq)
        assert [_unknown_label_id(d) for d in letters] == ["unknown-1", "unknown-2"], letters
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nflow output:\n{flow.tail()}") from exc
    finally:
        dead.close()


def test_missing_labels_topic_is_a_clear_error(broker: EmbeddedBroker, topic: str) -> None:
    """Feedback on a labels topic that does not exist would learn nothing, silently:
    the flow refuses to start and names the topic."""
    broker.create_topic(f"{topic}-tx", 1)
    cmd = [
        sys.executable, "-m", "fraudflow", "run", "--brokers", broker.bootstrap,
        "--input-topic", f"{topic}-tx", "--feedback", "--labels-topic", f"{topic}-nolabels",
        "--exit-at-end", "--quiet",
    ]  # fmt: skip
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"topic '{topic}-nolabels' does not exist" in done.stderr

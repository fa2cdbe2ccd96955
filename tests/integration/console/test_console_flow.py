"""The console over a real flow run: alerts of ``fraudflow run`` are listed and paged
correctly while more arrive, and an analyst's verdict reaches the running flow's labels
store (``label_store`` on, ``--labels-topic``), where ``fraudflow train`` reads it like
any label (docs/training.md).

Eight users each pay once at ``m-shell-0001``, a merchant on the bundled deny
list: the rule ``blocked_merchant`` makes every one an alert. An analyst marks
them fraud in the console; each verdict lands in the ``labels`` table as fraud.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.topics import read_topic
from fraudflow.console.app import create_app
from tests.integration.console.console_support import auth, console_settings

pytestmark = pytest.mark.integration

SHELL = "m-shell-0001"  # in fraudflow/rules/default/lists/blocked_merchants.txt
USERS = 20
HOUR = timedelta(hours=1)


class Run:
    def __init__(self, broker: EmbeddedBroker, prefix: str, dsn: str, log: Path) -> None:
        self.tx, self.labels, self.alerts, self.dlq = (
            f"{prefix}-tx", f"{prefix}-labels", f"{prefix}-alerts", f"{prefix}-dlq",
        )  # fmt: skip
        broker.create_topic(self.tx, 2)
        for t in (self.labels, self.alerts, self.dlq):
            broker.create_topic(t, 1)
        self.bootstrap = broker.bootstrap
        self.dsn = dsn
        self.log = log
        self.producer = Producer({"bootstrap.servers": broker.bootstrap})
        self.rng = random.Random(5)
        self.sent: dict[str, str] = {}  # transaction id -> merchant
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            sys.executable, "-m", "fraudflow", "run", "--brokers", self.bootstrap,
            "--input-topic", self.tx, "--labels-topic", self.labels,
            "--alerts-topic", self.alerts, "--dlq-topic", self.dlq, "--from-beginning",
            "--postgres-dsn", self.dsn, "--quiet",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, env={**os.environ, "FRAUDFLOW_LABEL_STORE": "true"}, stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def alive(self) -> None:
        assert self.proc is not None
        assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]

    def send(self, name: str, start: datetime, visits: dict[int, list[str]]) -> list[str]:
        planned = sorted(
            (start + j * HOUR + u * timedelta(minutes=3), u, j, m)
            for u, ms in visits.items()
            for j, m in enumerate(ms)
        )
        ids = []
        for ts, u, j, merchant in planned:
            user = f"u{u:02d}"
            tid = f"{name}-{user}-{j:02d}"
            rec = {
                "transaction_id": tid, "user_id": user, "currency": "EUR", "country": "DE",
                "amount": round(self.rng.uniform(20, 60), 2), "timestamp": ts.isoformat(),
                "merchant_id": merchant, "device_id": f"d-{user}",
            }  # fmt: skip
            self.producer.produce(self.tx, key=user.encode(), value=orjson.dumps(rec))
            self.sent[tid] = merchant
            ids.append(tid)
        self.producer.flush(10)
        return ids

    def decisions(self, ids: list[str], timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        got: dict[str, Any] = {}
        while True:
            self.alive()
            with psycopg.connect(self.dsn) as c:
                try:
                    got = dict(
                        c.execute(
                            "select transaction_id, detector_scores from decisions"
                            " where transaction_id = any(%s)",
                            (ids,),
                        ).fetchall()
                    )
                except psycopg.errors.UndefinedTable:
                    got = {}
            if len(got) == len(ids):
                return got
            assert time.monotonic() < deadline, f"{len(got)} of {len(ids)} decisions"
            time.sleep(0.2)


@pytest.fixture
def run(broker: EmbeddedBroker, topic: str, database: str, tmp_path: Path) -> Iterator[Run]:
    r = Run(broker, topic, database, tmp_path / "flow.log")
    try:
        yield r
    finally:
        r.stop()


def _all_pages(client: TestClient, params: dict[str, Any], between: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {**params, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/alerts", params=q, headers=auth("vic", ("viewer",))).json()
        out += body["alerts"]
        between()
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def test_flow_alerts_paged_while_arriving_and_verdicts_stored(run: Run) -> None:
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=10)
    run.start()
    # phase 1: ordinary traffic; users 0..7 also pay once at the shell merchant
    p1 = run.send(
        "p1",
        t0,
        {u: [SHELL if (u < 8 and j == 4) else f"m{(u + j) % 5}" for j in range(10)]
         for u in range(USERS)},
    )  # fmt: skip
    run.decisions(p1)
    shell_1 = [t for t in p1 if run.sent[t] == SHELL]

    settings = console_settings(
        run.dsn, FRAUDFLOW_BROKERS=run.bootstrap, FRAUDFLOW_LABELS_TOPIC=run.labels
    )
    with TestClient(create_app(settings)) as client:
        # page through the queue by time while a second batch of traffic lands
        with psycopg.connect(run.dsn) as c:
            before = {r[0] for r in c.execute("select alert_id from alerts").fetchall()}
        assert len(before) >= len(shell_1)
        extra: list[str] = []
        batches = iter(range(3))

        def more() -> None:
            k = next(batches, None)
            if k is not None:
                extra.extend(
                    run.send(f"p1b{k}", t0 + 2 * timedelta(days=1),
                             {u: [SHELL if u == 10 + k else "m1"] for u in range(USERS)})
                )  # fmt: skip
                time.sleep(1.0)  # let the flow write some of them between pages

        got = _all_pages(client, {"sort": "time", "limit": 3, "status": "any"}, more)
        ids = [a["alert_id"] for a in got]
        assert len(ids) == len(set(ids))
        assert before <= set(ids)
        keys = [(a["event_time"], a["alert_id"]) for a in got]
        assert keys == sorted(keys, reverse=True)

        # the analyst marks the shell-merchant alerts of phase 1 fraud
        shell_alerts = [a for a in got if a["transaction_id"] in shell_1]
        assert len(shell_alerts) == len(shell_1)
        for a in shell_alerts:
            r = client.post(
                f"/api/alerts/{a['alert_id']}/verdict",
                json={"label": "fraud", "note": "merchant confirmed compromised"},
                headers=auth("ana"),
            )
            assert r.status_code == 200, r.text
            assert r.json()["published"] is True
    run.decisions(extra)

    # every verdict reaches the labels store, as fraud, and nothing else is labelled
    deadline = time.monotonic() + 90
    while True:
        run.alive()
        with psycopg.connect(run.dsn) as c:
            try:
                stored = dict(c.execute("select transaction_id, label from labels").fetchall())
            except psycopg.errors.UndefinedTable:
                stored = {}
        if len(stored) >= len(shell_1):
            break
        assert time.monotonic() < deadline, stored
        time.sleep(0.5)
    assert stored == dict.fromkeys(shell_1, 1)
    assert not read_topic(run.bootstrap, run.dlq)  # no verdict label was dead-lettered

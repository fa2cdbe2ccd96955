"""Issue 2 acceptance on a real broker: 100,000 transactions with ~1% injected
anomalies and 1,000 malformed messages through `fraudflow run --exit-at-end`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.topics import read_topic
from fraudflow.generator.stream import produce_to_kafka

pytestmark = pytest.mark.integration

COUNT = 100_000
BAD = 1_000


def run_flow(bootstrap: str, topic: str, alerts: str, dlq: str, summary: Path) -> dict[str, object]:
    cmd = [
        sys.executable,
        "-m",
        "fraudflow",
        "run",
        "--brokers",
        bootstrap,
        "--input-topic",
        topic,
        "--alerts-topic",
        alerts,
        "--dlq-topic",
        dlq,
        "--from-beginning",
        "--exit-at-end",
        "--quiet",
        "--summary-json",
        str(summary),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return orjson.loads(summary.read_bytes())


@pytest.fixture(scope="module")
def produced(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    topic = "e2e-transactions"
    truth = tmp_path_factory.mktemp("e2e") / "truth.jsonl"
    s = produce_to_kafka(
        broker.bootstrap,
        topic,
        COUNT,
        users=2000,
        seed=11,
        anomaly_rate=0.01,
        malformed=BAD,
        partitions=3,
        truth=truth,
    )
    assert s.delivery_errors == 0
    assert s.count == COUNT
    assert sum(s.malformed.values()) == BAD
    return topic, truth


def test_dead_letters_alerts_and_quality(
    broker: EmbeddedBroker, produced: tuple[str, Path], tmp_path: Path
) -> None:
    topic, truth = produced
    summary = run_flow(broker.bootstrap, topic, "e2e-alerts-1", "e2e-dlq-1", tmp_path / "s1.json")
    assert summary["received"] == COUNT + BAD
    assert summary["valid"] == COUNT  # every valid record scored
    assert summary["dead_lettered"] == BAD

    dead = read_topic(broker.bootstrap, "e2e-dlq-1")
    assert len(dead) == BAD
    for d in dead:
        err = d["error"]
        assert isinstance(err, dict)
        assert err["code"]
        assert err["message"]
        assert isinstance(d["source"], dict)
        assert d["source"]["topic"] == topic

    alerts = read_topic(broker.bootstrap, "e2e-alerts-1")
    assert alerts
    for a in alerts:
        assert a["tier"] in ("review", "block")
        assert 0.0 <= float(a["score"]) <= 1.0  # type: ignore[arg-type]
        assert a["reasons"]
        assert a["alert_id"]
        assert a["transaction_id"]
    alerts_file = tmp_path / "alerts.jsonl"
    alerts_file.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts))

    # quality, computed by the repo's own command from the alerts and the ground truth
    ev = subprocess.run(
        [
            sys.executable,
            "-m",
            "fraudflow",
            "evaluate",
            "--alerts",
            str(alerts_file),
            "--truth",
            str(truth),
            "--min-recall",
            "0.8",
            "--max-alert-rate",
            "0.03",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ev.returncode == 0, ev.stdout + ev.stderr

    # the same input again gives the same alert ids
    run_flow(broker.bootstrap, topic, "e2e-alerts-2", "e2e-dlq-2", tmp_path / "s2.json")
    again = read_topic(broker.bootstrap, "e2e-alerts-2")
    assert {a["alert_id"] for a in again} == {a["alert_id"] for a in alerts}
    assert {a["alert_id"]: a["score"] for a in again} == {a["alert_id"]: a["score"] for a in alerts}

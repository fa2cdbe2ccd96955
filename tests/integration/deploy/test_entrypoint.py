"""deploy/entrypoint.sh runs the real flow against Kafka, configured only by environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.topics import read_topic
from fraudflow.generator.stream import produce_to_kafka

ENTRYPOINT = Path(__file__).resolve().parents[3] / "deploy" / "entrypoint.sh"


@pytest.mark.integration
def test_entrypoint_runs_the_flow_from_env(
    broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> None:
    produce_to_kafka(
        broker.bootstrap, topic, 2000, users=100, seed=1, anomaly_rate=0.05, malformed=10,
        partitions=2,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDFLOW_")}
    env.update(
        PATH=f"{os.path.dirname(sys.executable)}:{env.get('PATH', '/usr/bin:/bin')}",
        HOSTNAME="fraudflow-0",
        CLUSTER_REPLICAS="1",
        FRAUDFLOW_BROKERS=broker.bootstrap,
        FRAUDFLOW_INPUT_TOPIC=topic,
        FRAUDFLOW_ALERTS_TOPIC=f"{topic}-alerts",
        FRAUDFLOW_DLQ_TOPIC=f"{topic}-dlq",
        FRAUDFLOW_EXIT_AT_END="true",
        FRAUDFLOW_FROM_BEGINNING="true",
        FRAUDFLOW_RECOVERY_DIR=str(tmp_path / "recovery"),
    )
    out = subprocess.run(
        [str(ENTRYPOINT), "--quiet"], env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(read_topic(broker.bootstrap, f"{topic}-dlq")) == 10
    alerts = read_topic(broker.bootstrap, f"{topic}-alerts")
    assert alerts, "no alerts"
    assert all(a["tier"] in {"review", "block"} and a["transaction_id"] for a in alerts)
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    # the entrypoint's `fraudflow run` created the recovery partition on the empty volume
    assert sorted(p.name for p in (tmp_path / "recovery").glob("part-*.sqlite3")) == [
        "part-0.sqlite3"
    ]

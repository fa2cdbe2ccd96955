"""The README's cluster entry point: `python -m bytewax.run "fraudflow.flows.detection:get_flow()"`
configured only by FRAUDFLOW_* variables."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.topics import read_topic
from fraudflow.generator.stream import produce_to_kafka

pytestmark = pytest.mark.integration


def test_bytewax_run_import_string(broker: EmbeddedBroker, topic: str) -> None:
    produce_to_kafka(broker.bootstrap, topic, 3000, users=100, seed=2, malformed=7, partitions=2)
    env = {
        **os.environ,
        "FRAUDFLOW_BROKERS": broker.bootstrap,
        "FRAUDFLOW_INPUT_TOPIC": topic,
        "FRAUDFLOW_ALERTS_TOPIC": f"{topic}-alerts",
        "FRAUDFLOW_DLQ_TOPIC": f"{topic}-dlq",
        "FRAUDFLOW_FROM_BEGINNING": "true",
        "FRAUDFLOW_EXIT_AT_END": "true",
    }
    cmd = [sys.executable, "-m", "bytewax.run", "fraudflow.flows.detection:get_flow()"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(read_topic(broker.bootstrap, f"{topic}-dlq")) == 7
    alerts = read_topic(broker.bootstrap, f"{topic}-alerts")
    assert alerts
    assert all(a["tier"] in ("review", "block") for a in alerts)

"""SIGTERM/SIGINT stop `python -m bytewax.run "fraudflow.flows.detection:get_flow()"`
gracefully, as they stop `fraudflow run`: the input ends, the batch in hand is finished, the
sinks flush, exit 0 (before, SIGTERM killed the process at once, mid-write)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.topics import read_topic
from fraudflow.generator.stream import produce_to_kafka
from tests.integration.flow.test_graceful_stop import decisions_in
from tests.integration.recovery.test_sigkill import alerts_in
from tests.support.system import fresh_database, wait_until

pytestmark = pytest.mark.integration

COUNT = 20_000


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_the_flow_and_flushes_the_sinks(
    broker: EmbeddedBroker, postgres_dsn: str, topic: str, sig: signal.Signals
) -> None:
    produce_to_kafka(broker.bootstrap, topic, COUNT, users=700, seed=31, partitions=2)
    with fresh_database(postgres_dsn) as db:
        env = {
            **os.environ,
            "FRAUDFLOW_BROKERS": broker.bootstrap,
            "FRAUDFLOW_INPUT_TOPIC": topic,
            "FRAUDFLOW_ALERTS_TOPIC": f"{topic}-alerts",
            "FRAUDFLOW_DLQ_TOPIC": f"{topic}-dlq",
            "FRAUDFLOW_FROM_BEGINNING": "true",
            "FRAUDFLOW_POSTGRES_DSN": db,
        }  # tailing: without a signal it never ends
        cmd = [sys.executable, "-m", "bytewax.run", "fraudflow.flows.detection:get_flow()"]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

        def writing() -> None:
            assert proc.poll() is None, "the flow ended by itself"
            assert decisions_in(db) > 0, "no decisions yet"

        wait_until(writing, "the first decisions", timeout=180.0)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        assert f"{sig.name} received" in err
        assert "Traceback" not in err
        assert "panicked" not in err
        assert 0 < decisions_in(db) < COUNT, "the flow read everything before the signal"
        # both sinks were flushed before the exit: every alert stored is on the topic too
        stored = set(alerts_in(db))
        published = {a["alert_id"] for a in read_topic(broker.bootstrap, f"{topic}-alerts")}
        assert stored
        assert stored == published

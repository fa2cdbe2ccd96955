"""Issue 18 item 4: the start-up banner of `fraudflow run` on the real broker: brokers,
topics with their partitions, rules and model versions, recovery fresh then restored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fraudflow.config.settings import DEFAULT_RULES_DIR
from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.generator.stream import produce_to_kafka

pytestmark = pytest.mark.integration


def run(broker: EmbeddedBroker, topic: str, recovery: Path, *extra: str) -> str:
    cmd = [
        sys.executable, "-m", "fraudflow", "run",
        "--brokers", broker.bootstrap,
        "--input-topic", topic,
        "--alerts-topic", f"{topic}-alerts",
        "--dlq-topic", f"{topic}-dlq",
        "--from-beginning", "--exit-at-end",
        "--recovery-dir", str(recovery),
        "--snapshot-interval", "500ms",
        *extra,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def banner(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    start = lines.index("fraudflow run")
    return lines[start : start + 8]


def test_banner_fresh_then_restored_and_quiet(
    broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> None:
    broker.create_topic(topic, partitions=3)
    broker.create_topic(f"{topic}-alerts", partitions=2)
    sent = produce_to_kafka(broker.bootstrap, topic, 200, users=20, seed=3, partitions=3)
    assert sent.delivery_errors == 0
    recovery = tmp_path / "recovery"

    first = banner(run(broker, topic, recovery))
    assert first[1] == f"  brokers         {broker.bootstrap}"
    assert first[2] == f"  input           {topic} (3 partitions)"
    assert first[3] == f"  alerts          {topic}-alerts (2 partitions)"
    assert first[4].startswith(f"  dead letters    {topic}-dlq (")
    assert first[5].startswith("  rules           ")
    assert first[5].endswith(f" ({DEFAULT_RULES_DIR})")
    assert first[6].startswith("  model           m-")
    assert first[7] == f"  recovery        fresh: no snapshot in {recovery}"

    second = banner(run(broker, topic, recovery))
    assert second[:7] == [first[0], first[1], first[2], first[3], second[4], first[5], first[6]]
    assert second[7].startswith(f"  recovery        restored from snapshot in {recovery}: epoch ")
    assert "1 earlier execution)" in second[7]

    quiet = run(broker, topic, recovery, "--quiet")
    assert "fraudflow run" not in quiet.splitlines()
    assert "  recovery  " not in quiet

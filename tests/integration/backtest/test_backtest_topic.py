"""Issue 6: backtesting a time range of a real topic twice gives byte-identical scores."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.generator.stream import produce_to_kafka

pytestmark = pytest.mark.integration


def backtest(
    broker: EmbeddedBroker, topic: str, out: Path, *window: str
) -> list[dict[str, object]]:
    cmd = [sys.executable, "-m", "fraudflow", "backtest", "--brokers", broker.bootstrap,
           "--topic", topic, "--scores-out", str(out), "--quiet", *window]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def test_same_topic_range_twice_is_byte_identical(
    broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> None:
    produce_to_kafka(broker.bootstrap, topic, 3000, users=150, seed=4, partitions=2)
    middle = int(time.time() * 1000)
    time.sleep(0.05)
    produce_to_kafka(broker.bootstrap, topic, 1000, users=150, seed=8, partitions=2)

    everything = backtest(broker, topic, tmp_path / "all.jsonl")
    assert len(everything) == 4000
    a = backtest(broker, topic, tmp_path / "a.jsonl", "--to", str(middle))
    backtest(broker, topic, tmp_path / "b.jsonl", "--to", str(middle))
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert len(a) == 3000  # only the records before --to
    later = backtest(broker, topic, tmp_path / "later.jsonl", "--from", str(middle))
    assert len(later) == 1000
    assert not {r["transaction_id"] for r in later} & {r["transaction_id"] for r in a}

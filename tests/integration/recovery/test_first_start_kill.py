"""Issue 13 item 3: SIGKILL while the recovery directory is being created, then
restart: the flow runs and processes records (real broker, real ``fraudflow run``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import input as bw_input
from bytewax.operators import output as bw_output
from bytewax.recovery import RecoveryConfig
from bytewax.testing import TestingSink, TestingSource, run_main

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.tools.produce import produce_to_kafka

pytestmark = pytest.mark.integration

COUNT = 2_000


def run_cmd(bootstrap: str, topic: str, recovery: Path, summary: Path) -> list[str]:
    return [
        sys.executable, "-m", "fraudflow", "run", "--brokers", bootstrap, "--input-topic", topic,
        "--alerts-topic", f"{topic}-alerts", "--dlq-topic", f"{topic}-dlq", "--from-beginning",
        "--exit-at-end", "--quiet", "--recovery-dir", str(recovery), "--snapshot-interval", "1s",
        "--summary-json", str(summary),
    ]  # fmt: skip


def restart_processes_records(cmd: list[str], summary: Path) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert orjson.loads(summary.read_bytes())["received"] == COUNT


def kill_when(
    proc: subprocess.Popen[bytes], seen: Callable[[], bool], limit_s: float = 120.0
) -> bool:
    """SIGKILL ``proc`` as soon as ``seen()`` is true; False if it exited first."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end and proc.poll() is None:
        if seen():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
    proc.kill()
    proc.wait()
    return False


@pytest.fixture(scope="module")
def produced(broker: EmbeddedBroker) -> str:
    topic = "first-start-kill"
    s = produce_to_kafka(broker.bootstrap, topic, COUNT, users=100, seed=3)
    assert s.count == COUNT
    return topic


def test_kill_inside_the_partition_build_then_restart(
    broker: EmbeddedBroker, produced: str, tmp_path: Path
) -> None:
    """Kill the process that builds the partitions in the middle of the build (many
    partitions make the window long and the kill certain), then start the real flow."""
    rec = tmp_path / "rec"
    builder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path;"
         "from fraudflow.flows.recovery_dir import prepare_recovery_dir as p;"
         "p(Path(sys.argv[1]), 4000)", str(rec)],
    )  # fmt: skip

    def mid_build() -> bool:
        tmp = next(rec.glob(".fraudflow-init-*"), None) if rec.is_dir() else None
        return tmp is not None and sum(1 for _ in tmp.glob("part-*.sqlite3")) >= 3

    assert kill_when(builder, mid_build), "the build finished before it could be killed"
    assert list(rec.glob(".fraudflow-init-*")), "the kill did not land inside the build"
    summary = tmp_path / "summary.json"
    restart_processes_records(run_cmd(broker.bootstrap, produced, rec, summary), summary)
    assert [p.name for p in rec.glob("part-*.sqlite3")] == ["part-0.sqlite3"]


def test_restart_after_the_state_a_killed_bytewax_init_leaves(
    broker: EmbeddedBroker, produced: str, tmp_path: Path
) -> None:
    """What a SIGKILL inside bytewax's own ``init_db_dir`` left before this fix: an empty
    ``part-0.sqlite3``, on which every start failed with NoPartitionsError."""
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "part-0.sqlite3").write_bytes(b"")
    with pytest.raises(Exception, match=r"NoPartitions|no partitions|partition"):
        run_main_on(rec)  # bytewax alone refuses it: the state is the real one
    summary = tmp_path / "summary.json"
    done = subprocess.run(
        run_cmd(broker.bootstrap, produced, rec, summary),
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "half-made" in done.stderr
    assert orjson.loads(summary.read_bytes())["received"] == COUNT


def run_main_on(rec: Path) -> None:
    flow = Dataflow("probe")
    bw_output("out", bw_input("inp", flow, TestingSource([1])), TestingSink([]))
    run_main(flow, recovery_config=RecoveryConfig(str(rec)))


def test_real_kill_loop_at_first_start(
    broker: EmbeddedBroker, produced: str, tmp_path: Path
) -> None:
    """SIGKILL a real ``fraudflow run`` as soon as anything appears where its recovery
    directory goes, four times on fresh directories; each restart runs to the end."""
    for attempt in range(4):
        parent = tmp_path / f"try{attempt}"
        parent.mkdir()
        rec = parent / "rec"
        summary = parent / "summary.json"
        cmd = run_cmd(broker.bootstrap, produced, rec, summary)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert kill_when(proc, lambda p=parent: any(os.scandir(p)))
        restart_processes_records(cmd, summary)

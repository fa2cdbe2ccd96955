"""Bytewax recovery with one volume per process, as the StatefulSet lays it out.

Every pod has its own recovery volume, and ``fraudflow run`` creates ``part-0`` (of 1) on
an empty one, so each process holds a copy of partition 0. The deployment relies on what
Bytewax 0.21.1 does with that (docs/operations.md, "Scaling"): one copy, process 0's, is
the partition's primary and receives every snapshot; the others stay empty; the cluster
resumes its state after growing (a new pod, a new empty copy) and after shrinking back.
A tiny counting flow keeps this fast; re-run it when upgrading Bytewax.
"""

from __future__ import annotations

import ast
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from bytewax.recovery import init_db_dir

from fraudflow.connectors.broker import free_port

FLOW = '''
import os
import bytewax.operators as op
from bytewax.connectors.stdio import StdOutSink
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource


def counting_flow():
    """Counts per key over the first N integers; resumable (TestingSource snapshots)."""
    flow = Dataflow("layout")
    nums = op.input("inp", flow, TestingSource(range(int(os.environ["N"])), batch_size=1))
    keyed = op.key_on("key", nums, lambda x: str(x % 4))

    def count(state, _x):
        return (state or 0) + 1, (state or 0) + 1

    op.output("out", op.stateful_map("count", keyed, count), StdOutSink())
    return flow
'''


def _run_cluster(work: Path, dirs: list[Path], n: int) -> dict[str, int]:
    """Run one process per recovery dir until the input ends; the last count per key."""
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in dirs)
    env = {**os.environ, "N": str(n)}
    procs = []
    for i, d in enumerate(dirs):
        argv = [sys.executable, "-m", "bytewax.run", "flow:counting_flow()", "-i", str(i),
                "-a", addresses, "-r", str(d), "-s", "1", "-b", "0"]  # fmt: skip
        procs.append(
            subprocess.Popen(
                argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    last: dict[str, int] = {}
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        # bytewax also prints "worker 1: error connecting to worker 0 ...; retrying" here
        for line in (ln for ln in out.splitlines() if ln.startswith("(")):
            key, count = ast.literal_eval(line)  # the flow prints ('key', count)
            last[key] = max(last.get(key, 0), count)
    return last


def _snapshots(d: Path) -> int:
    with sqlite3.connect(d / "part-0.sqlite3") as db:
        (count,) = db.execute("SELECT count(*) FROM snaps").fetchone()
    return int(count)


@pytest.mark.integration
def test_one_volume_per_pod_resumes_after_growing_and_shrinking(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    pods = [tmp_path / f"recovery-fraudflow-{i}" for i in range(3)]
    for d in pods:  # what `fraudflow run` does on each pod's empty volume
        d.mkdir()
        init_db_dir(d, 1)

    assert _run_cluster(tmp_path, pods[:2], 40) == dict.fromkeys("0123", 10)
    # grow to 3 processes: the new pod brings an empty part-0; the state carries on
    assert _run_cluster(tmp_path, pods[:3], 60) == dict.fromkeys("0123", 15)
    # shrink back to 2
    assert _run_cluster(tmp_path, pods[:2], 80) == dict.fromkeys("0123", 20)
    # every snapshot is on pod 0's volume; the other copies were never written
    assert _snapshots(pods[0]) > 0
    assert _snapshots(pods[1]) == _snapshots(pods[2]) == 0


@pytest.mark.integration
def test_losing_pod_0s_volume_restarts_the_whole_cluster_empty(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    pods = [tmp_path / f"recovery-fraudflow-{i}" for i in range(2)]
    for d in pods:
        d.mkdir()
        init_db_dir(d, 1)
    assert _run_cluster(tmp_path, pods, 40) == dict.fromkeys("0123", 10)
    for f in pods[0].iterdir():  # the PVC of pod 0 is gone; the pod gets a new, empty one
        f.unlink()
    init_db_dir(pods[0], 1)
    # no snapshot anywhere: the input starts over and every count starts from zero
    assert _run_cluster(tmp_path, pods, 40) == dict.fromkeys("0123", 10)

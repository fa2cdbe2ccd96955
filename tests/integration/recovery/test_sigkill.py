"""Issue 5: SIGKILL the flow at random points, restart it on the same recovery
directory, and get exactly the alerts of a run that was never interrupted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from fraudflow.connectors.broker import EmbeddedBroker, free_port
from fraudflow.tools.evaluate import read_topic
from fraudflow.tools.produce import produce_to_kafka
from tests.support.system import fresh_database, wait_until

pytestmark = pytest.mark.integration

COUNT = 30_000


def flow_cmd(bootstrap: str, topic: str, alerts: str, dsn: str, recovery: Path | None) -> list[str]:
    cmd = [
        sys.executable, "-m", "fraudflow", "run", "--brokers", bootstrap, "--input-topic", topic,
        "--alerts-topic", alerts, "--dlq-topic", f"{alerts}-dlq", "--from-beginning",
        "--exit-at-end", "--quiet", "--postgres-dsn", dsn,
    ]  # fmt: skip
    if recovery is not None:
        cmd += ["--recovery-dir", str(recovery), "--snapshot-interval", "1s"]
    return cmd


def run_to_end(cmd: list[str]) -> None:
    """Run the flow once, uninterrupted, to the end of its input."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def run_cluster(cmd: list[str], processes: int) -> None:
    """Run ``cmd`` as a cluster of processes on loopback and wait for all of them."""
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    procs = [
        subprocess.Popen(
            [*cmd, "--process-id", str(i), "--addresses", addresses],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]


def wait_for_recovery_store(procs: list[subprocess.Popen[bytes]], dirs: list[Path]) -> None:
    """Wait until every process has created its recovery store (start-up takes seconds on
    a loaded machine), so that a kill lands in the run, not before the store exists."""

    def ready() -> None:
        assert all(p.poll() is None for p in procs), "the flow ended before its store existed"
        assert all(any(d.glob("part-*.sqlite3")) for d in dirs), "no recovery store yet"

    wait_until(ready, "the recovery store", timeout=120.0)


def alerts_in(dsn: str) -> dict[str, tuple[float, str]]:
    with psycopg.connect(dsn) as c:
        rows = c.execute("select alert_id, score, tier from alerts").fetchall()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate alert rows"
    return {r[0]: (round(float(r[1]), 9), r[2]) for r in rows}


def test_sigkill_and_restart_gives_the_uninterrupted_alerts(
    broker: EmbeddedBroker, postgres_dsn: str, topic: str, tmp_path: Path
) -> None:
    produce_to_kafka(broker.bootstrap, topic, COUNT, users=800, seed=5, malformed=50, partitions=2)
    with fresh_database(postgres_dsn) as plain_db, fresh_database(postgres_dsn) as crash_db:
        run_to_end(flow_cmd(broker.bootstrap, topic, f"{topic}-a1", plain_db, None))
        expected = alerts_in(plain_db)
        assert len(expected) > 100

        rng = random.Random(1234)
        recovery = tmp_path / "recovery"
        cmd = flow_cmd(broker.bootstrap, topic, f"{topic}-a2", crash_db, recovery)
        kills = 0
        for _ in range(3):
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_recovery_store([proc], [recovery])
            time.sleep(rng.uniform(0.5, 2.5))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
        assert kills >= 2, "the flow finished before it could be killed; produce more records"
        assert any(recovery.glob("part-*.sqlite3"))
        run_to_end(cmd)
        assert alerts_in(crash_db) == expected

    # the alerts topic may repeat an alert after a restart, but only identically
    seen: dict[str, object] = {}
    for a in read_topic(broker.bootstrap, f"{topic}-a2"):
        key = str(a["alert_id"])
        assert seen.setdefault(key, a["score"]) == a["score"]
    assert set(seen) == set(expected)


def test_two_process_cluster_gives_the_one_process_alerts(
    broker: EmbeddedBroker, postgres_dsn: str, topic: str
) -> None:
    produce_to_kafka(broker.bootstrap, topic, 20_000, users=600, seed=9, malformed=20, partitions=4)
    with fresh_database(postgres_dsn) as one_db, fresh_database(postgres_dsn) as two_db:
        run_to_end(flow_cmd(broker.bootstrap, topic, f"{topic}-one", one_db, None))

        run_cluster(flow_cmd(broker.bootstrap, topic, f"{topic}-two", two_db, None), 2)
        assert alerts_in(two_db) == alerts_in(one_db)


def test_resume_with_more_processes_on_the_same_recovery_store(
    broker: EmbeddedBroker, postgres_dsn: str, topic: str, tmp_path: Path
) -> None:
    """Bytewax rescales on resume: state snapshotted by one process is picked up by two."""
    produce_to_kafka(
        broker.bootstrap, topic, 20_000, users=600, seed=13, malformed=10, partitions=4
    )
    with fresh_database(postgres_dsn) as plain_db, fresh_database(postgres_dsn) as crash_db:
        run_to_end(flow_cmd(broker.bootstrap, topic, f"{topic}-p", plain_db, None))

        recovery = tmp_path / "recovery"
        cmd = flow_cmd(broker.bootstrap, topic, f"{topic}-c", crash_db, recovery)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_recovery_store([proc], [recovery])
        time.sleep(1.5)
        assert proc.poll() is None, "the flow finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

        run_cluster(cmd, 2)
        assert alerts_in(crash_db) == alerts_in(plain_db)


def test_cluster_with_one_recovery_directory_per_process(
    broker: EmbeddedBroker, postgres_dsn: str, topic: str, tmp_path: Path
) -> None:
    """The Kubernetes layout: each pod has its own recovery volume. Both
    processes are SIGKILLed mid-run and restarted; the alerts are unchanged."""
    produce_to_kafka(broker.bootstrap, topic, 30_000, users=800, seed=17, partitions=4)
    with fresh_database(postgres_dsn) as plain_db, fresh_database(postgres_dsn) as crash_db:
        run_to_end(flow_cmd(broker.bootstrap, topic, f"{topic}-p", plain_db, None))

        def pod_cmds() -> list[list[str]]:
            addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(2))
            return [
                [*flow_cmd(broker.bootstrap, topic, f"{topic}-c", crash_db, tmp_path / f"pod-{i}"),
                 "--process-id", str(i), "--addresses", addresses]
                for i in range(2)
            ]  # fmt: skip

        procs = [
            subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for c in pod_cmds()
        ]
        wait_for_recovery_store(procs, [tmp_path / f"pod-{i}" for i in range(2)])
        time.sleep(1.5)
        assert all(p.poll() is None for p in procs), "the flow finished before it could be killed"
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        assert all(any((tmp_path / f"pod-{i}").glob("part-*.sqlite3")) for i in range(2))
        again = [
            subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for c in pod_cmds()
        ]
        for q in again:
            _out, err = q.communicate(timeout=600)
            assert q.returncode == 0, err[-3000:]
        assert alerts_in(crash_db) == alerts_in(plain_db)

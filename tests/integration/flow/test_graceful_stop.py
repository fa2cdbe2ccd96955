"""Issue 18 item 1: SIGTERM and SIGINT stop `fraudflow run` gracefully: the batch in hand
is finished, the sinks flushed, the summary printed and written, exit 0; a restart on the
same recovery directory reads exactly the rest (nothing lost, nothing read twice)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import orjson
import psycopg
import pytest

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.generator.stream import produce_to_kafka
from tests.integration.recovery.test_sigkill import alerts_in, run_to_end
from tests.support.system import fresh_database, wait_until

pytestmark = pytest.mark.integration

COUNT = 20_000
MALFORMED = 20


def run_cmd(bootstrap: str, topic: str, dsn: str, recovery: Path, summary: Path) -> list[str]:
    return [
        sys.executable, "-m", "fraudflow", "run", "--brokers", bootstrap, "--input-topic", topic,
        "--alerts-topic", f"{topic}-alerts", "--dlq-topic", f"{topic}-dlq", "--from-beginning",
        "--quiet", "--postgres-dsn", dsn, "--recovery-dir", str(recovery),
        "--snapshot-interval", "1s", "--summary-json", str(summary),
    ]  # fmt: skip


def decisions_in(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        row = c.execute("select count(*) from decisions").fetchone()
    return 0 if row is None else int(row[0])


def stop_mid_run(cmd: list[str], dsn: str, sig: signal.Signals) -> subprocess.CompletedProcess[str]:
    """Start the flow (tailing: it never ends by itself), wait until it has written
    decisions, send ``sig``, and wait for it to exit."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def writing() -> None:
        assert proc.poll() is None, "the flow ended by itself"
        assert decisions_in(dsn) > 0, "no decisions yet"

    wait_until(writing, "the first decisions", timeout=180.0)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_sigterm_mid_run_then_restart_loses_and_repeats_nothing(
    broker: EmbeddedBroker, postgres_dsn: str, topic: str, tmp_path: Path
) -> None:
    produce_to_kafka(
        broker.bootstrap, topic, COUNT, users=700, seed=23, malformed=MALFORMED, partitions=2
    )
    with fresh_database(postgres_dsn) as plain_db, fresh_database(postgres_dsn) as stop_db:
        plain = run_cmd(broker.bootstrap, topic, plain_db, tmp_path / "plain", tmp_path / "p.json")
        run_to_end([*plain, "--exit-at-end"])
        expected = alerts_in(plain_db)
        assert len(expected) > 50

        first, second = tmp_path / "first.json", tmp_path / "second.json"
        cmd = run_cmd(broker.bootstrap, topic, stop_db, tmp_path / "recovery", first)
        done = stop_mid_run(cmd, stop_db, signal.SIGTERM)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "stopped on SIGTERM" in done.stderr
        assert "fraudflow run summary" in done.stdout
        assert "Traceback" not in done.stderr
        assert "panicked" not in done.stderr
        s1 = orjson.loads(first.read_bytes())
        assert s1["received"] == s1["valid"] + s1["labels"] + s1["dead_lettered"]
        # every decision of the first run reached PostgreSQL before it exited
        assert decisions_in(stop_db) == s1["valid"]
        assert 0 < s1["received"] < COUNT + MALFORMED, "the flow read everything before the signal"

        again = run_cmd(broker.bootstrap, topic, stop_db, tmp_path / "recovery", second)
        run_to_end([*again, "--exit-at-end"])
        s2 = orjson.loads(second.read_bytes())
        # nothing read twice, nothing skipped
        assert s1["received"] + s2["received"] == COUNT + MALFORMED
        assert alerts_in(stop_db) == expected


def test_ctrl_c_stops_without_a_panic_or_traceback(
    broker: EmbeddedBroker, postgres_dsn: str, topic: str, tmp_path: Path
) -> None:
    produce_to_kafka(broker.bootstrap, topic, 5_000, users=300, seed=29, partitions=2)
    with fresh_database(postgres_dsn) as db:
        summary = tmp_path / "summary.json"
        cmd = run_cmd(broker.bootstrap, topic, db, tmp_path / "recovery", summary)
        done = stop_mid_run(cmd, db, signal.SIGINT)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "stopped on SIGINT" in done.stderr
        assert "Traceback" not in done.stderr
        assert "panicked" not in done.stderr
        s = orjson.loads(summary.read_bytes())
        assert s["received"] > 0
        assert decisions_in(db) == s["valid"]

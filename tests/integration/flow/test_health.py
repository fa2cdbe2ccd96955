"""Issue 18 item 3: /healthz and /readyz beside /metrics, and the Kafka offset lag."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from fraudflow.connectors.broker import EmbeddedBroker, free_port
from fraudflow.generator.stream import produce_to_kafka
from tests.support.system import wait_until

pytestmark = pytest.mark.integration


def status(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_dead_broker_not_ready_but_alive_then_one_line_naming_it() -> None:
    dead, port = f"127.0.0.1:{free_port()}", free_port()
    cmd = [sys.executable, "-m", "fraudflow", "run", "--brokers", dead, "--quiet",
           "--startup-timeout", "20s", "--metrics-port", str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def serving() -> None:
            assert proc.poll() is None, "exited before serving"
            assert status(port, "/healthz")[0] == 200

        wait_until(serving, "/healthz", timeout=60.0)
        code, body = status(port, "/readyz")
        assert code == 503
        assert "kafka: FAIL" in body
        _out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2
    errors = [line for line in err.splitlines() if line.startswith("fraudflow: error:")]
    assert len(errors) == 1
    assert dead in errors[0]
    assert "Traceback" not in err


def test_a_running_flow_is_ready_and_reports_lag_per_partition(
    broker: EmbeddedBroker, topic: str
) -> None:
    produce_to_kafka(broker.bootstrap, topic, 3_000, users=200, seed=31, partitions=2)
    port = free_port()
    cmd = [sys.executable, "-m", "fraudflow", "run", "--brokers", broker.bootstrap,
           "--input-topic", topic, "--alerts-topic", f"{topic}-a", "--dlq-topic", f"{topic}-d",
           "--from-beginning", "--quiet", "--metrics-port", str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def ready() -> None:
            assert proc.poll() is None, "the flow ended"
            code, body = status(port, "/readyz")
            assert code == 200, body

        wait_until(ready, "/readyz", timeout=120.0)
        assert status(port, "/healthz")[0] == 200

        def lag_reported() -> None:
            text = status(port, "/metrics")[1]
            lines = [x for x in text.splitlines() if x.startswith("fraudflow_kafka_lag{")]
            assert len(lines) == 2, "no lag for both partitions yet"
            assert all(x.endswith(" 0.0") for x in lines), lines  # all read: nothing behind

        wait_until(lag_reported, "the lag gauge", timeout=120.0)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()

"""`fraudflow demo --metrics-port`: /healthz and /readyz as `run` serves them (issue 18)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fraudflow.connectors.broker import free_port
from tests.integration.flow.test_health import status
from tests.support.system import wait_until

pytestmark = pytest.mark.integration


def test_demo_serves_health_and_is_ready_while_the_flow_runs(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "fraudflow", "demo", "--quiet", "--count", "60000",
           "--users", "500", "--out-dir", str(tmp_path / "demo"),
           "--metrics-port", str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[tuple[int, str]] = []
    try:

        def ready() -> None:
            assert proc.poll() is None, "the demo ended before it was ever ready"
            code, body = status(port, "/readyz")
            seen.append((code, body))
            assert code == 200, body

        wait_until(ready, "/readyz", timeout=240.0)
        assert status(port, "/healthz")[0] == 200
        body = seen[-1][1]
        for check in ("kafka: ok", "rules: ok", "sinks: ok", "flow: ok"):
            assert check in body

        def offsets() -> None:
            assert proc.poll() is None, "the demo ended before reporting offsets"
            assert "fraudflow_kafka_next_offset{" in status(port, "/metrics")[1]

        wait_until(offsets, "the next-offset gauge", timeout=120.0)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]


def test_a_busy_metrics_port_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cmd = [sys.executable, "-m", "fraudflow", "demo", "--quiet", "--count", "100",
               "--out-dir", str(tmp_path / "demo"), "--metrics-port", str(port)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    errors = [x for x in done.stderr.splitlines() if x.startswith("fraudflow: error:")]
    assert len(errors) == 1
    assert f"sinks.metrics_port: cannot serve on 127.0.0.1:{port}" in errors[0]
    assert "Traceback" not in done.stderr

"""Issue 13 item 8: the documented run command, with its DSN given the documented way
(environment or file), shows no password in ``ps`` (``/proc/PID/cmdline``)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.tools.produce import produce_to_kafka

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "Ps-Visible-7q"


def readme_run_command() -> tuple[dict[str, str], list[str]]:
    """The README's ``export``s and ``fraudflow run`` command, optional parts dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Running it on your Kafka", 1)[1].split("```bash", 1)[1]
    block = block.split("```", 1)[0].replace("\\\n", " ")
    env, run = {}, None
    for raw in block.splitlines():
        line = re.sub(r"\[[^\]]*\]", "", raw.split("#", 1)[0]).strip()
        if line.startswith("export "):
            name, value = line[len("export ") :].split("=", 1)
            env[name] = value
        elif line.startswith("fraudflow run"):
            run = shlex.split(line)
    assert run is not None
    assert not any("dsn" in a or "redis-url" in a for a in run)
    return env, run


def test_readme_run_command_keeps_the_dsn_out_of_ps(
    broker: EmbeddedBroker, database: str, topic: str, tmp_path: Path
) -> None:
    env, run = readme_run_command()
    assert "FRAUDFLOW_POSTGRES_DSN_FILE" in env
    produce_to_kafka(broker.bootstrap, topic, 500, users=50, seed=2)
    dsn_file = tmp_path / "postgres-dsn"
    dsn_file.write_text(
        database.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@") + "\n",
        encoding="utf-8",
    )
    assert PASSWORD in dsn_file.read_text(encoding="utf-8")
    args = [
        a.replace("localhost:9092", broker.bootstrap).replace("transactions", topic) for a in run
    ]
    cmd = [sys.executable, "-m", "fraudflow", *args[1:]]
    environ = {**os.environ, "FRAUDFLOW_POSTGRES_DSN_FILE": str(dsn_file)}
    proc = subprocess.Popen(cmd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: list[bytes] = []
    while proc.poll() is None and len(seen) < 20:
        try:
            seen.append(Path(f"/proc/{proc.pid}/cmdline").read_bytes())
        except OSError:
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert seen, "the process ended before its command line could be read"
    for cmdline in seen:
        assert PASSWORD.encode() not in cmdline
        assert b"postgres" not in cmdline.replace(b"fraudflow", b"")
    assert PASSWORD.encode() not in out + err
    assert b"carries a password" not in err

"""Issue 18 item 7: the README's shell blocks that talk to a broker run as written.

Every ```bash block naming ``localhost:9092`` is run with bash (``set -euo pipefail``) in
an empty directory against the embedded broker: the only changes are the broker address
and ``--count``, scaled down to keep the test short; ``. .venv/bin/activate`` is replaced
by putting this interpreter's ``bin`` first on PATH; a secret file an ``export ..._FILE=``
names is written in the test directory (a fresh PostgreSQL database, the test Redis)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fraudflow.connectors.broker import EmbeddedBroker
from tests.support.system import fresh_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def broker_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [b for b in BLOCK.findall(text) if "localhost:9092" in b]


def test_the_readme_has_a_broker_block() -> None:
    assert broker_blocks(), "no README block names localhost:9092 any more"


@pytest.mark.parametrize("index", range(len(broker_blocks())))
def test_readme_block_runs(index: int, tmp_path: Path, postgres_dsn: str, redis_url: str) -> None:
    with fresh_database(postgres_dsn) as db:
        secrets = {"FRAUDFLOW_POSTGRES_DSN_FILE": db, "FRAUDFLOW_REDIS_URL_FILE": redis_url}
        run_block(broker_blocks()[index], tmp_path, secrets)


def run_block(block: str, tmp_path: Path, secrets: dict[str, str]) -> None:
    lines = []
    for line in block.splitlines():
        if line.startswith(". .venv/bin/activate"):
            continue
        m = re.match(r"export (\w+_FILE)=(\S+)", line)
        if m is not None:
            path = tmp_path / Path(m[2]).name
            path.write_text(secrets[m[1]])
            lines.append(f"export {m[1]}={path}")
        else:
            lines.append(line)
    script = "\n".join(lines)
    script = re.sub(r"--count \d+", "--count 3000", script)
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        script = script.replace("localhost:9092", broker.bootstrap)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        work = tmp_path / "work"
        work.mkdir()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    assert done.returncode == 0, f"{script}\n---\n{done.stderr[-3000:]}"

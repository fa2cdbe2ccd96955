"""The Dockerfile and entrypoint, linted offline (no Docker daemon on CI machines)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} missing: pip install -e '.[dev]'"
    return found


def test_hadolint_passes() -> None:
    out = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_shellcheck_passes_on_the_entrypoint() -> None:
    out = subprocess.run(
        [_tool("shellcheck"), str(ROOT / "deploy" / "entrypoint.sh")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_structure() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1)), base.group(1)
    assert ":latest" not in text
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]  # multi-stage, one pinned base
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users, "no USER"
    assert users[-1].split(":")[0] not in {"0", "root"}
    assert re.search(r"^HEALTHCHECK .*\n.*CMD \[\"python\"", text, re.M)
    assert 'ENTRYPOINT ["/app/deploy/entrypoint.sh"]' in text
    assert "COPY --from=builder /opt/venv /opt/venv" in text
    assert "pip install --no-deps -r requirements.lock" in text


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied: set[str] = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            copied.update(p.rstrip("/") for p in line.split()[1:-1] if not p.startswith("--"))
    assert copied <= allowed, copied - allowed


def test_lock_pins_the_runtime_dependencies() -> None:
    """requirements.lock pins exactly the runtime dependency closure (regenerate it with
    deploy/lock.py when a dependency is added), at versions fraudflow's own requirements
    accept. Exact versions are not compared with this venv: a fresh machine may resolve
    newer ones, which the image does not use."""
    spec = importlib.util.spec_from_file_location("lock", ROOT / "deploy" / "lock.py")
    assert spec is not None
    assert spec.loader is not None
    lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock)
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert set(pins) == set(lock.closure())
    for text in distribution("fraudflow").requires or []:
        req = Requirement(text)
        name = lock._norm(req.name)
        if req.marker is None and name in pins:
            assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
    assert not {"pytest", "mypy", "ruff", "hypothesis"} & set(pins)

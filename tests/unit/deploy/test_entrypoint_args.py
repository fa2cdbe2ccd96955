"""deploy/entrypoint.sh: process id and addresses from the StatefulSet pod name."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ENTRYPOINT = Path(__file__).resolve().parents[3] / "deploy" / "entrypoint.sh"


def _run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the entrypoint with a fake ``fraudflow`` on PATH that prints its arguments."""
    fake = tmp_path / "bin" / "fraudflow"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDFLOW_")}
    base["PATH"] = f"{fake.parent}:/usr/bin:/bin"
    return subprocess.run(
        [str(ENTRYPOINT), *args], env={**base, **env}, capture_output=True, text=True, check=False
    )


def test_third_pod_of_three(tmp_path: Path) -> None:
    out = _run(tmp_path, {"HOSTNAME": "fraudflow-2", "CLUSTER_REPLICAS": "3"}, "--quiet")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "run", "--process-id", "2", "--addresses",
        "fraudflow-0.fraudflow-headless:2101;fraudflow-1.fraudflow-headless:2101;"
        "fraudflow-2.fraudflow-headless:2101",
        "--quiet",
    ]  # fmt: skip


def test_one_replica_passes_no_cluster_flags(tmp_path: Path) -> None:
    out = _run(tmp_path, {"HOSTNAME": "fraudflow-0", "CLUSTER_REPLICAS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["run"]


def test_addresses_override_and_service_settings(tmp_path: Path) -> None:
    out = _run(tmp_path, {"HOSTNAME": "ff-1", "CLUSTER_ADDRESSES": "a:1;b:2"})
    assert out.stdout.splitlines() == ["run", "--process-id", "1", "--addresses", "a:1;b:2"]
    env = {"HOSTNAME": "ff-0", "CLUSTER_REPLICAS": "2", "HEADLESS_SERVICE": "peers.ns.svc",
           "CLUSTER_PORT": "3000"}  # fmt: skip
    out = _run(tmp_path, env)
    assert out.stdout.splitlines()[-1] == "ff-0.peers.ns.svc:3000;ff-1.peers.ns.svc:3000"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HOSTNAME": "fraudflow-3", "CLUSTER_REPLICAS": "3"}, "outside the 3 addresses"),
        ({"HOSTNAME": "fraudflow", "CLUSTER_REPLICAS": "2"}, "does not end in -ORDINAL"),
        ({"HOSTNAME": "fraudflow-x", "CLUSTER_REPLICAS": "2"}, "does not end in -ORDINAL"),
        ({"HOSTNAME": "fraudflow-0", "CLUSTER_REPLICAS": "two"}, "positive integer"),
        ({"HOSTNAME": "fraudflow-0", "CLUSTER_REPLICAS": "0"}, "positive integer"),
    ],
)
def test_bad_pod_names_and_counts_fail(tmp_path: Path, env: dict[str, str], message: str) -> None:
    out = _run(tmp_path, env)
    assert out.returncode == 64
    assert message in out.stderr
    assert out.stdout == ""

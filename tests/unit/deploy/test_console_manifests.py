"""k8s/ and compose: the console's Deployment, Service and compose service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.test_manifests import TARGETS, render

ROOT = Path(__file__).resolve().parents[3]


def _console(target: str) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = render(TARGETS[target])
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    (svc,) = [
        d
        for d in docs
        if d["kind"] == "Service" and d["metadata"]["name"] == dep["metadata"]["name"]
    ]
    return dep, svc


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_console_deployment_and_service(target: str) -> None:
    dep, svc = _console(target)
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["fraudflow", "serve"]
    env = {e["name"]: e for e in c["env"]}
    assert env["FRAUDFLOW_SERVE_HOST"]["value"] == "0.0.0.0"
    port = int(env["FRAUDFLOW_SERVE_PORT"]["value"])
    assert [p["containerPort"] for p in c["ports"]] == [port]
    for name in ("FRAUDFLOW_POSTGRES_DSN", "FRAUDFLOW_JWT_SECRET", "FRAUDFLOW_REDIS_URL"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "fraudflow-secrets"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts[env["FRAUDFLOW_RULES"]["value"]] == "rules"
    assert "/tmp" in mounts
    # the Service reaches the console's pods and no flow pod
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["selector"] != {"app.kubernetes.io/name": "fraudflow"}
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    # the console sees the same rules as the flow
    docs = render(TARGETS[target])
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    flow_rules = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "rules"]
    assert [v for v in pod["volumes"] if v["name"] == "rules"] == flow_rules


def test_compose_console_service() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    console = compose["services"]["console"]
    assert console["entrypoint"] == ["fraudflow", "serve"]
    env = console["environment"]
    flow_env = compose["services"]["fraudflow"]["environment"]
    assert env["FRAUDFLOW_POSTGRES_DSN"] == flow_env["FRAUDFLOW_POSTGRES_DSN"]
    assert env["FRAUDFLOW_BROKERS"] == flow_env["FRAUDFLOW_BROKERS"]
    assert console["ports"] == [f"{env['FRAUDFLOW_SERVE_PORT']}:{env['FRAUDFLOW_SERVE_PORT']}"]
    assert env["FRAUDFLOW_SERVE_HOST"] == "0.0.0.0"
    assert len(env["FRAUDFLOW_JWT_SECRET"]) >= 32

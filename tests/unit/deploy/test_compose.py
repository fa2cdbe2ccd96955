"""deploy/compose.yaml loads, names the stack's services, pins images, mounts real files.

Docker is not available on CI machines: this checks the file, it does not run the stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fraudflow.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SERVICES = {"redpanda", "timescaledb", "redis", "prometheus", "grafana", "fraudflow", "producer"}
SERVICES |= {"console"}  # the analyst console (test_console_manifests.py)
SERVICES |= {"trainer"}  # the trainer (docs/training.md)


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def test_services_and_pinned_images() -> None:
    services = _compose()["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():
        image = svc["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag, f"{name}: image {image} has no tag"
        assert tag != "latest", name
    for name in ("fraudflow", "producer"):
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file()


def test_mounted_files_exist_and_the_dashboard_is_provisioned() -> None:
    services = _compose()["services"]
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (COMPOSE.parent / src).exists(), f"{name}: {src}"
    grafana_mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    dashboards = COMPOSE.parent / next(k for k, v in grafana_mounts.items() if "dashboards" in v)
    assert (dashboards / "grafana-fraudflow.json").is_file()
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/fraudflow.yaml").read_text())
    assert prov["providers"][0]["options"]["path"] == grafana_mounts["../dashboards"]
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/fraudflow.yaml").read_text())
    types = {d["type"] for d in ds["datasources"]}
    assert types == {"prometheus", "grafana-postgresql-datasource"}  # the dashboard's variables


def test_prometheus_scrapes_the_flow_metrics_port() -> None:
    fraudflow = _compose()["services"]["fraudflow"]
    port = fraudflow["environment"]["FRAUDFLOW_METRICS_PORT"]
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = [
        t for job in prom["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    assert targets == [f"fraudflow:{port}"]


def test_commands_parse_with_the_real_cli() -> None:
    services = _compose()["services"]
    producer = services["producer"]
    args = build_parser().parse_args([*producer["entrypoint"][1:], *producer["command"]])
    assert args.rate == 200
    run = build_parser().parse_args(["run", *services["fraudflow"]["command"]])
    assert run.quiet
    train = build_parser().parse_args(["train", *services["trainer"]["command"]])
    assert train.label_delay.days == 7

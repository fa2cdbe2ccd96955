"""The Grafana dashboard is valid, provisionable JSON over metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fraudflow.sinks.metrics import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[3] / "dashboards" / "grafana-fraudflow.json"
EXPECTED_PANELS = {
    "Throughput",
    "Event-time lag",
    "Alert rate by tier",
    "Top rules (last hour)",
    "End-to-end latency",
    "Dead letters by code",
    "Sink errors and retries",
    "Active users in state",
    "Score distribution",
    "Active versions",
    "Alerts per tier (alerts table)",
    "Top rules (alerts table)",
    "Latest alerts",
}


@pytest.fixture(scope="module")
def dash() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dash["panels"] if p["type"] != "row"]


SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "info": ("_info",),
}


def sample_names() -> set[str]:
    """Every series name the registry can expose (labelled metrics may have no sample yet)."""
    return {m.name + s for m in REGISTRY.collect() for s in SUFFIXES[m.type]}


def test_top_level_is_provisionable(dash: dict[str, Any]) -> None:
    assert dash["uid"] == "fraudflow"
    assert dash["title"]
    assert isinstance(dash["schemaVersion"], int)
    assert "id" not in dash or dash["id"] is None  # provisioning assigns ids
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["prometheus"]["type"] == "datasource"
    assert variables["alertsdb"]["type"] == "datasource"


def test_expected_panels_with_unique_ids_on_the_grid(dash: dict[str, Any]) -> None:
    titles = {p["title"] for p in panels(dash)}
    assert titles >= EXPECTED_PANELS, EXPECTED_PANELS - titles
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0, p["title"]
        assert g["x"] + g["w"] <= 24, p["title"]
        assert g["h"] > 0, p["title"]


def test_every_query_names_its_datasource_variable(dash: dict[str, Any]) -> None:
    for p in panels(dash):
        uid = p["datasource"]["uid"]
        assert uid in ("${prometheus}", "${alertsdb}"), p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert ("expr" in t) == (uid == "${prometheus}"), p["title"]
            assert ("rawSql" in t) == (uid == "${alertsdb}"), p["title"]


def test_prometheus_queries_use_metrics_that_exist(dash: dict[str, Any]) -> None:
    known = sample_names()
    used = set()
    for p in panels(dash):
        for t in p["targets"]:
            if "expr" in t:
                used |= set(re.findall(r"\bfraudflow_[a-z0-9_]+", t["expr"]))
    assert used
    assert used <= known, used - known


def test_sql_panels_query_the_alerts_table(dash: dict[str, Any]) -> None:
    sqls = [t["rawSql"] for p in panels(dash) for t in p["targets"] if "rawSql" in t]
    assert len(sqls) >= 3
    hourly = [q for q in sqls if re.search(r"\bFROM alerts_hourly\b", q)]
    assert len(hourly) == 2  # per tier and top rules read the continuous aggregate
    for q in sqls:
        if q in hourly:
            assert "$__timeFilter(bucket)" in q
        else:
            assert re.search(r"\bFROM alerts\b", q)
            assert "$__timeFilter(event_time)" in q

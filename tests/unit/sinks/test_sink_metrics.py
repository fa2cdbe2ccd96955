"""The Prometheus metrics module: what each per-batch call records."""

from __future__ import annotations

import urllib.request

from prometheus_client import REGISTRY as DEFAULT
from prometheus_client import generate_latest

from fraudflow.observability import metrics
from fraudflow.records import DeadLetter
from tests.support.services import free_port
from tests.unit.sinks.factory import make_decision, ts

V = metrics.value


def test_observe_decisions_counts_tiers_rules_scores_and_lag() -> None:
    before = {
        "valid": V("fraudflow_records_valid_total"),
        "review": V("fraudflow_alerts_total", {"tier": "review"}),
        "block": V("fraudflow_alerts_total", {"tier": "block"}),
        "approve": V("fraudflow_decisions_total", {"tier": "approve"}),
        "rule": V("fraudflow_alerts_by_rule_total", {"rule_id": "R_UNIT_M"}),
        "scores": V("fraudflow_score_count"),
        "high": V("fraudflow_score_bucket", {"le": "0.5"}),
        "lat": V("fraudflow_e2e_latency_seconds_count"),
    }
    batch = [
        make_decision(1, tier="approve", rules=("R_UNIT_M",), at="2024-03-10T12:00:00"),
        make_decision(2, tier="review", rules=("R_UNIT_M", "R_UNIT_M"), at="2024-03-10T12:00:05"),
        make_decision(3, tier="block", rules=(), at="2024-03-10T12:00:01"),
    ]
    now = ts("2024-03-10T12:00:35")
    metrics.observe_decisions(batch, now)
    assert V("fraudflow_records_valid_total") - before["valid"] == 3
    assert V("fraudflow_alerts_total", {"tier": "review"}) - before["review"] == 1
    assert V("fraudflow_alerts_total", {"tier": "block"}) - before["block"] == 1
    assert V("fraudflow_decisions_total", {"tier": "approve"}) - before["approve"] == 1
    # approvals do not count for rules; a rule counts once per alert
    assert V("fraudflow_alerts_by_rule_total", {"rule_id": "R_UNIT_M"}) - before["rule"] == 1
    assert V("fraudflow_score_count") - before["scores"] == 3
    assert V("fraudflow_score_bucket", {"le": "0.5"}) - before["high"] == 1  # only 0.1
    assert V("fraudflow_e2e_latency_seconds_count") - before["lat"] == 3
    assert V("fraudflow_event_time_lag_seconds") == 30.0


def test_empty_batch_changes_nothing() -> None:
    lag = V("fraudflow_event_time_lag_seconds")
    valid = V("fraudflow_records_valid_total")
    metrics.observe_decisions([], 0.0)
    assert (V("fraudflow_event_time_lag_seconds"), V("fraudflow_records_valid_total")) == (
        lag,
        valid,
    )


def test_received_dead_letters_batches_users() -> None:
    r0 = V("fraudflow_records_received_total")
    d0 = V("fraudflow_records_dead_lettered_total", {"code": "bad_json"})
    b0 = V("fraudflow_batch_size_count", {"step": "unit_step"})
    metrics.observe_received(7)
    letter = DeadLetter("bad_json", "x", b"{", None, "t", 0, 1, 0.0)
    metrics.observe_dead_letters([letter, letter])
    metrics.observe_batch("unit_step", 42)
    metrics.set_active_users(1234)
    assert V("fraudflow_records_received_total") - r0 == 7
    assert V("fraudflow_records_dead_lettered_total", {"code": "bad_json"}) - d0 == 2
    assert V("fraudflow_batch_size_count", {"step": "unit_step"}) - b0 == 1
    assert V("fraudflow_active_users") == 1234


def test_versions_keep_one_series() -> None:
    metrics.set_versions("r1", "m1")
    metrics.set_versions("r2", "m1")
    assert V("fraudflow_active_versions", {"rules_version": "r2", "model_version": "m1"}) == 1
    assert V("fraudflow_active_versions", {"rules_version": "r1", "model_version": "m1"}) == 0
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'rules_version="r1"' not in text


def test_sink_error_retry_and_write() -> None:
    e0 = V("fraudflow_sink_errors_total", {"sink": "unit-m"})
    r0 = V("fraudflow_sink_retries_total", {"sink": "unit-m"})
    metrics.sink_error("unit-m")
    metrics.sink_retry("unit-m")
    metrics.sink_retry("unit-m")
    metrics.observe_sink_write("unit-m", 10, 0.02)
    assert V("fraudflow_sink_errors_total", {"sink": "unit-m"}) - e0 == 1
    assert V("fraudflow_sink_retries_total", {"sink": "unit-m"}) - r0 == 2
    assert V("fraudflow_sink_written_total", {"sink": "unit-m"}) >= 10


def test_registry_is_not_the_global_default() -> None:
    assert metrics.REGISTRY is not DEFAULT
    assert DEFAULT.get_sample_value("fraudflow_records_received_total") is None


def test_metrics_server_serves_the_registry() -> None:
    port = free_port()
    metrics.start_metrics_server(port, addr="127.0.0.1")
    metrics.observe_received(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    assert "fraudflow_records_received_total" in body
    assert "python_gc_objects_collected_total" not in body  # not the default registry

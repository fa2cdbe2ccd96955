"""Prometheus metrics of the flow and its sinks, updated once per batch.

Every metric lives in :data:`REGISTRY`, one ``CollectorRegistry`` made at
import (not prometheus_client's global default registry), so tests and
embedders can read or serve exactly these series. The flow calls the small
``observe_*`` functions once per batch, never per event. Names, labels and
meanings are listed in docs/sinks.md; the Grafana dashboard queries them.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from fraudflow.records import DeadLetter, Decision

REGISTRY = CollectorRegistry(auto_describe=True)

RECEIVED = Counter(
    "fraudflow_records_received", "Input records received (before parsing)", registry=REGISTRY
)
VALID = Counter(
    "fraudflow_records_valid",
    "Records that passed parse/validate and were decided",
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "fraudflow_records_dead_lettered",
    "Records sent to the dead-letter sink, by error code",
    ["code"],
    registry=REGISTRY,
)
LABELS = Counter(
    "fraudflow_labels_applied",
    "Labels read from the labels topic and sent to the labels store, by label (fraud, legit)",
    ["label"],
    registry=REGISTRY,
)
DECISIONS = Counter(
    "fraudflow_decisions", "Decisions by tier (approve, review, block)", ["tier"], registry=REGISTRY
)
ALERTS = Counter("fraudflow_alerts", "Alerts (tier >= review) by tier", ["tier"], registry=REGISTRY)
ALERTS_BY_RULE = Counter(
    "fraudflow_alerts_by_rule",
    "Alerts in which a rule hit, by rule id (an alert hit by two rules counts for both)",
    ["rule_id"],
    registry=REGISTRY,
)
EVENT_LAG = Gauge(
    "fraudflow_event_time_lag_seconds",
    "Wall clock minus the newest event time of the last decided batch",
    registry=REGISTRY,
)
LATENCY = Histogram(
    "fraudflow_e2e_latency_seconds",
    "From a transaction's event time to its decision reaching the sinks (wall clock)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
    registry=REGISTRY,
)
PROCESSING = Histogram(
    "fraudflow_processing_seconds",
    "From a decision being made to its batch being observed (in-flow time after decide)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "fraudflow_batch_size",
    "Items per batch, by step",
    ["step"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
    registry=REGISTRY,
)
ACTIVE_USERS = Gauge(
    "fraudflow_active_users", "Users with feature state held in memory", registry=REGISTRY
)
SCORE = Histogram(
    "fraudflow_score",
    "Ensemble score of every decision",
    buckets=tuple(round(0.05 * i, 2) for i in range(1, 21)),
    registry=REGISTRY,
)
VERSIONS = Gauge(
    "fraudflow_active_versions",
    "1 for the active rule-set and model version (one series at a time)",
    ["rules_version", "model_version"],
    registry=REGISTRY,
)
SINK_ERRORS = Counter(
    "fraudflow_sink_errors", "Failed sink write attempts, by sink", ["sink"], registry=REGISTRY
)
SINK_RETRIES = Counter(
    "fraudflow_sink_retries",
    "Sink write retries after a transient failure, by sink",
    ["sink"],
    registry=REGISTRY,
)
SINK_WRITTEN = Counter(
    "fraudflow_sink_written",
    "Items a sink wrote (replayed duplicates included), by sink",
    ["sink"],
    registry=REGISTRY,
)
SINK_OVERSIZE = Counter(
    "fraudflow_sink_records_oversize",
    "Kafka records refused as too large, by topic and outcome (sent_without_payload, dropped)",
    ["topic", "outcome"],
    registry=REGISTRY,
)
SINK_REJECTED = Counter(
    "fraudflow_sink_rejected",
    "Decisions a store refused for their content, dead-lettered, by sink",
    ["sink"],
    registry=REGISTRY,
)
SINK_WRITE_SECONDS = Histogram(
    "fraudflow_sink_write_seconds",
    "Time to write one batch to a store, retries included, by sink",
    ["sink"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` of :data:`REGISTRY` on ``addr:port`` from a daemon thread
    (``sinks.metrics_host``: loopback unless set, e.g. ``0.0.0.0`` in Kubernetes)."""
    start_http_server(port, addr=addr, registry=REGISTRY)


def observe_received(n: int) -> None:
    """``n`` raw records were read from the source."""
    RECEIVED.inc(n)


def observe_labels(labels: int, frauds: int) -> None:
    """A batch of valid labels on its way to the labels store."""
    if frauds:
        LABELS.labels(label="fraud").inc(frauds)
    if labels > frauds:
        LABELS.labels(label="legit").inc(labels - frauds)


def observe_dead_letters(letters: Sequence[DeadLetter]) -> None:
    """A batch of dead letters, counted by error code."""
    for code, n in Tally(d.code for d in letters).items():
        DEAD_LETTERED.labels(code=code).inc(n)


def observe_decisions(decisions: Sequence[Decision], now: float) -> None:
    """A batch of decisions at wall time ``now`` (epoch seconds).

    Counts tiers, alerts and their rules, scores, the event-time lag and the
    latency from event time to ``now``.
    """
    if not decisions:
        return
    VALID.inc(len(decisions))
    tiers: Tally[str] = Tally()
    rules: Tally[str] = Tally()
    newest = decisions[0].txn.ts
    for d in decisions:
        tiers[d.tier] += 1
        if d.tier != "approve":
            rules.update({h.rule_id for h in d.rule_hits})
        ts = d.txn.ts
        newest = max(newest, ts)
        SCORE.observe(d.score)
        LATENCY.observe(max(0.0, now - ts))
        if d.processed_at:
            PROCESSING.observe(max(0.0, now - d.processed_at))
    for tier, n in tiers.items():
        DECISIONS.labels(tier=tier).inc(n)
        if tier != "approve":
            ALERTS.labels(tier=tier).inc(n)
    for rule, n in rules.items():
        ALERTS_BY_RULE.labels(rule_id=rule).inc(n)
    EVENT_LAG.set(max(0.0, now - newest))


def set_versions(rules_version: str, model_version: str) -> None:
    """Mark the active rule-set and model versions (the previous pair is removed)."""
    VERSIONS.clear()
    VERSIONS.labels(rules_version=rules_version, model_version=model_version).set(1)


def set_active_users(n: int) -> None:
    """Users currently holding feature state."""
    ACTIVE_USERS.set(n)


def observe_batch(step: str, size: int) -> None:
    """One batch of ``size`` items passed ``step`` (its step_id)."""
    BATCH_SIZE.labels(step=step).observe(size)


def sink_error(sink: str) -> None:
    """A write attempt of ``sink`` failed."""
    SINK_ERRORS.labels(sink=sink).inc()


def sink_retry(sink: str) -> None:
    """``sink`` is retrying a write."""
    SINK_RETRIES.labels(sink=sink).inc()


def sink_oversize(topic: str, sent_without_payload: int, dropped: int) -> None:
    """Records for ``topic`` were too large for Kafka: resent bare, or dropped."""
    SINK_OVERSIZE.labels(topic=topic, outcome="sent_without_payload").inc(sent_without_payload)
    SINK_OVERSIZE.labels(topic=topic, outcome="dropped").inc(dropped)


def observe_sink_write(sink: str, items: int, seconds: float) -> None:
    """``sink`` wrote a batch of ``items`` in ``seconds``."""
    SINK_WRITTEN.labels(sink=sink).inc(items)
    SINK_WRITE_SECONDS.labels(sink=sink).observe(seconds)


def sink_rejected(sink: str, n: int = 1) -> None:
    """``sink`` refused ``n`` decisions for their content (dead-lettered, not written)."""
    SINK_REJECTED.labels(sink=sink).inc(n)


def value(name: str, labels: dict[str, str] | None = None) -> float:
    """A sample's current value (0 when absent): for tests and progress lines."""
    v = REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if v is None else v

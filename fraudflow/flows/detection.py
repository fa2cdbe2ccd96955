"""The detection dataflow: one builder for run, demo, backtest, tests and clusters.

    input (+ labels input) -> parse/validate -> key by shard (= input partition)
          -> score: per-user features + the shard's Half-Space Trees
             (labels pass through in their partition's order)
          -> [feedback on] feedback: entity risk + supervised model, learn from labels
          -> decide: rules + ensemble
          -> [alert_budget > 0] budget: per-shard review threshold from a score quantile
          -> alerts sink (tier >= review), decision sinks (all decisions)
    parse/validate, duplicate and unusable-label errors -> dead-letter sink

Why shards are input partitions: docs/architecture.md.

For ``python -m bytewax.run fraudflow.flows.detection:get_flow()`` the
settings come from ``FRAUDFLOW_*`` variables (and ``FRAUDFLOW_CONFIG``).
"""

from __future__ import annotations

from typing import Any, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from fraudflow.config.settings import Settings, load_settings
from fraudflow.connectors.stop import stoppable
from fraudflow.flows.io import FlowIO
from fraudflow.flows.wiring import kafka_io
from fraudflow.operators.decide.budget import AlertBudget
from fraudflow.operators.decide.ensemble import EnsembleParams, decide, model_version
from fraudflow.operators.decide.step import BudgetLogic
from fraudflow.operators.detectors.feedback import FeedbackParams
from fraudflow.operators.detectors.step import (
    FeedbackLogic,
    Scored,
    ShardLogic,
    shard_key,
)
from fraudflow.operators.features.catalogue import feature_catalogue
from fraudflow.operators.features.user import FeatureParams
from fraudflow.operators.ingest.parse import looks_like_label, parse_label, parse_message
from fraudflow.records import DeadLetter, Decision, FeatureRow, Label, Transaction
from fraudflow.rules import RuleWatcher
from fraudflow.state import snapshot


def _is_valid(x: Transaction | Label | DeadLetter) -> TypeGuard[Transaction | Label]:
    return type(x) is not DeadLetter


def _is_scored(x: Scored) -> TypeGuard[FeatureRow | Label]:
    return type(x) is not DeadLetter


def _is_row(x: FeatureRow | DeadLetter) -> TypeGuard[FeatureRow]:
    return type(x) is FeatureRow






def build_flow(
    settings: Settings, io: FlowIO, *, keep_state: bool = False, flow_id: str = "fraudflow"
) -> Dataflow:
    """Wire the detection steps between ``io``'s source and sinks.

    ``keep_state``: snapshots carry the state (needed for recovery only).
    """
    clock = io.clock
    stats = io.stats
    vset = settings.validation
    fparams = FeatureParams.from_settings(settings.features, vset)
    eparams = EnsembleParams.from_settings(settings.ensemble)
    mver = model_version(settings)
    feedback = settings.feedback.feedback
    catalogue = feature_catalogue(settings.features.windows, settings.feedback)
    rules = RuleWatcher(settings.rules.rules, catalogue, settings.rules.rules_reload_interval)
    require_key = io.require_key
    interleaved = feedback and io.interleaved_labels
    stats.set_versions(rules.current().version, mver)

    def parse_batch(msgs: list[Any]) -> list[Transaction | Label | DeadLetter]:
        now = clock()
        out: list[Transaction | Label | DeadLetter] = []
        for m in msgs:
            if interleaved and looks_like_label(m):
                out.append(parse_label(m, vset, now))
                continue
            res = parse_message(m, vset, now, require_key=require_key)
            if type(res) is Transaction:
                res.raw = m.value  # for a duplicate's dead letter; cleared by the score step
            out.append(res)
        stats.received(len(msgs))
        return out

    def parse_labels(msgs: list[Any]) -> list[Label | DeadLetter]:
        now = clock()
        stats.received(len(msgs))
        return [parse_label(m, vset, now) for m in msgs]

    def shard_builder(resume: bytes | None) -> ShardLogic:
        return ShardLogic(
            fparams,
            settings.model,
            snapshot.restore(resume),
            keep_state,
            stats,
            clock=None if io.event_clock else clock,
        )

    def decide_batch(rows: list[FeatureRow]) -> list[Decision]:
        ruleset = rules.current()
        now = clock()
        hits = ruleset.evaluate_batch([r.features for r in rows])
        out = [
            decide(r, h, eparams, rules_version=ruleset.version, model_ver=mver, now=now)
            for r, h in zip(rows, hits, strict=True)
        ]
        stats.decided(out, ruleset.version, now)
        return out

    def count_dead(letters: list[Any]) -> list[DeadLetter]:
        # the false sides of the branches hold only dead letters
        stats.dead(letters)
        return letters

    flow = Dataflow(flow_id)
    parsed = op.flat_map_batch("parse", op.input("input", flow, stoppable(io.source)), parse_batch)
    if feedback and io.labels is not None:
        raw_labels = op.input("labels_input", flow, stoppable(io.labels))
        parsed = op.merge(
            "with_labels", parsed, op.flat_map_batch("parse_labels", raw_labels, parse_labels)
        )
    valid = op.branch("split_invalid", parsed, _is_valid)
    by_shard = op.key_on("key_shard", valid.trues, shard_key)
    scored = op.branch(
        "split_duplicates",
        op.key_rm("unkey_shard", op.stateful_batch("score", by_shard, shard_builder)),
        _is_scored,
    )
    dead_streams = [valid.falses, scored.falses]
    rows: Any = scored.trues
    if feedback:
        fb = FeedbackParams.from_settings(settings.feedback, catalogue)

        def feedback_builder(resume: bytes | None) -> FeedbackLogic:
            return FeedbackLogic(fb, snapshot.restore(resume), keep_state, stats, clock)

        learned = op.branch(
            "split_label_errors",
            op.key_rm(
                "unkey_feedback",
                op.stateful_batch(
                    "feedback",
                    op.key_on("key_feedback", rows, lambda _: "feedback"),
                    feedback_builder,
                ),
            ),
            _is_row,
        )
        rows = learned.trues
        dead_streams.append(learned.falses)
    decisions = op.flat_map_batch("decide", rows, decide_batch)
    ens = settings.ensemble
    if ens.alert_budget > 0:

        def budget_builder(resume: bytes | None) -> BudgetLogic:
            kept = snapshot.restore(resume)
            return BudgetLogic(
                kept or AlertBudget(ens.alert_budget, ens.alert_budget_window), keep_state
            )

        decisions = op.key_rm(
            "unkey_budget",
            op.stateful_batch(
                "budget", op.key_on("key_budget", decisions, lambda d: shard_key(d.txn)),
                budget_builder,
            ),
        )  # fmt: skip
    alerts = op.filter("alerts", decisions, lambda d: d.is_alert)
    dead = op.flat_map_batch("count_dead", op.merge("dead_letters", *dead_streams), count_dead)
    op.output("alerts_out", alerts, io.alerts)
    op.output("dead_letters_out", dead, io.dead_letters)
    for name, sink in io.decisions:
        op.output(f"{name}_out", decisions, sink)
    return flow


def get_flow(environ: dict[str, str] | None = None) -> Dataflow:
    """The production flow from ``FRAUDFLOW_*`` settings, for ``python -m bytewax.run``."""
    settings = load_settings(environ=environ)
    return build_flow(
        settings, kafka_io(settings), keep_state=settings.recovery.recovery_dir is not None
    )


__all__ = ["FlowIO", "build_flow", "get_flow"]

"""The detection dataflow: one builder for run, demo, backtest, tests and clusters.

    input -> parse/validate -> key by shard (= input partition)
          -> score: per-user features + the shard's Half-Space Trees
          -> decide: rules + ensemble (+ the trained model, when one is served)
          -> [alert_budget > 0] budget: per-shard review threshold from a score quantile
          -> alerts sink (tier >= review), decision sinks (all decisions)
    [label_store on] labels input -> parse -> labels store (training)
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
from fraudflow.connectors.stop import install_stop_handlers, stoppable
from fraudflow.flows.io import FlowIO
from fraudflow.flows.wiring import kafka_io
from fraudflow.operators.decide.budget import AlertBudget
from fraudflow.operators.decide.ensemble import EnsembleParams, decide, model_version
from fraudflow.operators.decide.step import BudgetLogic
from fraudflow.operators.detectors.step import Scored, ShardLogic, shard_key
from fraudflow.operators.features.catalogue import feature_catalogue
from fraudflow.operators.features.user import FeatureParams
from fraudflow.operators.ingest.step import ParseStep
from fraudflow.records import DeadLetter, Decision, FeatureRow, Label, Transaction
from fraudflow.rules import RuleWatcher
from fraudflow.state import snapshot
from fraudflow.training.serving import score_batch


def _is_valid(x: Transaction | DeadLetter) -> TypeGuard[Transaction]:
    return type(x) is not DeadLetter


def _is_label(x: Label | DeadLetter) -> TypeGuard[Label]:
    return type(x) is Label


def _is_scored(x: Scored) -> TypeGuard[FeatureRow]:
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
    catalogue = feature_catalogue(settings.features.windows)
    rules = RuleWatcher(settings.rules.rules, catalogue, settings.rules.rules_reload_interval)
    parse = ParseStep(vset, stats, clock, io.require_key)
    stats.set_versions(rules.current().version, mver)

    def shard_builder(resume: bytes | None) -> ShardLogic:
        return ShardLogic(
            fparams,
            settings.model,
            snapshot.restore(resume),
            keep_state,
            stats,
            clock=None if io.event_clock else clock,
        )

    models = io.models

    def decide_batch(rows: list[FeatureRow]) -> list[Decision]:
        ruleset = rules.current()
        trained = None if models is None else models.current()  # one model per batch
        now = clock()
        views = [r.view() for r in rows]  # features + detector scores: what rules read
        hits = ruleset.evaluate_batch(views)
        # the trained model's hook (docs/training.md)
        probs = [None] * len(rows) if trained is None else score_batch(trained, rows, views, hits)
        ver = mver if trained is None else trained.version
        out = [
            decide(
                r, h, eparams, rules_version=ruleset.version, model_ver=ver, now=now, view=v,
                trained=prob,
            )
            for r, v, h, prob in zip(rows, views, hits, probs, strict=True)
        ]  # fmt: skip
        return out

    def count_stored(labels: list[Label]) -> list[Label]:
        stats.labels_stored(len(labels), sum(x.label for x in labels))
        return labels

    def count_dead(letters: list[Any]) -> list[DeadLetter]:
        # the false sides of the branches hold only dead letters
        stats.dead(letters)
        return letters

    flow = Dataflow(flow_id)
    parsed = op.flat_map_batch(
        "parse", op.input("input", flow, stoppable(io.source)), parse.transactions
    )
    label_dead: list[Any] = []
    if io.label_store is not None and io.labels is not None:
        # every valid label to the labels store (training, docs/training.md)
        raw_labels = op.input("labels_input", flow, stoppable(io.labels))
        got_labels = op.flat_map_batch("parse_labels", raw_labels, parse.labels)
        stored = op.branch("split_stored_labels", got_labels, _is_label)
        counted = op.flat_map_batch("count_stored_labels", stored.trues, count_stored)
        label_dead.append(stored.falses)
        op.output("labels_store_out", counted, io.label_store)
    valid = op.branch("split_invalid", parsed, _is_valid)
    by_shard = op.key_on("key_shard", valid.trues, shard_key)
    scored = op.branch(
        "split_duplicates",
        op.key_rm("unkey_shard", op.stateful_batch("score", by_shard, shard_builder)),
        _is_scored,
    )
    dead_streams = [valid.falses, scored.falses, *label_dead]
    decisions = op.flat_map_batch("decide", scored.trues, decide_batch)
    ens = settings.ensemble
    if ens.alert_budget > 0:

        def budget_builder(resume: bytes | None) -> BudgetLogic:
            budget = snapshot.restore(resume) or AlertBudget(
                ens.alert_budget, ens.alert_budget_window
            )
            budget.block = ens.block_threshold  # the setting in force, also after a restore
            return BudgetLogic(budget, keep_state)

        decisions = op.key_rm(
            "unkey_budget",
            op.stateful_batch(
                "budget", op.key_on("key_budget", decisions, lambda d: shard_key(d.txn)),
                budget_builder,
            ),
        )  # fmt: skip

    def count_decided(batch: list[Decision]) -> list[Decision]:
        # after the budget: the counts and metrics are of the tiers that go out
        if batch:
            stats.decided(batch, batch[-1].rules_version, clock())
        return batch

    decisions = op.flat_map_batch("count_decided", decisions, count_decided)
    alerts = op.filter("alerts", decisions, lambda d: d.is_alert)
    dead = op.flat_map_batch("count_dead", op.merge("dead_letters", *dead_streams), count_dead)
    op.output("alerts_out", alerts, io.alerts)
    op.output("dead_letters_out", dead, io.dead_letters)
    for name, sink in io.decisions:
        op.output(f"{name}_out", decisions, sink)
    return flow


def get_flow(environ: dict[str, str] | None = None, *, graceful: bool = True) -> Dataflow:
    """The production flow from ``FRAUDFLOW_*`` settings, for ``python -m bytewax.run``.

    ``graceful``: SIGTERM/SIGINT stop the input and the flow drains as at end of input,
    as under ``fraudflow run`` (:func:`~fraudflow.connectors.stop.install_stop_handlers`;
    bytewax.run calls this in its main thread, just before it runs the flow). The handlers
    stay for the rest of the process: build the flow with :func:`build_flow` to embed it.
    """
    settings = load_settings(environ=environ)
    if graceful:
        install_stop_handlers()
    return build_flow(
        settings, kafka_io(settings), keep_state=settings.recovery.recovery_dir is not None
    )


__all__ = ["FlowIO", "build_flow", "get_flow"]

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

import pickle
import time
from datetime import UTC, datetime
from typing import Any, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic

from fraudflow.config.settings import ModelSettings, Settings, load_settings
from fraudflow.flows import routing
from fraudflow.flows.io import Clock, FlowIO
from fraudflow.flows.stats import RunStats
from fraudflow.flows.wiring import kafka_io
from fraudflow.operators.budget import AlertBudget
from fraudflow.operators.catalogue import feature_catalogue
from fraudflow.operators.ensemble import EnsembleParams, decide, model_version
from fraudflow.operators.features import FeatureParams, user_step
from fraudflow.operators.feedback import FeedbackParams, apply_label, enrich
from fraudflow.operators.hst import HstShard
from fraudflow.operators.parse import looks_like_label, parse_label, parse_message
from fraudflow.records import DeadLetter, Decision, FeatureRow, Label, Transaction
from fraudflow.rules import RuleWatcher
from fraudflow.state.feedback import FeedbackState
from fraudflow.state.user import UserState
from fraudflow.training.serving import score_batch

Scored = FeatureRow | DeadLetter | Label


class ShardState:
    """Everything one shard (one input partition) remembers: its users and its model."""

    __slots__ = ("clock", "model", "seen", "users")

    def __init__(self) -> None:
        self.users: dict[str, UserState] = {}
        self.seen: dict[str, float] = {}  # wall-clock last activity per user, for expiry
        self.model: HstShard | None = None
        # replays: the shard's clock in event time
        self.clock = float("-inf")

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        self.clock = float("-inf")  # a snapshot from before the event clock has none
        for name, value in state[1].items():
            setattr(self, name, value)

    def event_clock(self, txn: Transaction, ahead: float) -> float:
        """The shard's clock in event time (replays) for ``txn``, then moved by it.

        It starts at the first record's event time and follows the newest
        event time, but one record moves it at most ``ahead`` forward, so a
        record dated far ahead cannot drag it along (a gap in traffic is
        caught up ``ahead`` per record).
        """
        ref = txn.ts if self.clock == float("-inf") else self.clock
        self.clock = max(ref, min(txn.ts, ref + ahead))
        return ref


class ShardLogic(StatefulBatchLogic[Transaction | Label, Scored, bytes | None]):
    """Per-user features and the shard's Half-Space Trees, in source order.

    Labels pass through untouched, in their place in the partition's order,
    so a replay that interleaves them with transactions stays deterministic.

    A shard is one input partition (Kafka keys records by user, so a user
    lives in one partition). Rows reach it from one reader in offset order,
    so its features and model scores do not depend on how many workers or
    processes run. Users idle for ``idle_ttl`` of wall-clock time are dropped
    by a sweep; Bytewax compares ``notify_at`` with the system clock.
    """

    def __init__(
        self,
        fp: FeatureParams,
        mp: ModelSettings,
        state: ShardState | None,
        keep: bool,
        stats: RunStats,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock  # None: the shard's own event time bounds event times (replays)
        self.stats = stats
        self.key: str | None = None
        self.fp = fp
        self.mp = mp
        self.state = state or ShardState()
        self.keep = keep
        self.sweep_every = min(fp.idle, SWEEP_SECONDS)
        self.next_sweep = time.time() + self.sweep_every

    def on_batch(self, values: list[Transaction | Label]) -> tuple[list[Scored], bool]:
        st, fp = self.state, self.fp
        users, seen = st.users, st.seen
        now = time.time()
        clock = None if self.clock is None else self.clock()
        out: list[Scored] = []
        rows: list[FeatureRow] = []
        for txn in values:
            if isinstance(txn, Label):
                out.append(txn)
                continue
            uid = txn.user_id
            ref = st.event_clock(txn, fp.ahead) if clock is None else clock
            users[uid], res = user_step(users.get(uid), txn, fp, ref)
            txn.raw = None  # only a dead letter needs the bytes past this step
            seen[uid] = now
            out.append(res)
            if type(res) is FeatureRow:
                rows.append(res)
        self.key = shard_key(values[0])
        self.stats.shard_users(self.key, len(users))
        if rows:
            if st.model is None:
                st.model = HstShard(_shard_number(values[0]), self.mp)
            st.model.score_and_learn(rows)
        return out, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime:
        return datetime.fromtimestamp(self.next_sweep, UTC)

    def on_notify(self) -> tuple[list[Scored], bool]:
        now = time.time()
        cutoff = now - self.fp.idle
        users, seen = self.state.users, self.state.seen
        for uid in [u for u, t in seen.items() if t < cutoff]:
            del users[uid], seen[uid]
        self.next_sweep = now + self.sweep_every
        if self.key is not None:
            self.stats.shard_users(self.key, len(users))
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        # pickled here, so the snapshot is immutable; skipped without recovery
        return pickle.dumps(self.state, pickle.HIGHEST_PROTOCOL) if self.keep else None


SWEEP_SECONDS = 60.0


class FeedbackLogic(StatefulBatchLogic[FeatureRow | Label, FeatureRow | DeadLetter, bytes | None]):
    """The one feedback state of the flow: rows are enriched, labels learned, in arrival order.

    One key, so one worker holds it: every shard's labels reach the entity
    counts and the model that score every shard (docs/feedback.md).
    """

    def __init__(
        self,
        p: FeedbackParams,
        state: FeedbackState | None,
        keep: bool,
        stats: RunStats,
        clock: Clock,
    ) -> None:
        self.p = p
        self.state = state or p.new_state()
        self.keep = keep
        self.stats = stats
        self.clock = clock

    def on_batch(
        self, values: list[FeatureRow | Label]
    ) -> tuple[list[FeatureRow | DeadLetter], bool]:
        st, p = self.state, self.p
        out: list[FeatureRow | DeadLetter] = []
        labels = frauds = 0
        now = self.clock()
        for item in values:
            if isinstance(item, FeatureRow):
                enrich(st, item, p)
                out.append(item)
                continue
            dead = apply_label(st, item, p, now)
            if dead is None:
                labels += 1
                frauds += item.label
            else:
                out.append(dead)
        self.stats.feedback(labels, frauds, len(st.pending))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        return pickle.dumps(self.state, pickle.HIGHEST_PROTOCOL) if self.keep else None


class BudgetLogic(StatefulBatchLogic[Decision, Decision, bytes | None]):
    """One shard's alert budget (see :mod:`fraudflow.operators.budget`)."""

    def __init__(self, budget: AlertBudget, keep: bool) -> None:
        self.budget = budget
        self.keep = keep

    def on_batch(self, values: list[Decision]) -> tuple[list[Decision], bool]:
        apply = self.budget.apply
        return [apply(d) for d in values], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        return pickle.dumps(self.budget, pickle.HIGHEST_PROTOCOL) if self.keep else None


def _is_valid(x: Transaction | Label | DeadLetter) -> TypeGuard[Transaction | Label]:
    return type(x) is not DeadLetter


def _is_label(x: Label | DeadLetter) -> TypeGuard[Label]:
    return type(x) is Label


def _is_scored(x: Scored) -> TypeGuard[FeatureRow | Label]:
    return type(x) is not DeadLetter


def _is_row(x: FeatureRow | DeadLetter) -> TypeGuard[FeatureRow]:
    return type(x) is FeatureRow


def shard_key(item: Transaction | Label) -> str:
    """The shard of a record: its input partition (keyed to spread over workers)."""
    return routing.shard_key(item.topic, item.partition)


def _shard_number(txn: Transaction | Label) -> int:
    """Seeds the shard's model: the partition number, so a file replayed in a
    backtest gets the same model as partition 0 of a live topic."""
    return max(txn.partition, 0)


def _restore(blob: bytes | None) -> Any:
    return None if blob is None else pickle.loads(blob)  # noqa: S301 - our own snapshots


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
            _restore(resume),
            keep_state,
            stats,
            clock=None if io.event_clock else clock,
        )

    models = io.models

    def decide_batch(rows: list[FeatureRow]) -> list[Decision]:
        ruleset = rules.current()
        trained = None if models is None else models.current()  # one model per batch
        now = clock()
        hits = ruleset.evaluate_batch([r.features for r in rows])
        if trained is not None:
            score_batch(trained, rows, hits)  # the trained model's hook (docs/training.md)
        ver = mver if trained is None else trained.version
        out = [
            decide(r, h, eparams, rules_version=ruleset.version, model_ver=ver, now=now)
            for r, h in zip(rows, hits, strict=True)
        ]
        stats.decided(out, ruleset.version, now)
        return out

    def count_stored(labels: list[Label]) -> list[Label]:
        stats.feedback(len(labels), sum(x.label for x in labels), 0)
        return labels

    def count_dead(letters: list[Any]) -> list[DeadLetter]:
        # the false sides of the branches hold only dead letters
        stats.dead(letters)
        return letters

    flow = Dataflow(flow_id)
    parsed = op.flat_map_batch("parse", op.input("input", flow, io.source), parse_batch)
    label_dead: list[Any] = []
    if (feedback or io.label_store is not None) and io.labels is not None:
        raw_labels = op.input("labels_input", flow, io.labels)
        got_labels = op.flat_map_batch("parse_labels", raw_labels, parse_labels)
        if io.label_store is not None:  # every valid label to the labels store (training)
            stored = op.branch("split_stored_labels", got_labels, _is_label)
            kept: Any = stored.trues
            if not feedback:  # else the feedback step counts them
                kept = op.flat_map_batch("count_stored_labels", kept, count_stored)
                label_dead.append(stored.falses)
            op.output("labels_store_out", kept, io.label_store)
        if feedback:
            parsed = op.merge("with_labels", parsed, got_labels)
    valid = op.branch("split_invalid", parsed, _is_valid)
    by_shard = op.key_on("key_shard", valid.trues, shard_key)
    scored = op.branch(
        "split_duplicates",
        op.key_rm("unkey_shard", op.stateful_batch("score", by_shard, shard_builder)),
        _is_scored,
    )
    dead_streams = [valid.falses, scored.falses, *label_dead]
    rows: Any = scored.trues
    if feedback:
        fb = FeedbackParams.from_settings(settings.feedback, catalogue)

        def feedback_builder(resume: bytes | None) -> FeedbackLogic:
            return FeedbackLogic(fb, _restore(resume), keep_state, stats, clock)

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
            kept = _restore(resume)
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

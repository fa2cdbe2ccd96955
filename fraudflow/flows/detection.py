"""The detection dataflow: one builder for run, demo, backtest, tests and clusters.

    input -> parse/validate -> key by user -> features (per-user state)
          -> key by model shard -> Half-Space Trees -> rules + ensemble
          -> alerts sink (tier >= review), decision sinks (all decisions)
    parse/validate and duplicate errors -> dead-letter sink

For ``python -m bytewax.run fraudflow.flows.detection:get_flow()`` the
settings come from ``FRAUDFLOW_*`` variables (and ``FRAUDFLOW_CONFIG``).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from fraudflow.config.settings import ModelSettings, Settings, load_settings
from fraudflow.flows.stats import RunStats
from fraudflow.operators.catalogue import feature_catalogue
from fraudflow.operators.ensemble import EnsembleParams, decide, model_version
from fraudflow.operators.features import FeatureParams, user_step
from fraudflow.operators.hst import HstShard, shard_of
from fraudflow.operators.parse import parse_message
from fraudflow.records import DeadLetter, Decision, FeatureRow, Transaction
from fraudflow.rules import RuleWatcher
from fraudflow.state.user import UserState

Clock = Callable[[], float]


@dataclass
class FlowIO:
    """Where records come from and go to; everything else is the same flow."""

    source: Source[Any]
    alerts: Sink[Decision]
    dead_letters: Sink[DeadLetter]
    decisions: Sequence[tuple[str, Sink[Decision]]] = ()
    require_key: bool = True  # Kafka keys must equal user_id; files have no keys
    clock: Clock = time.time
    stats: RunStats = field(default_factory=RunStats)


class UserLogic(StatefulBatchLogic[Transaction, FeatureRow | DeadLetter, bytes | None]):
    """Owns one user's state; dropped after ``idle_ttl`` of wall-clock silence."""

    def __init__(self, p: FeatureParams, state: UserState | None, clock: Clock, keep: bool) -> None:
        self.p = p
        self.state = state
        self.clock = clock
        self.keep = keep
        self.touched = clock()

    def on_batch(self, values: list[Transaction]) -> tuple[list[FeatureRow | DeadLetter], bool]:
        out = []
        state, p = self.state, self.p
        for txn in values:
            state, res = user_step(state, txn, p)
            out.append(res)
        self.state = state
        self.touched = self.clock()
        return out, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime:
        return datetime.fromtimestamp(self.touched + self.p.idle, UTC)

    def on_notify(self) -> tuple[list[FeatureRow | DeadLetter], bool]:
        return [], StatefulBatchLogic.DISCARD

    def snapshot(self) -> bytes | None:
        # pickled here, so the snapshot is immutable; skipped without recovery
        return pickle.dumps(self.state, pickle.HIGHEST_PROTOCOL) if self.keep else None


class HstLogic(StatefulBatchLogic[FeatureRow, FeatureRow, bytes | None]):
    """Owns one Half-Space Trees model shard.

    Bytewax hands a builder only the resume state, not the key, so a new
    model is made on the first batch, seeded by the shard its rows belong to.
    """

    def __init__(self, model: HstShard | None, settings: ModelSettings, keep: bool) -> None:
        self.model = model
        self.settings = settings
        self.keep = keep

    def on_batch(self, values: list[FeatureRow]) -> tuple[list[FeatureRow], bool]:
        if self.model is None:
            shard = int(shard_of(values[0].txn.user_id, self.settings.hst_shards))
            self.model = HstShard(shard, self.settings)
        self.model.score_and_learn(values)
        return values, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        return pickle.dumps(self.model, pickle.HIGHEST_PROTOCOL) if self.keep else None


def _restore(blob: bytes | None) -> Any:
    return None if blob is None else pickle.loads(blob)  # noqa: S301 - our own snapshots


def build_flow(settings: Settings, io: FlowIO, *, keep_state: bool = False, flow_id: str = "fraudflow") -> Dataflow:
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
    shards = settings.model.hst_shards
    require_key = io.require_key
    stats.set_versions(rules.current().version, mver)

    def parse_batch(msgs: list[Any]) -> list[Transaction | DeadLetter]:
        now = clock()
        out = [parse_message(m, vset, now, require_key=require_key) for m in msgs]
        stats.received(len(msgs))
        return out

    def user_builder(resume: bytes | None) -> UserLogic:
        return UserLogic(fparams, _restore(resume), clock, keep_state)

    def hst_builder(resume: bytes | None) -> HstLogic:
        return HstLogic(_restore(resume), settings.model, keep_state)

    def decide_batch(rows: list[FeatureRow]) -> list[Decision]:
        ruleset = rules.current()
        now = clock()
        hits = ruleset.evaluate_batch([r.features for r in rows])
        out = [decide(r, h, eparams, ruleset.version, mver, now) for r, h in zip(rows, hits, strict=True)]
        stats.decided(out, ruleset.version)
        return out

    def count_dead(letters: list[DeadLetter]) -> list[DeadLetter]:
        stats.dead(letters)
        return letters

    flow = Dataflow(flow_id)
    raw = op.input("input", flow, io.source)
    parsed = op.flat_map_batch("parse", raw, parse_batch)
    valid = op.branch("split_invalid", parsed, lambda x: isinstance(x, Transaction))
    by_user = op.key_on("key_user", valid.trues, lambda t: t.user_id)
    featured = op.key_rm("unkey_user", op.stateful_batch("features", by_user, user_builder))
    rows = op.branch("split_duplicates", featured, lambda x: isinstance(x, FeatureRow))
    by_shard = op.key_on("key_shard", rows.trues, lambda r: shard_of(r.txn.user_id, shards))
    scored = op.key_rm("unkey_shard", op.stateful_batch("hst", by_shard, hst_builder))
    decisions = op.flat_map_batch("decide", scored, decide_batch)
    alerts = op.filter("alerts", decisions, lambda d: d.is_alert)
    dead = op.flat_map_batch("count_dead", op.merge("dead_letters", valid.falses, rows.falses), count_dead)
    op.output("alerts_out", alerts, io.alerts)
    op.output("dead_letters_out", dead, io.dead_letters)
    for name, sink in io.decisions:
        op.output(f"{name}_out", decisions, sink)
    return flow


def get_flow(environ: dict[str, str] | None = None) -> Dataflow:
    """The production flow from ``FRAUDFLOW_*`` settings, for ``python -m bytewax.run``."""
    from fraudflow.flows.wiring import kafka_io

    settings = load_settings(environ=environ)
    io = kafka_io(settings)
    return build_flow(settings, io, keep_state=settings.recovery.recovery_dir is not None)


__all__ = ["FlowIO", "build_flow", "get_flow"]

"""The detection dataflow: one builder for run, demo, backtest, tests and clusters.

    input -> parse/validate -> key by shard (= input partition)
          -> score: per-user features + the shard's Half-Space Trees
          -> decide: rules + ensemble
          -> alerts sink (tier >= review), decision sinks (all decisions)
    parse/validate and duplicate errors -> dead-letter sink

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
from fraudflow.flows.io import FlowIO
from fraudflow.flows.stats import RunStats
from fraudflow.flows.wiring import kafka_io
from fraudflow.operators.catalogue import feature_catalogue
from fraudflow.operators.ensemble import EnsembleParams, decide, model_version
from fraudflow.operators.features import FeatureParams, user_step
from fraudflow.operators.hst import HstShard
from fraudflow.operators.parse import parse_message
from fraudflow.records import DeadLetter, Decision, FeatureRow, Transaction
from fraudflow.rules import RuleWatcher
from fraudflow.state.user import UserState


class ShardState:
    """Everything one shard (one input partition) remembers: its users and its model."""

    __slots__ = ("model", "seen", "users")

    def __init__(self) -> None:
        self.users: dict[str, UserState] = {}
        self.seen: dict[str, float] = {}  # wall-clock last activity per user, for expiry
        self.model: HstShard | None = None


class ShardLogic(StatefulBatchLogic[Transaction, FeatureRow | DeadLetter, bytes | None]):
    """Per-user features and the shard's Half-Space Trees, in source order.

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
    ) -> None:
        self.stats = stats
        self.key: str | None = None
        self.fp = fp
        self.mp = mp
        self.state = state or ShardState()
        self.keep = keep
        self.sweep_every = min(fp.idle, SWEEP_SECONDS)
        self.next_sweep = time.time() + self.sweep_every

    def on_batch(self, values: list[Transaction]) -> tuple[list[FeatureRow | DeadLetter], bool]:
        st, fp = self.state, self.fp
        users, seen = st.users, st.seen
        now = time.time()
        out: list[FeatureRow | DeadLetter] = []
        rows: list[FeatureRow] = []
        for txn in values:
            uid = txn.user_id
            users[uid], res = user_step(users.get(uid), txn, fp)
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

    def on_notify(self) -> tuple[list[FeatureRow | DeadLetter], bool]:
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


def _is_transaction(x: Transaction | DeadLetter) -> TypeGuard[Transaction]:
    return type(x) is Transaction


def _is_row(x: FeatureRow | DeadLetter) -> TypeGuard[FeatureRow]:
    return type(x) is FeatureRow


def shard_key(txn: Transaction) -> str:
    """The shard of a record: its input partition (keyed to spread over workers)."""
    return routing.shard_key(txn.topic, txn.partition)


def _shard_number(txn: Transaction) -> int:
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
    catalogue = feature_catalogue(settings.features.windows)
    rules = RuleWatcher(settings.rules.rules, catalogue, settings.rules.rules_reload_interval)
    require_key = io.require_key
    stats.set_versions(rules.current().version, mver)

    def parse_batch(msgs: list[Any]) -> list[Transaction | DeadLetter]:
        now = clock()
        out = [parse_message(m, vset, now, require_key=require_key) for m in msgs]
        stats.received(len(msgs))
        return out

    def shard_builder(resume: bytes | None) -> ShardLogic:
        return ShardLogic(fparams, settings.model, _restore(resume), keep_state, stats)

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
        # the false sides of the two branches hold only dead letters
        stats.dead(letters)
        return letters

    flow = Dataflow(flow_id)
    raw = op.input("input", flow, io.source)
    parsed = op.flat_map_batch("parse", raw, parse_batch)
    valid = op.branch("split_invalid", parsed, _is_transaction)
    by_shard = op.key_on("key_shard", valid.trues, shard_key)
    featured = op.key_rm("unkey_shard", op.stateful_batch("score", by_shard, shard_builder))
    rows = op.branch("split_duplicates", featured, _is_row)
    decisions = op.flat_map_batch("decide", rows.trues, decide_batch)
    alerts = op.filter("alerts", decisions, lambda d: d.is_alert)
    dead = op.flat_map_batch(
        "count_dead", op.merge("dead_letters", valid.falses, rows.falses), count_dead
    )
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

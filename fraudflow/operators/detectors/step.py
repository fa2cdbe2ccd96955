"""The Bytewax step that scores: per-user features and the shard's detectors (registry.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from bytewax.operators import StatefulBatchLogic

from fraudflow.config.settings import ModelSettings
from fraudflow.observability.stats import RunStats
from fraudflow.operators.detectors.calibrate import Calibrated
from fraudflow.operators.detectors.registry import BY_NAME, new_detectors
from fraudflow.operators.features.user import FeatureParams, user_step
from fraudflow.operators.ingest import routing
from fraudflow.records import DeadLetter, FeatureRow, Transaction
from fraudflow.state import snapshot
from fraudflow.state.shard import ShardDetector, ShardState

Scored = FeatureRow | DeadLetter
Clock = Callable[[], float]  # wall clock in epoch seconds (fraudflow.flows.io.Clock)


class ShardLogic(StatefulBatchLogic[Transaction, Scored, bytes | None]):
    """Per-user features and the shard's detectors, in source order.

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

    def on_batch(self, values: list[Transaction]) -> tuple[list[Scored], bool]:
        st, fp = self.state, self.fp
        users, seen = st.users, st.seen
        now = time.time()
        clock = None if self.clock is None else self.clock()
        out: list[Scored] = []
        rows: list[FeatureRow] = []
        for txn in values:
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
            detectors = st.detectors
            if (
                detectors is None
                or detectors.keys() != BY_NAME.keys()
                or not all(type(d) is Calibrated for d in detectors.values())
            ):
                # a fresh shard, or a snapshot from before a detector or the calibration
                # was added: its detectors are kept, a fresh calibrator wraps them
                kept = detectors or {}
                window = self.mp.calibration_window
                detectors = {
                    name: _calibrated(kept[name], window) if name in kept else d
                    for name, d in new_detectors(_shard_number(values[0]), self.mp).items()
                }
                st.detectors = detectors
            for name, detector in detectors.items():
                for row, score in zip(rows, detector.score_then_learn(rows), strict=True):
                    row.scores[name] = score
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
        return snapshot.dump(self.state) if self.keep else None


SWEEP_SECONDS = 60.0


def _calibrated(d: ShardDetector, window: int) -> ShardDetector:
    return d if type(d) is Calibrated else Calibrated(d, window)  # type: ignore[arg-type]


def shard_key(item: Transaction) -> str:
    """The shard of a record: its input partition (keyed to spread over workers)."""
    return routing.shard_key(item.topic, item.partition)


def _shard_number(txn: Transaction) -> int:
    """Seeds the shard's model: the partition number, so a file replayed in a
    backtest gets the same model as partition 0 of a live topic."""
    return max(txn.partition, 0)

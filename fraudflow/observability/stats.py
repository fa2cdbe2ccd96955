"""Run counters updated once per batch: progress lines, the end-of-run summary
and the accounting check received = valid + labels stored + dead-lettered.

Workers are threads of one process, so updates take a lock; they happen once
per batch, never per event.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fraudflow.observability import metrics
from fraudflow.records import DeadLetter, Decision


@dataclass
class RunStats:
    started: float = field(default_factory=time.monotonic)
    received_n: int = 0
    decided_n: int = 0
    dead_n: int = 0
    late_n: int = 0
    labels_n: int = 0  # labels read from the labels topic for the labels store
    label_frauds_n: int = 0
    dead_by_code: Counter[str] = field(default_factory=Counter)
    tiers: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    rules_version: str = ""
    model_version: str = ""
    newest_event: float = 0.0
    users_by_shard: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set_versions(self, rules_version: str, model_version: str) -> None:
        metrics.set_versions(rules_version, model_version)
        with self._lock:
            self.rules_version, self.model_version = rules_version, model_version

    def received(self, n: int) -> None:
        metrics.observe_received(n)
        metrics.observe_batch("parse", n)
        with self._lock:
            self.received_n += n

    def dead(self, letters: Sequence[DeadLetter]) -> None:
        metrics.observe_dead_letters(letters)
        with self._lock:
            self.dead_n += len(letters)
            self.dead_by_code.update(d.code for d in letters)

    def labels_stored(self, labels: int, frauds: int) -> None:
        """A batch of ``labels`` valid labels (``frauds`` of them fraud) to the labels store."""
        metrics.observe_labels(labels, frauds)
        with self._lock:
            self.labels_n += labels
            self.label_frauds_n += frauds

    def shard_users(self, shard: str, users: int) -> None:
        """Users held in one shard's state (the sum is the active-users gauge)."""
        with self._lock:
            self.users_by_shard[shard] = users
            total = sum(self.users_by_shard.values())
        metrics.set_active_users(total)

    def decided(self, decisions: Sequence[Decision], rules_version: str, now: float) -> None:
        metrics.observe_decisions(decisions, now)
        metrics.observe_batch("decide", len(decisions))
        if rules_version != self.rules_version:
            metrics.set_versions(rules_version, self.model_version)
        tiers: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        late = 0
        newest = 0.0
        for d in decisions:
            tiers[d.tier] += 1
            late += d.late
            if d.tier != "approve":
                reasons.update(r.code for r in d.reasons)
            newest = max(newest, d.txn.ts)
        with self._lock:
            self.decided_n += len(decisions)
            self.late_n += late
            self.tiers.update(tiers)
            self.reasons.update(reasons)
            self.rules_version = rules_version
            self.newest_event = max(self.newest_event, newest)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            return {
                "received": self.received_n,
                "valid": self.decided_n,
                "labels": self.labels_n,
                "label_frauds": self.label_frauds_n,
                "dead_lettered": self.dead_n,
                "late": self.late_n,
                "active_users": sum(self.users_by_shard.values()),
                "dead_by_code": dict(self.dead_by_code),
                "tiers": {t: self.tiers.get(t, 0) for t in ("approve", "review", "block")},
                "top_reasons": self.reasons.most_common(5),
                "rules_version": self.rules_version,
                "model_version": self.model_version,
                "elapsed_s": round(elapsed, 2),
                "records_per_s": round(self.received_n / elapsed, 1),
            }

    def progress_line(self) -> str:
        s = self.snapshot()
        t = s["tiers"]
        top = ", ".join(f"{code} {n}" for code, n in s["top_reasons"][:3]) or "-"
        return (
            f"{s['received']:>9,} in | {s['records_per_s']:>8,.0f}/s | "
            f"dead {s['dead_lettered']:,} | "
            f"review {t['review']:,} block {t['block']:,} | top: {top}"
        )

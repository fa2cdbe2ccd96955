"""What the feedback step remembers: scored transactions awaiting labels,
entity fraud counts by day, the supervised model and the recently expired ids.

Everything is bounded: a pending transaction leaves after the label horizon
(event time) or when ``max_pending`` is reached; an entity's day counts
leave after the longest entity window; expired ids are remembered for about
``max_pending`` more transactions, so a late label is told apart from an
unknown one; a label read before its transaction waits at most
``early_label_horizon`` (and ``max_early_labels`` of them).
"""

from __future__ import annotations

from collections import deque
from typing import Any

DAY = 86400


# A kept transaction is a plain list, not an object: a snapshot pickles up to
# ``max_pending`` of them, and lists pickle ~10x faster than slotted objects
# (benchmarks/bench_feedback.py). Fields, by index:
TS, DAY_OF, ENTITIES, X, LABEL, REPORTED_AT = range(6)
Pending = list[Any]  # [ts, day, entity keys, model inputs as packed float32, label, reported_at]


def new_pending(ts: float, entities: tuple[str, ...], x: bytes) -> Pending:
    """A scored transaction awaiting its label (-1: none yet, else 0/1)."""
    return [ts, int(ts // DAY), entities, x, -1, float("-inf")]


class EntityCounts:
    """Transactions and confirmed frauds per entity and event-time day.

    ``counts[key][day] = [transactions, frauds]``. The key ``""`` holds the
    totals over all entities of one field, the prior that smooths small ones.
    """

    __slots__ = ("counts", "keep_days")

    def __init__(self, keep_days: int) -> None:
        self.keep_days = keep_days
        self.counts: dict[str, dict[int, list[int]]] = {}

    def add(self, key: str, day: int, txns: int, frauds: int) -> None:
        days = self.counts.get(key)
        if days is None:
            days = self.counts[key] = {}
        c = days.get(day)
        if c is None:
            days[day] = [txns, frauds]
            if len(days) > self.keep_days + 1:
                cutoff = max(days) - self.keep_days
                for d in [d for d in days if d <= cutoff]:
                    del days[d]
        else:
            c[0] += txns
            c[1] += frauds

    def window(self, key: str, today: int, days: int) -> tuple[int, int]:
        """(transactions, frauds) of ``key`` on days in (today - days, today]."""
        return self.windows(key, today, (days,))[0]

    def windows(self, key: str, today: int, spans: tuple[int, ...]) -> list[tuple[int, int]]:
        """:meth:`window` for several spans (shortest first) in one pass."""
        got = self.counts.get(key)
        if not got:
            return [(0, 0)] * len(spans)
        n = [0] * len(spans)
        f = [0] * len(spans)
        for d, c in got.items():
            age = today - d
            if age < 0:
                continue
            for i, span in enumerate(spans):
                if age < span:
                    for j in range(i, len(spans)):
                        n[j] += c[0]
                        f[j] += c[1]
                    break
        return list(zip(n, f, strict=True))

    def sweep(self, today: int) -> None:
        """Forget entities with no day inside the longest window."""
        cutoff = today - self.keep_days
        for key in [k for k, days in self.counts.items() if max(days, default=cutoff) <= cutoff]:
            del self.counts[key]

    def __len__(self) -> int:
        return len(self.counts)


class FeedbackState:
    """The whole feedback step state (one per flow; see docs/feedback.md)."""

    __slots__ = (
        "early",
        "entities",
        "expired",
        "expired_old",
        "frauds_learned",
        "legit_learned",
        "model",
        "order",
        "pending",
        "rows_seen",
        "watermark",
    )

    def __init__(self, keep_days: int) -> None:
        self.pending: dict[str, Pending] = {}
        self.order: deque[str] = deque()  # pending ids, oldest first
        self.entities = EntityCounts(keep_days)
        self.model: Any = None  # the river pipeline, built on first use
        self.frauds_learned = 0
        self.legit_learned = 0
        self.watermark = float("-inf")  # newest event time seen
        self.rows_seen = 0
        # ids that left pending: two generations, each up to max_pending ids
        self.expired: set[str] = set()
        self.expired_old: set[str] = set()
        # labels read before their transaction: id -> (deadline, labels in arrival order),
        # oldest first (deadlines grow with the clock)
        self.early: dict[str, tuple[float, list[Any]]] = {}

    def __setstate__(self, state: Any) -> None:
        # a snapshot of an older version lacks the newer slots: they start empty
        self.early = {}
        slots = state[1] if isinstance(state, tuple) else state
        for k, v in (slots or {}).items():
            setattr(self, k, v)

    def remember_expired(self, transaction_id: str, cap: int) -> None:
        if len(self.expired) >= cap:
            self.expired_old, self.expired = self.expired, set()
        self.expired.add(transaction_id)

    def was_expired(self, transaction_id: str) -> bool:
        return transaction_id in self.expired or transaction_id in self.expired_old

"""One shard's state (one input partition): its users, their activity, its model, its clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from fraudflow.records import FeatureRow, Transaction
from fraudflow.state.user import UserState


class ShardModel(Protocol):
    """The shard's model as its state sees it (today ``operators.detectors.hst.HstShard``).

    The model keeps its learned state beside its logic (the trees' arrays are
    both); the shard state holds it and snapshots it with the users.
    """

    def score_and_learn(self, rows: Sequence[FeatureRow]) -> None: ...


class ShardState:
    """Everything one shard (one input partition) remembers: its users and its model."""

    __slots__ = ("clock", "model", "seen", "users")

    def __init__(self) -> None:
        self.users: dict[str, UserState] = {}
        self.seen: dict[str, float] = {}  # wall-clock last activity per user, for expiry
        self.model: ShardModel | None = None
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

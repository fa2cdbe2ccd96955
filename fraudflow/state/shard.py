"""One shard's state (one input partition): its users, their activity, its model, its clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from fraudflow.records import FeatureRow, Transaction
from fraudflow.state.user import UserState


class ShardDetector(Protocol):
    """A detector as the shard state sees it (``operators.detectors.base.Detector``).

    A detector keeps its learned state beside its logic (the trees' arrays are
    both); the shard state holds the shard's detectors and snapshots them with
    the users.
    """

    def score_then_learn(self, rows: Sequence[FeatureRow]) -> list[float]: ...


class ShardState:
    """Everything one shard (one input partition) remembers: its users and its detectors."""

    __slots__ = ("clock", "detectors", "seen", "users")

    def __init__(self) -> None:
        self.users: dict[str, UserState] = {}
        self.seen: dict[str, float] = {}  # wall-clock last activity per user, for expiry
        # name -> detector, in registry order; None until the first row
        self.detectors: dict[str, ShardDetector] | None = None
        # replays: the shard's clock in event time
        self.clock = float("-inf")

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        self.clock = float("-inf")  # a snapshot from before the event clock has none
        self.detectors = None
        for name, value in state[1].items():
            if name == "model":  # before the detector registry: the trees alone
                self.detectors = None if value is None else {"hst": value}
            else:
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

"""What the feature step remembers about one user, in compact arrays.

Everything is bounded: events are kept for the longest window (or the
duplicate horizon) and at most ``max_events_per_user`` of them; the recent
merchant/country/device/method/category sets hold ``recent_set_size`` entries
each, evicting the least recently seen. Strings are kept as 64-bit hashes.
The whole object pickles to a few hundred bytes to a few KB.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_right, insort


def stable_hash(text: str) -> int:
    """A 64-bit hash that is the same in every process (unlike ``hash``).

    >>> stable_hash("m1") == stable_hash("m1"), stable_hash("m1") == stable_hash("m2")
    (True, False)
    """
    return int.from_bytes(
        hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big", signed=True
    )


class RecentSet:
    """Bounded set of hashed values with the event times each was first and last seen."""

    __slots__ = ("cap", "first", "hashes", "seen")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.hashes = array("q")
        self.seen = array("d")
        self.first = array("d")

    def __contains__(self, h: int) -> bool:
        return h in self.hashes

    def first_seen(self, h: int) -> float | None:
        """When ``h`` was first seen, or None if it is not in the set."""
        return self.first[self.hashes.index(h)] if h in self.hashes else None

    def touch(self, h: int, ts: float) -> bool:
        """Record ``h`` seen at ``ts``; True when it was not in the set."""
        hashes = self.hashes
        if h in hashes:
            i = hashes.index(h)
            self.seen[i] = max(self.seen[i], ts)
            self.first[i] = min(self.first[i], ts)
            return False
        if len(hashes) >= self.cap:
            oldest = self.seen.index(min(self.seen))
            del hashes[oldest]
            del self.seen[oldest]
            del self.first[oldest]
        hashes.append(h)
        self.seen.append(ts)
        self.first.append(ts)
        return True

    def count_since(self, t: float) -> int:
        return sum(1 for s in self.seen if s > t)

    def __getstate__(self) -> tuple[int, bytes, bytes, bytes]:
        return (self.cap, self.hashes.tobytes(), self.seen.tobytes(), self.first.tobytes())

    def __setstate__(self, st: tuple[int, bytes, bytes, bytes]) -> None:
        self.cap = st[0]
        self.hashes = _arr("q", st[1])
        self.seen = _arr("d", st[2])
        self.first = _arr("d", st[3])


# indices of the recent sets in UserState.sets
MERCHANT, COUNTRY, DEVICE, METHOD, CATEGORY = range(5)


class UserState:
    """Per-user history: window events, amount statistics, habits, last location."""

    __slots__ = (
        "ev_amt",
        "ev_id",
        "ev_ts",
        "geo",
        "hours",
        "last_ts",
        "m2",
        "mean",
        "n",
        "recent_amt",
        "sets",
    )

    def __init__(self, set_size: int) -> None:
        self.last_ts = float("-inf")  # newest event time seen (the user's watermark)
        self.ev_ts = array("d")  # event times, sorted
        self.ev_amt = array("d")  # amounts, aligned with ev_ts
        self.ev_id = array("q")  # transaction_id hashes, aligned with ev_ts
        self.n = 0  # Welford over log1p(amount)
        self.mean = 0.0
        self.m2 = 0.0
        self.recent_amt = array("d")  # last RECENT_AMOUNTS log amounts, oldest first
        self.hours = array("I", bytes(4 * 24))
        self.sets = tuple(RecentSet(set_size) for _ in range(5))
        self.geo: tuple[float, float, float] | None = None  # lat, lon, event time

    def insert_event(self, ts: float, amount: float, id_hash: int) -> None:
        """Insert keeping event-time order (out-of-order records land in place)."""
        if not self.ev_ts or ts >= self.ev_ts[-1]:
            self.ev_ts.append(ts)
            self.ev_amt.append(amount)
            self.ev_id.append(id_hash)
        else:
            i = bisect_right(self.ev_ts, ts)
            self.ev_ts.insert(i, ts)
            self.ev_amt.insert(i, amount)
            self.ev_id.insert(i, id_hash)

    def prune(self, horizon: float, cap: int) -> None:
        """Drop events older than ``horizon`` and keep at most ``cap`` newest."""
        cut = bisect_right(self.ev_ts, horizon)
        cut = max(cut, len(self.ev_ts) - cap)
        if cut > 0:
            del self.ev_ts[:cut]
            del self.ev_amt[:cut]
            del self.ev_id[:cut]

    def add_amount(self, log_amt: float, keep: int) -> None:
        """Welford update and the recent-amounts ring used by the IQR detector."""
        self.n += 1
        delta = log_amt - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (log_amt - self.mean)
        ra = self.recent_amt
        if len(ra) >= keep:
            del ra[0]
        ra.append(log_amt)

    def sorted_recent(self) -> list[float]:
        out: list[float] = []
        for x in self.recent_amt:
            insort(out, x)
        return out

    def __getstate__(self) -> tuple[object, ...]:
        return (
            self.last_ts,
            self.ev_ts.tobytes(),
            self.ev_amt.tobytes(),
            self.ev_id.tobytes(),
            self.n,
            self.mean,
            self.m2,
            self.recent_amt.tobytes(),
            self.hours.tobytes(),
            self.sets,
            self.geo,
        )

    def __setstate__(self, st: tuple[object, ...]) -> None:
        (self.last_ts, ev_ts, ev_amt, ev_id, self.n, self.mean, self.m2, ra, hours, sets, geo) = st  # type: ignore[assignment]
        self.ev_ts = _arr("d", ev_ts)
        self.ev_amt = _arr("d", ev_amt)
        self.ev_id = _arr("q", ev_id)
        self.recent_amt = _arr("d", ra)
        self.hours = _arr("I", hours)
        self.sets = sets  # type: ignore[assignment]
        self.geo = geo  # type: ignore[assignment]


def _arr(code: str, data: object) -> array:  # type: ignore[type-arg]
    a = array(code)
    a.frombytes(data)  # type: ignore[arg-type]
    return a

"""What the feature step remembers about one user, in compact arrays.

Everything is bounded: events are kept for the longest window and at most
``max_events_per_user`` of them; transaction ids for the duplicate check
are kept for the duplicate horizon and at most ``MAX_IDS`` of them; the recent
merchants/countries/devices/methods/categories keep ``recent_set_size``
entries per kind, evicting the least recently seen. Strings are kept as
hashes.
The whole object pickles to a few hundred bytes to a few KB.
"""

from __future__ import annotations

import hashlib
import zlib
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


class Habits:
    """The user's recent merchants, countries, devices, methods and categories.

    One structure for all five kinds (three arrays instead of fifteen: the
    array headers were most of a user's memory). An entry's key is a 32-bit
    hash of the value with the kind in its low 3 bits; each kind holds at most
    ``cap`` entries, evicting the one least recently seen.
    """

    __slots__ = ("cap", "first", "keys", "seen")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.keys = array("q")
        self.seen = array("d")  # event time last seen
        self.first = array("d")  # event time first seen

    @staticmethod
    def key(kind: int, value: str) -> int:
        """The entry key of ``value`` of ``kind``.

        >>> Habits.key(2, "d1") & 7, Habits.key(2, "d1") == Habits.key(3, "d1")
        (2, False)
        """
        return (zlib.crc32(value.encode("utf-8")) << 3) | kind

    def __contains__(self, key: int) -> bool:
        return key in self.keys

    def first_seen(self, key: int) -> float | None:
        """When the value was first seen, or None if it is not remembered."""
        return self.first[self.keys.index(key)] if key in self.keys else None

    def touch(self, key: int, ts: float) -> bool:
        """Record the value seen at ``ts``; True when it was not remembered."""
        keys = self.keys
        if key in keys:
            i = keys.index(key)
            self.seen[i] = max(self.seen[i], ts)
            self.first[i] = min(self.first[i], ts)
            return False
        kind = key & 7
        same = [i for i, k in enumerate(keys) if k & 7 == kind]
        if len(same) >= self.cap:
            oldest = min(same, key=self.seen.__getitem__)
            del keys[oldest], self.seen[oldest], self.first[oldest]
        keys.append(key)
        self.seen.append(ts)
        self.first.append(ts)
        return True

    def count_since(self, kind: int, t: float) -> int:
        """Distinct values of ``kind`` seen after ``t``."""
        return sum(1 for k, s in zip(self.keys, self.seen, strict=True) if k & 7 == kind and s > t)

    def count(self, kind: int) -> int:
        return sum(1 for k in self.keys if k & 7 == kind)

    def __getstate__(self) -> tuple[int, bytes, bytes, bytes]:
        return (self.cap, self.keys.tobytes(), self.seen.tobytes(), self.first.tobytes())

    def __setstate__(self, st: tuple[int, bytes, bytes, bytes]) -> None:
        self.cap = st[0]
        self.keys = _arr("q", st[1])
        self.seen = _arr("d", st[2])
        self.first = _arr("d", st[3])


# the kinds of Habits entries
MERCHANT, COUNTRY, DEVICE, METHOD, CATEGORY = range(5)

# ids a user's duplicate horizon holds at most (16 bytes each: 256 KiB), oldest dropped first
MAX_IDS = 16384


class UserState:
    """Per-user history: window events, amount statistics, habits, last location."""

    __slots__ = (
        "ev_amt",
        "ev_ts",
        "fast_trips",
        "geo",
        "habits",
        "hours",
        "id_at",
        "ids",
        "last_ts",
        "m2",
        "mean",
        "n",
        "recent_amt",
    )

    def __init__(self, set_size: int) -> None:
        self.last_ts = float("-inf")  # newest event time seen (the user's watermark)
        self.ev_ts = array("d")  # event times, sorted
        self.ev_amt = array("d")  # amounts, aligned with ev_ts
        # transaction_id hashes seen (scored, late, ahead or duplicate), for the
        # duplicate horizon, with when each was seen in the user's event time
        # (non-decreasing, so the oldest are at the front)
        self.ids = array("q")
        self.id_at = array("d")
        self.n = 0  # Welford over log1p(amount)
        self.mean = 0.0
        self.m2 = 0.0
        self.recent_amt = array("d")  # last RECENT_AMOUNTS log amounts, oldest first
        self.hours = array("I", bytes(4 * 24))
        self.habits = Habits(set_size)
        self.geo: tuple[float, float, float] | None = None  # lat, lon, event time
        # transactions whose implied travel was faster than trusted (a travel habit)
        self.fast_trips = 0

    def insert_event(self, ts: float, amount: float) -> None:
        """Insert keeping event-time order (out-of-order records land in place)."""
        if not self.ev_ts or ts >= self.ev_ts[-1]:
            self.ev_ts.append(ts)
            self.ev_amt.append(amount)
        else:
            i = bisect_right(self.ev_ts, ts)
            self.ev_ts.insert(i, ts)
            self.ev_amt.insert(i, amount)

    def prune(self, horizon: float, cap: int) -> None:
        """Drop events older than ``horizon`` and keep at most ``cap`` newest."""
        cut = bisect_right(self.ev_ts, horizon)
        cut = max(cut, len(self.ev_ts) - cap)
        if cut > 0:
            del self.ev_ts[:cut]
            del self.ev_amt[:cut]

    def remember_id(self, id_hash: int, at: float) -> None:
        """Remember a transaction id seen at user time ``at`` (kept non-decreasing)."""
        if self.id_at and at < self.id_at[-1]:
            at = self.id_at[-1]
        self.ids.append(id_hash)
        self.id_at.append(at)

    def forget_ids(self, before: float, cap: int = MAX_IDS) -> None:
        """Forget ids seen before ``before`` and keep at most ``cap`` newest."""
        cut = max(bisect_right(self.id_at, before), len(self.ids) - cap)
        if cut > 0:
            del self.ids[:cut]
            del self.id_at[:cut]

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
            self.ids.tobytes(),
            self.n,
            self.mean,
            self.m2,
            self.recent_amt.tobytes(),
            self.hours.tobytes(),
            self.habits,
            self.geo,
            self.id_at.tobytes(),
            self.fast_trips,
        )

    def __setstate__(self, st: tuple[object, ...]) -> None:
        head = st[:11]
        (self.last_ts, ev_ts, ev_amt, ids, self.n, self.mean, self.m2, ra, hours, habits, geo) = (
            head  # type: ignore[assignment]
        )
        self.ev_ts = _arr("d", ev_ts)
        self.ev_amt = _arr("d", ev_amt)
        self.ids = _arr("q", ids)
        # a snapshot from before the time horizon kept ids aligned with ev_ts
        self.id_at = _arr("d", st[11]) if len(st) > 11 else _arr("d", ev_ts)
        self.recent_amt = _arr("d", ra)
        self.hours = _arr("I", hours)
        self.habits = habits  # type: ignore[assignment]
        self.geo = geo  # type: ignore[assignment]
        self.fast_trips = st[12] if len(st) > 12 else 0  # type: ignore[assignment]


def _arr(code: str, data: object) -> array:  # type: ignore[type-arg]
    a = array(code)
    a.frombytes(data)  # type: ignore[arg-type]
    return a

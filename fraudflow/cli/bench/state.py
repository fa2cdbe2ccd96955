"""``fraudflow bench`` section state: bytes per user and snapshot cost (run in a child process)."""

from __future__ import annotations

import gc
import math
import pickle
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fraudflow.config.settings import load_settings
from fraudflow.observability.measure import (
    proc_status_kb,
    rate,
)
from fraudflow.operators.features.user import FeatureParams, user_step
from fraudflow.records import Transaction
from fraudflow.state.shard import ShardState

_CATEGORIES = (
    "grocery",
    "restaurant",
    "fuel",
    "online_retail",
    "travel",
    "electronics",
    "pharmacy",
)


_COUNTRIES = ("DE", "FR", "GB", "US", "NL", "ES", "IT", "PL")


def synthetic_user(
    uid: str, n: int, rng: random.Random, t0: float, span: float
) -> Iterator[Transaction]:
    """``n`` plausible transactions of one user within ``span`` seconds, in time order."""
    favourites = [f"m{rng.randrange(50_000)}" for _ in range(8)]
    device = f"d{rng.randrange(10**9)}"
    home = _COUNTRIES[rng.randrange(len(_COUNTRIES))]
    lat, lon = rng.uniform(40, 55), rng.uniform(-5, 20)
    level = rng.uniform(2.5, 5.0)
    times = sorted(t0 + rng.random() * span for _ in range(n))
    for k, ts in enumerate(times):
        new_merchant = rng.random() < 0.15
        yield Transaction(
            transaction_id=f"{uid}-{k}",
            user_id=uid,
            amount=round(math.exp(rng.gauss(level, 0.6)), 2),
            ts=ts,
            currency="EUR",
            merchant_id=f"m{rng.randrange(50_000)}" if new_merchant else rng.choice(favourites),
            merchant_category=rng.choice(_CATEGORIES),
            country=home if rng.random() < 0.95 else rng.choice(_COUNTRIES),
            payment_method="card" if rng.random() < 0.9 else "wallet",
            device_id=device if rng.random() < 0.97 else f"d{rng.randrange(10**9)}",
            channel="pos",
            lat=lat + rng.gauss(0, 0.02),
            lon=lon + rng.gauss(0, 0.02),
            topic="bench",
            partition=0,
            offset=k,
        )


def measure_state(users: int, txns: int, span: float, seed: int) -> dict[str, Any]:
    """Build one shard's state for ``users`` users with the real ``user_step``.

    Run in a fresh process: RSS growth / users is the in-memory cost per user
    (the ``UserState``, its user-id key and the shard's last-seen entry);
    the pickled shard is what a snapshot writes.
    """
    settings = load_settings()
    fp = FeatureParams.from_settings(settings.features, settings.validation)
    rng = random.Random(seed)  # noqa: S311 - synthetic data
    t0 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    shard = ShardState()
    st_users, seen = shard.users, shard.seen
    gc.collect()
    rss0 = proc_status_kb("VmRSS")
    started = time.perf_counter()
    events = 0
    for u in range(users):
        uid = f"user-{u:08d}"
        state = None
        for txn in synthetic_user(uid, txns, rng, t0, span):
            state, _row = user_step(state, txn, fp)
            events += 1
        assert state is not None
        st_users[uid] = state
        seen[uid] = t0
    build_s = time.perf_counter() - started
    gc.collect()
    rss1 = proc_status_kb("VmRSS")
    kept = sum(len(s.ev_ts) for s in st_users.values()) / max(users, 1)
    merchants = sum(s.habits.count(0) for s in st_users.values()) / max(users, 1)
    sample = st_users[f"user-{users // 2:08d}"]
    t = time.perf_counter()
    blob = pickle.dumps(shard, pickle.HIGHEST_PROTOCOL)
    pickle_s = time.perf_counter() - t
    size = len(blob)
    del blob
    return {
        "users": users,
        "txns_per_user": txns,
        "span_h": round(span / 3600, 1),
        "events_kept_per_user": round(kept, 1),
        "merchants_kept_per_user": round(merchants, 1),
        "rss_bytes_per_user": round((rss1 - rss0) * 1024 / max(users, 1)),
        "pickled_bytes_per_user": round(size / max(users, 1)),
        "pickled_mb": round(size / 1e6, 1),
        "pickle_s": round(pickle_s, 3),
        "peak_rss_mb": round(proc_status_kb("VmHWM") / 1024),
        "user_steps_per_s": round(rate(events, build_s)),
        "one_user_bytes": state_breakdown(sample, f"user-{users // 2:08d}"),
    }


def state_breakdown(state: Any, uid: str) -> dict[str, int]:
    """Where one user's bytes go (``sys.getsizeof`` of each object it owns).

    The dict entries (``users`` and ``seen``) and allocator overhead are not
    included; RSS growth per user includes them.
    """
    size = sys.getsizeof
    arrays = sum(size(getattr(state, a)) for a in ("ev_ts", "ev_amt", "ids", "id_at", "recent_amt"))
    h = state.habits
    sets = size(h) + size(h.keys) + size(h.seen) + size(h.first)
    geo = 0 if state.geo is None else size(state.geo) + sum(size(x) for x in state.geo)
    floats = sum(size(getattr(state, a)) for a in ("last_ts", "mean", "m2"))
    parts = {
        "object": size(state),
        "event_and_amount_arrays": arrays,
        "hours": size(state.hours),
        "recent_sets": sets,
        "geo": geo,
        "scalars": floats + size(state.n),
        "user_id_key": size(uid),
        "seen_time": size(0.0),
    }
    parts["total"] = sum(parts.values())
    return parts

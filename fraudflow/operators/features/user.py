"""Per-user features in event time (the amount statistics the z-score / IQR detectors read).

``user_step`` is a function of (state, transaction): it returns the new
state and either the feature row or a dead letter (duplicate). It mutates
and returns the state it was given, which the keyed step owns.

Event-time policy (docs/event-time.md):
- a record no older than the user's newest event time minus
  ``allowed_lateness`` is inserted in event-time order; its window features
  count the events at or before its own time;
- an older record is *late*: it is scored against the current state, flagged
  ``late`` (a feature rules can use, counted in metrics) and not learned from;
- a record more than ``max_event_ahead`` ahead of the flow's clock is scored
  and learned from as usual, but moves the user's clock (the newest event
  time, against which lateness is judged) only up to the flow's clock, so it
  cannot make the user's later real-time records late;
- a transaction id seen again for the user within ``duplicate_horizon`` of the
  user's event time is a duplicate (ids of late, ahead and duplicate records
  are remembered too);
- a gap longer than ``idle_ttl`` in event time starts the user afresh, the
  same as wall-clock expiry does in a live flow.

Arithmetic stays finite for every finite amount (sums saturate at the
largest float instead of overflowing), so one extreme value cannot crash
the step.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from fraudflow.config.settings import FeatureSettings, ValidationSettings
from fraudflow.operators.features.catalogue import window_label
from fraudflow.records import DeadLetter, FeatureRow, Transaction
from fraudflow.state.user import (
    CATEGORY,
    COUNTRY,
    DEVICE,
    MERCHANT,
    METHOD,
    Habits,
    UserState,
    stable_hash,
)

RECENT_AMOUNTS = 32  # log amounts kept for the IQR detector
MIN_STD = 0.3  # floor of the log-amount standard deviation (a user always paying 9.99)
MIN_IQR = 0.25
NO_PREV = 1e9
UNUSUAL_HOUR_SHARE = 0.03
DAY = 86400.0
EARTH_KM = 6371.0088
MAX_FLOAT = sys.float_info.max
MAX_LOG = math.log1p(MAX_FLOAT)  # expm1 of anything above overflows


@dataclass(frozen=True)
class FeatureParams:
    """Settings the feature step needs, pre-computed once."""

    windows: tuple[tuple[str, str, float], ...]  # (count name, sum name, seconds)
    retention: float
    horizon: float  # duplicate horizon
    ahead: float  # max_event_ahead
    lateness: float
    idle: float
    max_events: int
    set_size: int
    warmup: int
    trusted_kmh: float

    @classmethod
    def from_settings(cls, f: FeatureSettings, v: ValidationSettings) -> FeatureParams:
        ws = tuple(
            (f"count_{window_label(w)}", f"sum_{window_label(w)}", w.total_seconds())
            for w in f.windows
        )
        retention = max([w for _, _, w in ws] + [DAY])
        return cls(
            windows=ws,
            retention=retention,
            horizon=v.duplicate_horizon.total_seconds(),
            ahead=f.max_event_ahead.total_seconds(),
            lateness=f.allowed_lateness.total_seconds(),
            idle=f.idle_ttl.total_seconds(),
            max_events=f.max_events_per_user,
            set_size=f.recent_set_size,
            warmup=f.zscore_warmup,
            trusted_kmh=f.trusted_travel_kmh,
        )


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance.

    >>> round(haversine_km(52.52, 13.405, 48.8566, 2.3522))  # Berlin - Paris
    877
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def window_sum(amounts: Any, amount: float) -> float:
    """``fsum(amounts) + amount``, saturating at the largest float instead of overflowing.

    >>> window_sum([1e308, 1e308], 1e308) == MAX_FLOAT, window_sum([0.1, 0.2], 0.3)
    (True, 0.6000000000000001)
    """
    try:
        total = math.fsum(amounts) + amount
    except OverflowError:  # amounts are >= 0: the exact sum is above the largest float
        return MAX_FLOAT
    return total if total <= MAX_FLOAT else MAX_FLOAT


def _quantile(sorted_xs: list[float], q: float) -> float:
    pos = q * (len(sorted_xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def _age_hours(habits: Habits, key: int | None, t: float) -> float:
    """Hours since the user first used this device/country; 0 when new or absent."""
    if key is None:
        return 0.0
    first = habits.first_seen(key)
    return 0.0 if first is None else max(0.0, (t - first) / 3600.0)


def hour_of(ts: float) -> int:
    return int(ts // 3600) % 24


def user_step(
    state: UserState | None, txn: Transaction, p: FeatureParams, now: float | None = None
) -> tuple[UserState, FeatureRow | DeadLetter]:
    """Compute the features of ``txn`` from the user's history, then learn from it.

    ``now`` is the flow's clock (docs/event-time.md): a record more than
    ``p.ahead`` after it moves the user's clock only to ``now``. None: no
    clock (pure tests and benchmarks).
    """
    t = txn.ts
    # the event time this record may move the user's clock to
    clock_t = t if now is None or t <= now + p.ahead else now
    if state is None or clock_t - state.last_ts > p.idle:
        state = UserState(p.set_size)
    id_hash = stable_hash(txn.transaction_id)
    seen_at = clock_t  # (remember_id keeps these non-decreasing)
    if id_hash in state.ids:
        state.remember_id(id_hash, seen_at)
        return state, DeadLetter(
            code="duplicate",
            message="transaction_id was already seen for this user within the duplicate horizon",
            value=txn.raw,
            key=txn.user_id.encode("utf-8"),
            topic=txn.topic,
            partition=txn.partition,
            offset=txn.offset,
            dead_at=t,
            step="features",
        )
    state.remember_id(id_hash, seen_at)
    late = t < state.last_ts - p.lateness
    amount = txn.amount
    log_amt = math.log1p(amount)
    n = state.n

    # windows over the events at or before t, this one included
    ev_ts, ev_amt = state.ev_ts, state.ev_amt
    hi = bisect_right(ev_ts, t)
    f: dict[str, Any] = {}
    for count_name, sum_name, w in p.windows:
        lo = bisect_right(ev_ts, t - w, 0, hi)
        f[count_name] = hi - lo + 1
        f[sum_name] = window_sum(ev_amt[lo:hi], amount)
    secs_since_prev = t - ev_ts[hi - 1] if hi > 0 else NO_PREV

    # per-user amount detectors, against the history before this record
    if n >= p.warmup:
        std = max(math.sqrt(state.m2 / (n - 1)), MIN_STD)
        amount_z = (log_amt - state.mean) / std
        rs = state.sorted_recent()
        q1, q3 = _quantile(rs, 0.25), _quantile(rs, 0.75)
        iqr_excess = (log_amt - q3) / max(q3 - q1, MIN_IQR)
    else:
        amount_z = iqr_excess = 0.0

    # habits: first use of a merchant / country / device / method / category
    values = (
        txn.merchant_id,
        txn.country,
        txn.device_id,
        txn.payment_method,
        txn.merchant_category,
    )
    keys = [Habits.key(kind, v) if v else None for kind, v in enumerate(values)]
    habits = state.habits
    if late:
        new = [k is not None and n > 0 and k not in habits for k in keys]
    else:
        new = [k is not None and habits.touch(k, t) and n > 0 for k in keys]
    device_age_h = _age_hours(habits, keys[DEVICE], t)
    country_age_h = _age_hours(habits, keys[COUNTRY], t)
    day_ago = t - DAY
    distinct_m = habits.count_since(MERCHANT, day_ago) + (1 if late and new[MERCHANT] else 0)
    distinct_c = habits.count_since(COUNTRY, day_ago) + (1 if late and new[COUNTRY] else 0)

    hour = hour_of(t)
    hours = state.hours
    if n >= p.warmup:
        hour_share = (hours[hour] + 0.5 * (hours[hour - 1] + hours[(hour + 1) % 24])) / (2.0 * n)
    else:
        hour_share = 1.0

    travel_kmh = 0.0
    trusted_geo = True
    if txn.lat is not None and txn.lon is not None and state.geo is not None:
        glat, glon, gts = state.geo
        km = haversine_km(glat, glon, txn.lat, txn.lon)
        travel_kmh = km / max(abs(t - gts), 60.0) * 3600.0
    trusted_geo = travel_kmh <= p.trusted_kmh
    fast_trips = state.fast_trips  # before this one

    f.update(
        transaction_id=txn.transaction_id,
        user_id=txn.user_id,
        amount=amount,
        currency=txn.currency,
        merchant_id=txn.merchant_id or "",
        merchant_category=txn.merchant_category or "",
        country=txn.country or "",
        payment_method=txn.payment_method or "",
        device_id=txn.device_id or "",
        channel=txn.channel or "",
        ip=txn.ip or "",
        hour=hour,
        txn_count=n,
        secs_since_prev=secs_since_prev,
        amount_mean=min(math.expm1(min(state.mean, MAX_LOG)), MAX_FLOAT) if n else 0.0,
        amount_z=amount_z,
        amount_iqr_excess=iqr_excess,
        new_merchant=new[MERCHANT],
        new_country=new[COUNTRY],
        new_device=new[DEVICE],
        new_payment_method=new[METHOD],
        new_category=new[CATEGORY],
        device_age_h=device_age_h,
        country_age_h=country_age_h,
        hour_share=hour_share,
        unusual_hour=n >= p.warmup and hour_share < UNUSUAL_HOUR_SHARE,
        travel_kmh=travel_kmh,
        fast_trips_before=fast_trips,
        distinct_merchants_24h=distinct_m,
        distinct_countries_24h=distinct_c,
        late=late,
    )

    if not late:
        state.insert_event(t, amount)
        state.last_ts = max(state.last_ts, clock_t)
        state.prune(state.last_ts - p.retention, p.max_events)
        state.add_amount(log_amt, RECENT_AMOUNTS)
        hours[hour] += 1
        if not trusted_geo:
            state.fast_trips += 1
        # a location that implies impossible travel is not trusted as the user's
        # last one, so one spoofed or stolen-card location does not make the
        # user's next ordinary transaction look impossible too
        if (
            txn.lat is not None
            and txn.lon is not None
            and trusted_geo
            and (state.geo is None or t >= state.geo[2])
        ):
            state.geo = (txn.lat, txn.lon, t)
    state.forget_ids(state.last_ts - p.horizon)
    return state, FeatureRow(txn, f)

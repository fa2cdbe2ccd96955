"""The ``sparse`` world: a second, independent synthetic population with only five fields.

Records carry ``transaction_id``, ``user_id``, ``amount``, ``timestamp`` and
``merchant_id`` (plus the ground truth ``_label`` 0|1 and ``_scenario``, which
the flow ignores), nothing else: no device, place, category or channel. It is
written apart from :mod:`fraudflow.generator` (the ``retail`` world) and shares
only its record format, so that detection tuned on one world can be measured
on another.

The population lives on a latent square map, :data:`MAP_KM` a side. Merchants
have a place, a popularity (log-normal) and a typical price level
(log-normal, median :data:`PRICE_MEDIAN`). Each customer has a place, a rate
of their own (log-normal, median :data:`RATE_MEDIAN` a day), a daily rhythm
(a peak hour and a spread, activity never quite zero), a weekend factor, an
amount habit (a spending multiplier and their own log-spread, heavy-tailed
in between) and a shop list: their :data:`NEAREST` nearest merchants, chosen
by popularity times ``exp(-distance / REACH_KM)``. A purchase costs the
merchant's price level times the customer's multiplier times
``exp(spread * Z)``, with ``Z`` Student-t (3 degrees of freedom, so some
purchases are much larger than usual without being fraud).

Fraud, in three mechanics (scenarios), only once a card has
:data:`MIN_HISTORY` purchases:

- ``compromised_merchant``: a global Poisson process starts merchant
  compromises (picked by popularity); for :data:`COMPROMISE_DAYS` days each
  purchase at the merchant is followed, with chance :data:`COMPROMISE_FRAUD_P`,
  by a fraudulent charge there within hours on the card of another of its
  customers (a customer who has it on their shop list), at an amount drawn
  from that card's own habit at that merchant: ordinary for the card, visible
  only as a concentration at the merchant. Every genuine purchase there in the
  window is skimmed with chance :data:`SKIM_P`; a skimmed card later shifts.
- ``card_shift``: a compromised card (at random, or skimmed) is used by a
  fraudster for :data:`SHIFT_DAYS` days, starting :data:`SHIFT_DELAY_DAYS`
  later, alongside its owner: a higher rate (:data:`SHIFT_RATE_MIN` a day
  at least, any hour), merchants off the card's shop list, amounts
  :data:`SHIFT_FACTOR` times the card's median.
- ``large_amount``: single charges of :data:`LARGE_FACTOR` times the card's
  median (and at least :data:`LARGE_MIN`), at any merchant.

Every process runs at the default intensity for ``anomaly_rate`` 0.01 and is
scaled by ``anomaly_rate / 0.01`` (per customer, so the share does not depend
on the population size); about 0.5-1.5% of records are fraud at the default.

Streaming: one heap of pending events (one per customer plus the open fraud
episodes), memory in the population, not in ``count``; event times never
decrease. Deterministic for a seed (one private ``random.Random``).

>>> recs = list(generate(3, users=5, seed=1))
>>> [r["transaction_id"] for r in recs]
['s1-000000000', 's1-000000001', 's1-000000002']
>>> sorted(recs[0])
['_label', '_scenario', 'amount', 'merchant_id', 'timestamp', 'transaction_id', 'user_id']
>>> recs == list(generate(3, users=5, seed=1))
True
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

from fraudflow.records import iso

NAME = "sparse"
FIELDS = ("transaction_id", "user_id", "amount", "timestamp", "merchant_id")
SCENARIOS = ("compromised_merchant", "card_shift", "large_amount")
DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
DAY = 86400.0

MAP_KM = 60.0
MERCHANTS_PER_USER = 0.25  # merchants per customer (at least 40)
PRICE_MEDIAN = 28.0
PRICE_SIGMA = 0.8
POPULARITY_SIGMA = 1.0
NEAREST = 25  # merchants on a customer's shop list
REACH_KM = 4.0
RATE_MEDIAN = 3.5  # purchases a day
RATE_SIGMA = 0.7
RATE_MAX = 40.0
MIN_HISTORY = 10

# fraud intensities at anomaly_rate 0.01, per 1,000 customers and day
MERCHANT_COMPROMISES = 0.4
CARD_COMPROMISES = 0.5
LARGE_FRAUDS = 3.0
COMPROMISE_DAYS = (3.0, 8.0)
COMPROMISE_FRAUD_P = 0.35
COMPROMISE_DELAY_H = (0.05, 6.0)
SKIM_P = 0.004
SHIFT_DELAY_DAYS = (0.5, 6.0)
SHIFT_DAYS = (1.0, 4.0)
SHIFT_RATE_MIN = 4.0  # a day
SHIFT_RATE_X = 2.5  # times the card's own rate, if higher
SHIFT_FACTOR = (3.0, 12.0)
LARGE_FACTOR = (15.0, 60.0)
LARGE_MIN = 400.0

# event kinds in the heap
_BUY, _SHIFT, _CM, _NEW_CM, _NEW_CARD, _LARGE = range(6)


@dataclass(slots=True)
class _Merchant:
    merchant_id: str
    x: float
    y: float
    price: float
    popularity: float
    customers: list[int] = field(default_factory=list)  # users with it on their shop list
    compromised_until: float = -math.inf


@dataclass(slots=True)
class _User:
    user_id: str
    rate: float  # purchases a day
    hourly: list[float]  # relative intensity per UTC hour (mean 1 over a week with `weekend`)
    weekend: float
    peak: float  # max of hourly x max(1, weekend): the thinning bound
    spend: float  # amount multiplier
    spread: float  # log-spread of amounts
    shops: list[int]  # merchant indexes
    shop_cum: list[float]  # cumulative choice weights
    count: int = 0
    shift_until: float = -math.inf
    shift_rate: float = 0.0


def _draw(cum: list[float], r: float) -> int:
    """The index that ``r`` in [0, 1) picks from cumulative weights ``cum``."""
    return min(bisect_right(cum, r * cum[-1]), len(cum) - 1)


def _cents(x: float) -> float:
    return max(0.01, round(x, 2))


class _World:
    def __init__(self, users: int, seed: int, anomaly_rate: float, start: datetime) -> None:
        if users < 1:
            raise ValueError(f"users must be >= 1, got {users}")
        if not 0 <= anomaly_rate <= 0.5:
            raise ValueError(f"anomaly_rate must be within [0, 0.5], got {anomaly_rate}")
        self.rng = rng = random.Random(f"sparse-{seed}")  # noqa: S311 - a simulation
        self.seed = seed
        self.t0 = start.timestamp()
        n_merchants = max(40, round(users * MERCHANTS_PER_USER))
        self.merchants = [
            _Merchant(
                f"sm{i:05d}",
                rng.uniform(0, MAP_KM),
                rng.uniform(0, MAP_KM),
                PRICE_MEDIAN * rng.lognormvariate(0, PRICE_SIGMA),
                rng.lognormvariate(0, POPULARITY_SIGMA),
            )
            for i in range(n_merchants)
        ]
        self.pop_cum = list(accumulate(m.popularity for m in self.merchants))
        self.users = [self._user(i) for i in range(users)]
        scale = anomaly_rate / 0.01 * users / 1000.0 / DAY  # events per second
        self.intensity = {
            _NEW_CM: MERCHANT_COMPROMISES * scale,
            _NEW_CARD: CARD_COMPROMISES * scale,
            _LARGE: LARGE_FRAUDS * scale,
        }
        self.fraud_scale = anomaly_rate / 0.01
        self.heap: list[tuple[float, int, int, int, int, float]] = []
        self.seq = 0
        for i, u in enumerate(self.users):
            self._push(self._next_buy(u, self.t0), _BUY, i)
        for kind, lam in self.intensity.items():
            if lam > 0:
                self._push(self.t0 + rng.expovariate(lam), kind, -1)

    def _user(self, i: int) -> _User:
        rng = self.rng
        x, y = rng.uniform(0, MAP_KM), rng.uniform(0, MAP_KM)
        near = sorted(
            range(len(self.merchants)),
            key=lambda j: (self.merchants[j].x - x) ** 2 + (self.merchants[j].y - y) ** 2,
        )[:NEAREST]
        weights = [
            self.merchants[j].popularity
            * math.exp(-math.hypot(self.merchants[j].x - x, self.merchants[j].y - y) / REACH_KM)
            for j in near
        ]
        for j in near:
            self.merchants[j].customers.append(i)
        centre, width = rng.uniform(8.0, 21.0), rng.uniform(1.5, 5.0)
        floor = rng.uniform(0.02, 0.15)
        raw = [
            floor
            + math.exp(
                -(min(abs(h + 0.5 - centre), 24 - abs(h + 0.5 - centre)) ** 2) / 2 / width**2
            )
            for h in range(24)
        ]
        weekend = rng.uniform(0.5, 1.8)
        mean = sum(raw) / 24 * (5 + 2 * weekend) / 7
        hourly = [r / mean for r in raw]
        return _User(
            user_id=f"c{i:06d}",
            rate=min(RATE_MAX, RATE_MEDIAN * rng.lognormvariate(0, RATE_SIGMA)),
            hourly=hourly,
            weekend=weekend,
            peak=max(hourly) * max(1.0, weekend),
            spend=rng.lognormvariate(0, 0.5),
            spread=rng.uniform(0.2, 0.8),
            shops=near,
            shop_cum=list(accumulate(weights)),
        )

    # --- scheduling ---------------------------------------------------------

    def _push(
        self, t: float, kind: int, user: int, merchant: int = -1, amount: float = 0.0
    ) -> None:
        heapq.heappush(self.heap, (t, self.seq, kind, user, merchant, amount))
        self.seq += 1

    def _intensity(self, u: _User, t: float) -> float:
        """The customer's relative intensity at ``t`` (the day and week cycles)."""
        day, sec = divmod(t, DAY)
        hour = int(sec // 3600)
        weekday = (int(day) + 3) % 7  # 1970-01-01 was a Thursday: 5, 6 = Saturday, Sunday
        return u.hourly[hour] * (u.weekend if weekday >= 5 else 1.0)

    def _next_buy(self, u: _User, t: float) -> float:
        """The next purchase after ``t``, by thinning a Poisson process at the peak rate."""
        rng = self.rng
        lam = u.rate * u.peak / DAY
        while True:
            t += rng.expovariate(lam)
            if rng.random() * u.peak <= self._intensity(u, t):
                return t

    # --- amounts and merchants ----------------------------------------------

    def _habit_amount(self, u: _User, m: _Merchant) -> float:
        z = self.rng.gauss(0, 1) / math.sqrt(self.rng.gammavariate(1.5, 2.0) / 3.0)
        return m.price * u.spend * math.exp(u.spread * max(-4.0, min(4.0, z)))

    def _median(self, u: _User) -> float:
        """The card's typical amount: the spend-weighted price level of its shop list."""
        w = u.shop_cum[-1]
        prev = 0.0
        log_sum = 0.0
        for j, c in zip(u.shops, u.shop_cum, strict=True):
            log_sum += (c - prev) / w * math.log(self.merchants[j].price)
            prev = c
        return math.exp(log_sum) * u.spend

    def _shop(self, u: _User) -> int:
        return u.shops[_draw(u.shop_cum, self.rng.random())]

    def _far_merchant(self, u: _User) -> int:
        own = set(u.shops)
        for _ in range(50):
            j = _draw(self.pop_cum, self.rng.random())
            if j not in own:
                return j
        return next(j for j in range(len(self.merchants)) if j not in own)

    def _victim(self, exclude: int = -1) -> int | None:
        for _ in range(20):
            i = self.rng.randrange(len(self.users))
            if i != exclude and self.users[i].count >= MIN_HISTORY:
                return i
        return None

    def _compromise(self, i: int, t: float) -> None:
        """Card ``i`` is stolen at ``t``: a fraudster starts using it after a delay."""
        u, rng = self.users[i], self.rng
        begin = t + rng.uniform(*SHIFT_DELAY_DAYS) * DAY
        if u.shift_until > t:  # already in fraudsters' hands
            return
        u.shift_until = begin + rng.uniform(*SHIFT_DAYS) * DAY
        u.shift_rate = max(SHIFT_RATE_MIN, SHIFT_RATE_X * u.rate) / DAY
        self._push(begin + rng.expovariate(u.shift_rate), _SHIFT, i)

    # --- the run ------------------------------------------------------------

    def _record(
        self, t: float, u: _User, m: _Merchant, amount: float, scenario: str
    ) -> dict[str, Any]:
        return {
            "transaction_id": "",
            "user_id": u.user_id,
            "amount": _cents(amount),
            "timestamp": iso(t),
            "merchant_id": m.merchant_id,
            "_label": 0 if scenario == "normal" else 1,
            "_scenario": scenario,
        }

    def _step(self) -> dict[str, Any] | None:
        """Handle the next event; the record it makes, if any."""
        t, _seq, kind, i, j, amount = heapq.heappop(self.heap)
        rng = self.rng
        if kind in self.intensity:  # a global process: schedule its next event first
            self._push(t + rng.expovariate(self.intensity[kind]), kind, -1)
        if kind == _BUY:
            u = self.users[i]
            self._push(self._next_buy(u, t), _BUY, i)
            j = self._shop(u)
            m = self.merchants[j]
            u.count += 1
            if m.compromised_until > t:
                if rng.random() < COMPROMISE_FRAUD_P and len(m.customers) > 1:
                    v = self._victim_at(m, i)
                    if v is not None:
                        delay = rng.uniform(*COMPROMISE_DELAY_H) * 3600
                        self._push(t + delay, _CM, v, j, self._habit_amount(self.users[v], m))
                if rng.random() < SKIM_P * self.fraud_scale and u.count > MIN_HISTORY:
                    self._compromise(i, t)
            return self._record(t, u, m, self._habit_amount(u, m), "normal")
        if kind == _CM:
            return self._record(t, self.users[i], self.merchants[j], amount, "compromised_merchant")
        if kind == _SHIFT:
            u = self.users[i]
            if t > u.shift_until:
                return None
            self._push(t + rng.expovariate(u.shift_rate), _SHIFT, i)
            factor = rng.uniform(*SHIFT_FACTOR)
            amount = self._median(u) * factor * math.exp(rng.gauss(0, 0.2))
            return self._record(t, u, self.merchants[self._far_merchant(u)], amount, "card_shift")
        if kind == _NEW_CM:
            m = self.merchants[_draw(self.pop_cum, rng.random())]
            if m.compromised_until < t:
                m.compromised_until = t + rng.uniform(*COMPROMISE_DAYS) * DAY
            return None
        if kind == _NEW_CARD:
            v = self._victim()
            if v is not None:
                self._compromise(v, t)
            return None
        # _LARGE
        v = self._victim()
        if v is None:
            return None
        u = self.users[v]
        amount = max(
            LARGE_MIN * rng.uniform(1.0, 3.0), self._median(u) * rng.uniform(*LARGE_FACTOR)
        )
        m = self.merchants[_draw(self.pop_cum, rng.random())]
        return self._record(t, u, m, amount, "large_amount")

    def _victim_at(self, m: _Merchant, exclude: int) -> int | None:
        """Another customer of ``m`` with enough history, or None."""
        for _ in range(10):
            v = m.customers[self.rng.randrange(len(m.customers))]
            if v != exclude and self.users[v].count >= MIN_HISTORY:
                return v
        return None

    def run(self, count: int) -> Iterator[dict[str, Any]]:
        prefix = f"s{self.seed}-"
        n = 0
        while n < count:
            rec = self._step()
            if rec is not None:
                rec["transaction_id"] = f"{prefix}{n:09d}"
                yield rec
                n += 1


def generate(
    count: int,
    *,
    users: int = 2000,
    seed: int = 7,
    anomaly_rate: float = 0.01,
    start: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """``count`` records of the sparse world in non-decreasing event time, deterministic for
    ``seed``; ``anomaly_rate`` scales every fraud process (0.01: about 1% fraud)."""
    world = _World(users, seed, anomaly_rate, start or DEFAULT_START)
    return world.run(count)

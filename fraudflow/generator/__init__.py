"""Synthetic card transactions with labelled fraud, for demos, tests and backtests.

Pure logic, no IO: :func:`generate` yields JSON-ready transaction dicts and
:func:`malformed` yields the bad inputs the flow must dead-letter. Both are
deterministic for a seed (one private ``random.Random``; no global state).

The population: each user has a home city, a log-normal spending level
(median 15..150 in the home currency), favourite merchants, 1-2 devices, 1-2
payment methods, a daytime window of activity in UTC and a rate of their own
(some users are far more active than others). Normal traffic carries honest
noise: new merchants (~7%), trips abroad with plausible flight times, larger
purchases (amount z of 2-3), night transactions (~2%) and new devices (~0.5%).

Fraud is injected only for users with at least :data:`MIN_HISTORY` earlier
transactions, in the scenarios of :data:`SCENARIOS`; ground truth rides in
``_label`` (0|1) and ``_scenario`` ("normal" or the scenario).

One more scenario, :data:`COMPROMISED_MERCHANT`, is off unless asked for
(``compromised_merchants=N``): N busy merchants (a skimmed terminal, a
colluding shop) each charge victims' cards for ``compromise_days``. After each
normal transaction at such a merchant inside its window, with chance
:data:`COMPROMISE_FRAUD_RATIO` one fraud follows there within 90 minutes, for
another user with history who is at home and awake then (same city for a shop,
anyone for a web merchant), so about 40% of the merchant's transactions in its
window are fraud. Each looks ordinary to the victim's own profile: an amount
near their median, their home country, their own device and IP online, a card
they hold, a category the merchant sells. Only the concentration at the
merchant gives it away, which a flow learns from delayed labels, so windows
are long (two weeks by default) and start after the first
:data:`COMPROMISE_WARMUP` of the run's expected span. These frauds count
against ``anomaly_rate``: the other scenarios start less often while they run,
and the labelled share exceeds ``anomaly_rate`` only when the compromised
merchants alone exceed it. With ``compromised_merchants=0`` the output is the
same as without the scenario, record for record.

>>> recs = list(generate(3, users=5, seed=1))
>>> [r["transaction_id"] for r in recs]
['t1-000000000', 't1-000000001', 't1-000000002']
>>> recs == list(generate(3, users=5, seed=1))
True
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from fraudflow.records import iso

# A fixed, recent-enough start: the flow rejects event times older than ~10
# years or more than a day ahead, and with the default 2,000 users event time
# advances ~24,000 transactions a day, so 10M records still end in the past.
DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
MEAN_DAILY_TXNS = 12.0  # per user: 100k records over 2,000 users span ~4 days
NIGHT_WEIGHT = 0.03  # activity outside a user's window, relative to inside (~2% of txns)
NEW_MERCHANT_P = 0.06
NEW_DEVICE_P = 0.005
BIG_PURCHASE_P = 0.03  # share of normal purchases drawn with amount z in [2, 3]
TRIPS_PER_DAY = 1 / 120  # each user flies abroad three times a year
FLIGHT_KMH = 800.0
FLIGHT_OVERHEAD_H = 1.5  # airport time: normal trips never imply more than ~800 km/h
MIN_HISTORY = 10  # transactions a user needs before fraud is injected for them
ONLINE_GEO_P = 0.7  # share of online transactions that carry lat/lon (geo-IP)
LOCAL_MAX_KMH = 100.0  # normal traffic never implies a faster move between two places

SCENARIOS: tuple[str, ...] = (
    "account_takeover",
    "card_testing",
    "impossible_travel",
    "unusual_hour",
    "unusual_merchant_category",
)
COMPROMISED_MERCHANT = "compromised_merchant"  # merchant-level; off by default, see above
COMPROMISE_FRAUD_RATIO = 0.7  # frauds per normal txn at a compromised merchant in its window
COMPROMISE_WARMUP = 0.15  # windows start after this share of the expected event-time span
COMPROMISE_DELAY_S = (60.0, 5400.0)  # a fraud follows the normal txn that triggers it by this
_COMPROMISE_MIN_REGULARS = 3  # a candidate merchant is a favourite of at least this many users
# relative start weights and mean sizes: labelled transactions end up roughly
# balanced (card testing is a burst, so it starts less often)
_SCENARIO_WEIGHT = {
    "account_takeover": 1.0,
    "card_testing": 0.35,
    "impossible_travel": 1.8,
    "unusual_hour": 1.3,
    "unusual_merchant_category": 1.3,
}
_SCENARIO_SIZE = {
    "account_takeover": 2.0,
    "card_testing": 8.5,
    "impossible_travel": 1.0,
    "unusual_hour": 1.0,
    "unusual_merchant_category": 1.0,
}
_MEAN_SIZE = sum(_SCENARIO_WEIGHT[s] * _SCENARIO_SIZE[s] for s in SCENARIOS) / sum(
    _SCENARIO_WEIGHT.values()
)

POS_CATEGORIES = {
    "grocery": 0.30,
    "restaurants": 0.25,
    "fuel": 0.12,
    "retail": 0.15,
    "pharmacy": 0.08,
    "entertainment": 0.06,
    "travel": 0.03,
    "utilities": 0.01,
}
ONLINE_CATEGORIES = {
    "retail": 0.35,
    "entertainment": 0.20,
    "utilities": 0.15,
    "travel": 0.10,
    "grocery": 0.10,
    "restaurants": 0.10,
}
HIGH_RISK_CATEGORIES: tuple[str, ...] = ("gambling", "crypto", "gift_cards", "money_transfer")
ATM_CATEGORY = "cash"
CHANNELS: tuple[str, ...] = ("online", "pos", "atm")
PAYMENT_METHODS: tuple[str, ...] = ("credit_card", "debit_card", "wallet")

# (city, ISO 3166 country, lat, lon, home currency, first IP octet, weight as a home city)
CITIES: tuple[tuple[str, str, float, float, str, int, float], ...] = (
    ("New York", "US", 40.7128, -74.0060, "USD", 24, 8),
    ("Chicago", "US", 41.8781, -87.6298, "USD", 66, 5),
    ("Los Angeles", "US", 34.0522, -118.2437, "USD", 72, 6),
    ("Toronto", "CA", 43.6532, -79.3832, "CAD", 99, 4),
    ("London", "GB", 51.5074, -0.1278, "GBP", 81, 7),
    ("Manchester", "GB", 53.4808, -2.2426, "GBP", 86, 3),
    ("Berlin", "DE", 52.5200, 13.4050, "EUR", 85, 4),
    ("Munich", "DE", 48.1351, 11.5820, "EUR", 88, 3),
    ("Paris", "FR", 48.8566, 2.3522, "EUR", 90, 5),
    ("Lyon", "FR", 45.7640, 4.8357, "EUR", 92, 2),
    ("Madrid", "ES", 40.4168, -3.7038, "EUR", 83, 3),
    ("Rome", "IT", 41.9028, 12.4964, "EUR", 93, 3),
    ("Amsterdam", "NL", 52.3676, 4.9041, "EUR", 145, 3),
    ("Dublin", "IE", 53.3498, -6.2603, "EUR", 87, 2),
    ("Zurich", "CH", 47.3769, 8.5417, "CHF", 178, 2),
    ("Sydney", "AU", -33.8688, 151.2093, "AUD", 101, 3),
    # travel and fraud destinations only
    ("Lisbon", "PT", 38.7223, -9.1393, "EUR", 94, 0),
    ("Vienna", "AT", 48.2082, 16.3738, "EUR", 91, 0),
    ("Prague", "CZ", 50.0755, 14.4378, "CZK", 89, 0),
    ("Warsaw", "PL", 52.2297, 21.0122, "PLN", 83, 0),
    ("Istanbul", "TR", 41.0082, 28.9784, "TRY", 78, 0),
    ("Dubai", "AE", 25.2048, 55.2708, "AED", 94, 0),
    ("Mumbai", "IN", 19.0760, 72.8777, "INR", 103, 0),
    ("Bangkok", "TH", 13.7563, 100.5018, "THB", 110, 0),
    ("Singapore", "SG", 1.3521, 103.8198, "SGD", 111, 0),
    ("Tokyo", "JP", 35.6762, 139.6503, "JPY", 126, 0),
    ("Sao Paulo", "BR", -23.5505, -46.6333, "BRL", 177, 0),
    ("Mexico City", "MX", 19.4326, -99.1332, "MXN", 187, 0),
    ("Johannesburg", "ZA", -26.2041, 28.0473, "ZAR", 105, 0),
    ("Lagos", "NG", 6.5244, 3.3792, "NGN", 102, 0),
)

_POS_PER_CITY = 250
_ATM_PER_CITY = 12
_ONLINE_MERCHANTS = 600
_HIGH_RISK_PER_CATEGORY = 15


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km.

    >>> round(haversine_km(51.5074, -0.1278, 48.8566, 2.3522))
    344
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True, slots=True)
class _Merchant:
    merchant_id: str
    category: str
    channel: str  # "pos", "atm" or "online"
    city: int  # index into CITIES, -1 for online merchants
    lat: float = 0.0
    lon: float = 0.0


@dataclass(slots=True)
class _Trip:
    city: int
    depart: float
    arrive: float
    depart_back: float
    arrive_back: float
    lat: float
    lon: float
    ip: str


@dataclass(slots=True)
class _User:
    user_id: str
    city: int
    lat: float
    lon: float
    currency: str
    log_median: float
    sigma: float
    window_start: int
    window_len: int
    online_share: float
    atm_share: float
    atms: list[_Merchant]
    pos_favourites: list[_Merchant]
    online_favourites: list[_Merchant]
    devices: list[str]
    methods: list[str]
    ip: str
    count: int = 0
    busy_until: float = 0.0  # a fraud scenario runs for this user until then
    trip: _Trip | None = None
    trip_p: float = 0.0  # chance per transaction at home of planning a trip
    last_geo: tuple[float, float, float] | None = (
        None  # (t, lat, lon) of the last geolocated record
    )
    last_device: str | None = None  # of the user's last normal online payment
    known_merchants: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    countries: set[str] = field(default_factory=set)

    @property
    def daytime(self) -> bool:
        """The activity window leaves out 01:00-05:00 UTC."""
        return all((h - self.window_start) % 24 >= self.window_len for h in range(1, 5))

    @property
    def median(self) -> float:
        return math.exp(self.log_median)


@dataclass(frozen=True, slots=True)
class _Compromise:
    merchant: _Merchant
    start: float  # event time, seconds since the epoch
    end: float
    victims: tuple[_User, ...]  # who it may charge: the merchant's city, or everyone online


def _jitter(rng: random.Random, lat: float, lon: float, km: float) -> tuple[float, float]:
    """A point up to ``km`` away, rounded to ~10 m."""
    r, a = km * math.sqrt(rng.random()), rng.random() * 2 * math.pi
    dlat = r * math.cos(a) / 111.0
    dlon = r * math.sin(a) / (111.0 * max(0.2, math.cos(math.radians(lat))))
    return round(lat + dlat, 4), round(lon + dlon, 4)


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _ip(rng: random.Random, city: int) -> str:
    return f"{CITIES[city][5]}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _cents(x: float) -> float:
    return round(max(x, 0.5), 2)


class _Simulation:
    """The state of one generation run; :func:`generate` drives it."""

    def __init__(
        self, users: int, seed: int, anomaly_rate: float, start: datetime, rate: float | None
    ) -> None:
        self.rng = rng = random.Random(seed)  # noqa: S311 - a simulation, not security
        self.seed = seed
        self.anomaly_rate = anomaly_rate
        self.t0 = start.timestamp()
        n_cities = len(CITIES)
        self.dist = [[haversine_km(a[2], a[3], b[2], b[3]) for b in CITIES] for a in CITIES]
        self.pos_pool: list[list[_Merchant]] = []
        self.atm_pool: list[list[_Merchant]] = []
        for c, (_name, cc, lat, lon, *_rest) in enumerate(CITIES):
            pool = []
            for n in range(_POS_PER_CITY):
                mlat, mlon = _jitter(rng, lat, lon, 6.0)
                pool.append(
                    _Merchant(
                        f"m-{cc.lower()}{c:02d}-{n:04d}",
                        _pick(rng, POS_CATEGORIES),
                        "pos",
                        c,
                        mlat,
                        mlon,
                    )
                )
            self.pos_pool.append(pool)
            atms = []
            for n in range(_ATM_PER_CITY):
                mlat, mlon = _jitter(rng, lat, lon, 6.0)
                atms.append(
                    _Merchant(
                        f"atm-{cc.lower()}{c:02d}-{n:02d}", ATM_CATEGORY, "atm", c, mlat, mlon
                    )
                )
            self.atm_pool.append(atms)
        self.online_pool = [
            _Merchant(f"m-web-{n:05d}", _pick(rng, ONLINE_CATEGORIES), "online", -1)
            for n in range(_ONLINE_MERCHANTS)
        ]
        self.high_risk_pool = {
            cat: [
                _Merchant(f"m-{cat.replace('_', '')}-{n:03d}", cat, "online", -1)
                for n in range(_HIGH_RISK_PER_CATEGORY)
            ]
            for cat in HIGH_RISK_CATEGORIES
        }
        homes = [c for c in range(n_cities) if CITIES[c][6] > 0]
        home_weights = [CITIES[c][6] for c in homes]
        self.users: list[_User] = []
        daily: list[float] = []
        for i in range(users):
            self.users.append(self._new_user(i, rng.choices(homes, weights=home_weights)[0]))
            # mean MEAN_DAILY_TXNS, heavy right tail: some users are much more active
            daily.append(MEAN_DAILY_TXNS * rng.lognormvariate(-0.5 * 0.9**2, 0.9))
        scale = 1.0 if rate is None else rate * 86400.0 / sum(daily)
        # thinning: candidates arrive at each user's in-window intensity; out of
        # the window only NIGHT_WEIGHT of them are kept
        cum, total = [], 0.0
        for u, d in zip(self.users, daily, strict=True):
            u.trip_p = min(1.0, TRIPS_PER_DAY / (d * scale))
            total += d * scale / (3600.0 * (u.window_len + NIGHT_WEIGHT * (24 - u.window_len)))
            cum.append(total)
        self.cum, self.total_rate = cum, total
        self.daily = [d * scale for d in daily]  # expected transactions a day, per user
        self.compromises: dict[str, _Compromise] = {}  # by merchant_id
        # its own stream: the main one draws the same numbers with or without the scenario
        self.compromise_rng = random.Random(f"{seed}/{COMPROMISED_MERCHANT}")  # noqa: S311
        self.heap: list[tuple[float, int, dict[str, Any]]] = []
        self.seq = 0
        self.pending = 0  # labelled transactions scheduled, not yet emitted
        self.eligible_share = 0.0
        self.attackers = 0

    def _new_user(self, i: int, city: int) -> _User:
        rng = self.rng
        _name, cc, lat, lon, currency, *_ = CITIES[city]
        ulat, ulon = _jitter(rng, lat, lon, 8.0)
        evening = rng.random() < 0.1
        window_start = rng.randint(12, 14) if evening else rng.choice((6, 7, 7, 8, 8, 8, 9, 10))
        n_pos, n_online = rng.randint(3, 7), rng.randint(1, 4)
        pos_favs = rng.sample(self.pos_pool[city], n_pos)
        online_favs = rng.sample(self.online_pool, n_online)
        if rng.random() < 0.03:  # a few users gamble or send money abroad as a habit
            online_favs.append(
                rng.choice(self.high_risk_pool[rng.choice(("gambling", "money_transfer"))])
            )
        uid = f"u{i:06d}"
        devices = [f"d-{uid}-0"] + ([f"d-{uid}-1"] if rng.random() < 0.35 else [])
        methods = [rng.choices(PAYMENT_METHODS, weights=(0.55, 0.35, 0.10))[0]]
        if rng.random() < 0.4:
            other = [m for m in PAYMENT_METHODS if m != methods[0]]
            methods.append(rng.choice(other))
        return _User(
            user_id=uid,
            city=city,
            lat=ulat,
            lon=ulon,
            currency=currency,
            log_median=rng.uniform(math.log(15), math.log(150)),
            sigma=rng.uniform(0.45, 0.8),
            window_start=window_start,
            window_len=rng.randint(12, 16 if evening else min(16, 24 - window_start)),
            online_share=rng.uniform(0.15, 0.6),
            atm_share=rng.uniform(0.0, 0.06),
            pos_favourites=pos_favs,
            atms=rng.sample(self.atm_pool[city], rng.randint(1, 2)),
            online_favourites=online_favs,
            devices=devices,
            methods=methods,
            ip=_ip(rng, city),
            countries={cc},
        )

    # --- where a user is -------------------------------------------------

    def _where(self, u: _User, t: float) -> tuple[int, float, float, str] | None:
        """(city, lat, lon, ip) of the user at ``t``; None while on a plane."""
        trip = u.trip
        if trip is not None:
            if t < trip.depart:
                pass
            elif t < trip.arrive or trip.depart_back <= t < trip.arrive_back:
                return None
            elif t < trip.depart_back:
                return trip.city, trip.lat, trip.lon, trip.ip
            else:
                u.trip = None
        return u.city, u.lat, u.lon, u.ip

    def _plan_trip(self, u: _User, t: float) -> None:
        rng = self.rng
        home_cc = CITIES[u.city][1]
        others = [c for c in range(len(CITIES)) if CITIES[c][1] != home_cc]
        near = [c for c in others if self.dist[u.city][c] < 2500]
        dest = rng.choice(near if near and rng.random() < 0.6 else others)
        flight = (self.dist[u.city][dest] / FLIGHT_KMH + FLIGHT_OVERHEAD_H) * 3600.0
        depart = t + rng.uniform(2, 36) * 3600.0
        arrive = depart + flight
        back = arrive + rng.uniform(1, 6) * 86400.0
        lat, lon = _jitter(rng, CITIES[dest][2], CITIES[dest][3], 5.0)
        u.trip = _Trip(dest, depart, arrive, back, back + flight, lat, lon, _ip(rng, dest))

    # --- records ---------------------------------------------------------

    def _record(
        self,
        u: _User,
        t: float,
        amount: float,
        m: _Merchant,
        *,
        country: str,
        method: str,
        device: str | None = None,
        ip: str | None = None,
        geo: tuple[float, float] | None = None,
        scenario: str = "normal",
    ) -> dict[str, Any]:
        u.count += 1
        u.known_merchants.add(m.merchant_id)
        u.categories.add(m.category)
        u.countries.add(country)
        if scenario == "normal":  # the card holder's own, not a fraudster's
            if geo is not None:
                u.last_geo = (t, geo[0], geo[1])
            if device is not None:
                u.last_device = device
        rec: dict[str, Any] = {
            "transaction_id": "",  # numbered when emitted
            "user_id": u.user_id,
            "amount": _cents(amount),
            "currency": u.currency,
            "timestamp": iso(t),
            "merchant_id": m.merchant_id,
            "merchant_category": m.category,
            "country": country,
            "channel": m.channel,
            "payment_method": method,
        }
        if device is not None:
            rec["device_id"] = device
        if ip is not None:
            rec["ip"] = ip
        if geo is not None:
            rec["lat"], rec["lon"] = geo
        rec["_label"] = 0 if scenario == "normal" else 1
        rec["_scenario"] = scenario
        return rec

    def _too_fast(self, u: _User, t: float, lat: float, lon: float) -> bool:
        """Would a move within town to (lat, lon) at ``t`` beat LOCAL_MAX_KMH?

        Longer moves are trips, whose flights are timed when they are planned.
        """
        g = u.last_geo
        if g is None:
            return False
        km = haversine_km(g[1], g[2], lat, lon)
        return km < 200.0 and km > LOCAL_MAX_KMH * max(t - g[0], 0.0) / 3600.0

    def _normal(
        self, u: _User, t: float, where: tuple[int, float, float, str], *, pos: bool = False
    ) -> dict[str, Any]:
        """One ordinary transaction of ``u`` at ``t`` where the user is (home or on a trip)."""
        rng = self.rng
        city, lat, lon, ip = where
        r = rng.random()
        channel = (
            "pos"
            if pos or r >= u.atm_share + u.online_share
            else "atm"
            if r < u.atm_share
            else "online"
        )
        m: _Merchant | None = None
        if channel == "atm":
            m = rng.choice(u.atms if city == u.city else self.atm_pool[city])
        elif channel == "pos":
            if city != u.city:
                m = rng.choice(self.pos_pool[city])
            elif rng.random() < NEW_MERCHANT_P:
                m = rng.choice(self.pos_pool[city])
                if rng.random() < 0.2:  # a new shop sometimes becomes a habit
                    u.pos_favourites.append(m)
            else:
                favs = u.pos_favourites
                m = favs[int(len(favs) * rng.random() ** 2)]
        if m is not None and not pos and self._too_fast(u, t, m.lat, m.lon):
            m, channel = None, "online"  # nobody crosses town in seconds: pay online instead
        if m is None:
            if rng.random() < NEW_MERCHANT_P:
                m = rng.choice(self.online_pool)
            else:
                favs = u.online_favourites
                m = favs[int(len(favs) * rng.random() ** 2)]
        z = rng.uniform(2.0, 3.0) if rng.random() < BIG_PURCHASE_P else rng.gauss(0.0, 1.0)
        amount = math.exp(u.log_median + u.sigma * z)
        method = rng.choice(u.methods)
        device = None
        geo: tuple[float, float] | None = None
        if channel == "online":
            if rng.random() < NEW_DEVICE_P:
                u.devices.append(f"d-{u.user_id}-{len(u.devices)}")
                device = u.devices[-1]
            else:
                device = rng.choice(u.devices)
            if rng.random() < ONLINE_GEO_P and not self._too_fast(u, t, lat, lon):
                geo = (lat, lon)
        else:
            geo = (m.lat, m.lon)
            if channel == "atm":
                amount = max(20.0, round(amount / 20.0) * 20.0)
                method = "debit_card" if "debit_card" in u.methods else u.methods[0]
        return self._record(
            u,
            t,
            amount,
            m,
            country=CITIES[city][1],
            method=method,
            device=device,
            ip=ip if channel == "online" else None,
            geo=geo,
        )

    # --- fraud -----------------------------------------------------------

    def _schedule(self, u: _User, recs: list[tuple[float, dict[str, Any]]]) -> None:
        for ts, rec in recs:
            heapq.heappush(self.heap, (ts, self.seq, rec))
            self.seq += 1
        self.pending += len(recs)
        u.busy_until = max(ts for ts, _ in recs)

    def _new_merchant(self, u: _User, pool: Sequence[_Merchant]) -> _Merchant:
        for _ in range(20):
            m = self.rng.choice(pool)
            if m.merchant_id not in u.known_merchants:
                return m
        return m

    def _foreign_city(self, u: _User, min_km: float = 0.0) -> int:
        cands = [
            c
            for c in range(len(CITIES))
            if CITIES[c][1] not in u.countries and self.dist[u.city][c] >= min_km
        ]
        if not cands:  # everywhere visited already: any other far country
            cands = [c for c in range(len(CITIES)) if CITIES[c][1] != CITIES[u.city][1]]
        return self.rng.choice(cands)

    def _attacker_device(self) -> str:
        self.attackers += 1
        return f"d-x{self.seed}-{self.attackers:06d}"

    def _scenario(
        self, u: _User, t: float, where: tuple[int, float, float, str]
    ) -> dict[str, Any] | None:
        """Schedule one fraud scenario for ``u``; returns the normal record of this slot, if any."""
        rng = self.rng
        names = list(SCENARIOS)
        if not u.daytime:
            names.remove("unusual_hour")
        if u.last_geo is not None and t - u.last_geo[0] < 900.0:
            names.remove("impossible_travel")  # its home swipe must not be a jump across town
        unused = [c for c in HIGH_RISK_CATEGORIES if c not in u.categories]
        if not unused:
            names.remove("unusual_merchant_category")
        name = rng.choices(names, weights=[_SCENARIO_WEIGHT[s] for s in names])[0]
        med = u.median
        card = next((m for m in u.methods if m != "wallet"), "credit_card")
        if name == "account_takeover":
            city = self._foreign_city(u)
            lat, lon = _jitter(rng, CITIES[city][2], CITIES[city][3], 10.0)
            device, ip, cc = self._attacker_device(), _ip(rng, city), CITIES[city][1]
            recs: list[tuple[float, dict[str, Any]]] = []
            ts = t
            for _ in range(rng.randint(1, 3)):
                m = (
                    self._new_merchant(u, self.online_pool)
                    if rng.random() < 0.8
                    else rng.choice(u.online_favourites)
                )
                amount = med * rng.uniform(5, 20)
                rec = self._record(
                    u,
                    ts,
                    amount,
                    m,
                    country=cc,
                    method=card,
                    device=device,
                    ip=ip,
                    geo=(lat, lon),
                    scenario=name,
                )
                recs.append((ts, rec))
                ts += rng.uniform(1, 20) * 60.0
            self._schedule(u, recs)
            return None
        if name == "card_testing":
            city = self._foreign_city(u)
            device, ip, cc = self._attacker_device(), _ip(rng, city), CITIES[city][1]
            merchants = [self._new_merchant(u, self.online_pool) for _ in range(rng.randint(1, 3))]
            span = rng.uniform(60, 180)
            times = sorted(t + rng.uniform(0, span) for _ in range(rng.randint(5, 12)))
            recs = []
            for ts in times:
                amount = 1.0 if rng.random() < 0.2 else rng.uniform(0.5, 5.0)
                m = rng.choice(merchants)
                rec = self._record(
                    u, ts, amount, m, country=cc, method=card, device=device, ip=ip, scenario=name
                )
                recs.append((ts, rec))
            self._schedule(u, recs)
            return None
        if name == "impossible_travel":
            home = self._normal(u, t, where, pos=True)
            city = self._foreign_city(u, min_km=3000.0)
            if self.dist[u.city][city] < 3000.0:  # visited every far country: pick any far city
                city = rng.choice([c for c in range(len(CITIES)) if self.dist[u.city][c] >= 3000.0])
            m = self._new_merchant(u, self.pos_pool[city])
            ts = t + rng.uniform(5, 60) * 60.0
            amount = med * rng.uniform(1, 4)
            cc = CITIES[city][1]
            rec = self._record(
                u, ts, amount, m, country=cc, method=card, geo=(m.lat, m.lon), scenario=name
            )
            self._schedule(u, [(ts, rec)])
            return home
        if name == "unusual_hour":
            home = self._normal(u, t, where)
            day = math.floor(t / 86400.0) * 86400.0
            ts = day + rng.uniform(3600.0, 5 * 3600.0 - 1.0)
            if ts <= t:
                ts += 86400.0
            amount = med * rng.uniform(3, 8)
            cc = CITIES[u.city][1]
            if rng.random() < 0.5:
                m = (
                    self._new_merchant(u, self.online_pool)
                    if rng.random() < 0.5
                    else rng.choice(u.online_favourites)
                )
            else:
                m = (
                    self._new_merchant(u, self.pos_pool[u.city])
                    if rng.random() < 0.5
                    else rng.choice(u.pos_favourites)
                )
            if m.channel == "online":
                device = rng.choice(u.devices)
                rec = self._record(
                    u,
                    ts,
                    amount,
                    m,
                    country=cc,
                    method=card,
                    device=device,
                    ip=u.ip,
                    geo=(u.lat, u.lon),
                    scenario=name,
                )
            else:
                rec = self._record(
                    u, ts, amount, m, country=cc, method=card, geo=(m.lat, m.lon), scenario=name
                )
            self._schedule(u, [(ts, rec)])
            return home
        # unusual_merchant_category: first payment in a high-risk category
        m = rng.choice(self.high_risk_pool[rng.choice(unused)])
        amount = med * rng.uniform(4, 15)
        cc = CITIES[u.city][1]
        geo = (u.lat, u.lon) if rng.random() < ONLINE_GEO_P else None
        device = rng.choice(u.devices)
        rec = self._record(
            u, t, amount, m, country=cc, method=card, device=device, ip=u.ip, geo=geo, scenario=name
        )
        self._schedule(u, [(t, rec)])
        return None

    # --- compromised merchants ------------------------------------------

    def _regular_traffic(self) -> dict[str, tuple[_Merchant, float, int]]:
        """Expected normal transactions a day at each favourite merchant, and its regulars.

        From the users' rates, channel shares and favourites (the n-th of k is
        picked with chance sqrt((n+1)/k) - sqrt(n/k)); trips and new habits aside.
        """
        out: dict[str, tuple[_Merchant, float, int]] = {}
        keep = 1.0 - NEW_MERCHANT_P
        for u, d in zip(self.users, self.daily, strict=True):
            pos_share = 1.0 - u.atm_share - u.online_share
            for favs, share in (
                (u.pos_favourites, pos_share),
                (u.online_favourites, u.online_share),
            ):
                k = len(favs)
                for n, m in enumerate(favs):
                    if m.category in HIGH_RISK_CATEGORIES:
                        continue
                    p = math.sqrt((n + 1) / k) - math.sqrt(n / k)
                    _m, per_day, regulars = out.get(m.merchant_id, (m, 0.0, 0))
                    out[m.merchant_id] = (m, per_day + d * share * keep * p, regulars + 1)
        return out

    def compromise(self, count: int, merchants: int, days: float) -> None:
        """Pick ``merchants`` busy merchants and their windows, before the run of ``count``.

        The candidates are the busiest 1% (at least 3 per pick) of the merchants
        that are favourites of several users; windows start at random after
        the warm-up and, where the expected span allows, end before it does.
        """
        rng = self.compromise_rng
        traffic = sorted(
            self._regular_traffic().values(),
            key=lambda x: (x[2] < _COMPROMISE_MIN_REGULARS, -x[1], x[0].merchant_id),
        )
        if merchants > len(traffic):
            raise ValueError(
                f"compromised_merchants={merchants} exceeds the {len(traffic)} merchants "
                "with regular customers; use more users"
            )
        pool = [m for m, _, _ in traffic[: max(3 * merchants, len(traffic) // 100)]]
        span = count * 86400.0 / sum(self.daily)
        length = days * 86400.0
        first = COMPROMISE_WARMUP * span
        for m in sorted(rng.sample(pool, merchants), key=lambda m: m.merchant_id):
            start = self.t0 + rng.uniform(first, max(first, span - length))
            victims = tuple(u for u in self.users if m.channel == "online" or u.city == m.city)
            self.compromises[m.merchant_id] = _Compromise(m, start, start + length, victims)

    def _compromised_fraud(self, c: _Compromise, buyer: _User, t: float) -> None:
        """Maybe schedule one fraud at ``c``'s merchant after ``buyer``'s normal txn at ``t``."""
        rng = self.compromise_rng
        if rng.random() >= COMPROMISE_FRAUD_RATIO:
            return
        ts = t + rng.uniform(*COMPROMISE_DELAY_S)
        if ts >= c.end:
            return
        m = c.merchant
        hour = int(ts % 86400.0 // 3600.0)
        for _ in range(8):
            v = rng.choice(c.victims)
            if (
                v is not buyer
                and v.count >= MIN_HISTORY
                and v.trip is None  # at home, with no trip planned
                and t >= v.busy_until
                and (hour - v.window_start) % 24 < v.window_len  # awake
                and any(x != "wallet" for x in v.methods)  # a card to charge
                and (m.channel == "pos" or v.last_device is not None)  # pays online
                and not (m.channel == "pos" and self._too_fast(v, ts, m.lat, m.lon))
            ):
                break
        else:
            return
        amount = v.median * rng.lognormvariate(0.0, 0.25)
        card = next(x for x in v.methods if x != "wallet")
        cc = CITIES[v.city][1]
        online = m.channel == "online"
        if online:  # the victim's own device, IP and (geo-IP) place
            near = rng.random() < ONLINE_GEO_P and not self._too_fast(v, ts, v.lat, v.lon)
            geo = (v.lat, v.lon) if near else None
        else:  # at the shop's terminal
            geo = (m.lat, m.lon)
        rec = self._record(
            v,
            ts,
            amount,
            m,
            country=cc,
            method=card,
            device=v.last_device if online else None,
            ip=v.ip if online else None,
            geo=geo,
            scenario=COMPROMISED_MERCHANT,
        )
        self._schedule(v, [(ts, rec)])

    def _fraud_chance(self, emitted: int, labelled: int) -> float:
        """Chance that an eligible slot starts a scenario: aims at ``anomaly_rate`` overall.

        A base rate corrected for the share of eligible users, nudged by the
        running deficit so early warm-up (no one eligible yet) is caught up.
        """
        p = self.anomaly_rate
        deficit = p * (emitted + 1) - (labelled + self.pending)
        base = p / (_MEAN_SIZE * max(self.eligible_share, 0.1))
        return min(0.5, base * max(0.0, 1.0 + deficit / (4.0 * _MEAN_SIZE)))

    # --- the loop --------------------------------------------------------

    def run(self, count: int) -> Iterator[dict[str, Any]]:
        rng, heap, users, cum, total = self.rng, self.heap, self.users, self.cum, self.total_rate
        prefix = f"t{self.seed}-"
        t = self.t0
        emitted = labelled = 0
        while emitted < count:
            t_next = t + rng.expovariate(total)
            while heap and heap[0][0] <= t_next:
                t, _, rec = heapq.heappop(heap)
                self.pending -= 1
                rec["transaction_id"] = f"{prefix}{emitted:09d}"
                yield rec
                emitted += 1
                labelled += 1
                if emitted >= count:
                    return
            t = t_next
            u = users[min(bisect_right(cum, rng.random() * total), len(users) - 1)]
            hour = int(t % 86400.0 // 3600.0)
            if (hour - u.window_start) % 24 >= u.window_len and rng.random() >= NIGHT_WEIGHT:
                continue
            where = self._where(u, t)
            if where is None:
                continue
            rec_now: dict[str, Any] | None
            eligible = (
                self.anomaly_rate > 0
                and u.count >= MIN_HISTORY
                and u.trip is None
                and t >= u.busy_until
            )
            self.eligible_share += 0.002 * (float(eligible) - self.eligible_share)
            if eligible and rng.random() < self._fraud_chance(emitted, labelled):
                rec_now = self._scenario(u, t, where)
                if rec_now is None:
                    continue  # the scenario's first record is on the heap at t
            else:
                rec_now = self._normal(u, t, where)
                if u.trip is None and t >= u.busy_until and rng.random() < u.trip_p:
                    self._plan_trip(u, t)
            if self.compromises and not rec_now["_label"]:
                c = self.compromises.get(rec_now["merchant_id"])
                if c is not None and c.start <= t < c.end:
                    self._compromised_fraud(c, u, t)
            rec_now["transaction_id"] = f"{prefix}{emitted:09d}"
            yield rec_now
            emitted += 1


def generate(
    count: int,
    *,
    users: int = 2000,
    seed: int = 7,
    anomaly_rate: float = 0.01,
    start: datetime | None = None,
    rate: float | None = None,
    compromised_merchants: int = 0,
    compromise_days: float = 14.0,
) -> Iterator[dict[str, Any]]:
    """``count`` transactions in non-decreasing event time, deterministic for ``seed``.

    ``anomaly_rate`` is the approximate share of records labelled 1 (every
    record of a multi-record scenario counts). ``start`` is the first event
    time (default :data:`DEFAULT_START`). ``rate`` is the mean event-time rate
    in transactions per second over all users; by default each user makes
    about :data:`MEAN_DAILY_TXNS` a day, so the rate grows with ``users``.
    ``compromised_merchants`` merchants each charge victims' cards for
    ``compromise_days`` of event time (:data:`COMPROMISED_MERCHANT`, see the
    module's docstring); 0, the default, leaves the output unchanged.
    """
    return _simulation(
        count,
        users=users,
        seed=seed,
        anomaly_rate=anomaly_rate,
        start=start,
        rate=rate,
        compromised_merchants=compromised_merchants,
        compromise_days=compromise_days,
    ).run(count)


def compromised_windows(
    count: int,
    *,
    users: int = 2000,
    seed: int = 7,
    start: datetime | None = None,
    rate: float | None = None,
    compromised_merchants: int,
    compromise_days: float = 14.0,
) -> list[tuple[str, datetime, datetime]]:
    """(merchant_id, start, end) of each merchant :func:`generate` compromises with these arguments.

    Its frauds fall within [start, end). ``anomaly_rate`` does not move the windows.

    >>> [(m, s.date().isoformat()) for m, s, _ in compromised_windows(
    ...     300_000, users=1000, seed=7, compromised_merchants=3)]
    [('m-web-00190', '2025-01-04'), ('m-web-00330', '2025-01-11'), ('m-web-00346', '2025-01-08')]
    """
    sim = _simulation(
        count,
        users=users,
        seed=seed,
        anomaly_rate=0.0,
        start=start,
        rate=rate,
        compromised_merchants=compromised_merchants,
        compromise_days=compromise_days,
    )
    return [
        (
            c.merchant.merchant_id,
            datetime.fromtimestamp(c.start, UTC),
            datetime.fromtimestamp(c.end, UTC),
        )
        for c in sim.compromises.values()
    ]


def _simulation(
    count: int,
    *,
    users: int,
    seed: int,
    anomaly_rate: float,
    start: datetime | None,
    rate: float | None,
    compromised_merchants: int,
    compromise_days: float,
) -> _Simulation:
    """A simulation ready to run, its arguments checked now rather than at the first record."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if users < 1:
        raise ValueError(f"users must be >= 1, got {users}")
    if not 0.0 <= anomaly_rate <= 0.5:
        raise ValueError(f"anomaly_rate must be within [0, 0.5], got {anomaly_rate}")
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number of transactions per second, got {rate}")
    if compromised_merchants < 0:
        raise ValueError(f"compromised_merchants must be >= 0, got {compromised_merchants}")
    if not (compromise_days > 0 and math.isfinite(compromise_days)):
        raise ValueError(f"compromise_days must be a positive number, got {compromise_days}")
    start = DEFAULT_START if start is None else start
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime (e.g. with tzinfo=UTC)")
    sim = _Simulation(users, seed, anomaly_rate, start, rate)
    if compromised_merchants:
        sim.compromise(count, compromised_merchants, compromise_days)
    return sim


# --- bad inputs ------------------------------------------------------------

MAX_MESSAGE_BYTES = 16384  # the flow's default max_message_bytes
MALFORMED_KINDS: tuple[str, ...] = (
    "bad_json",  # truncated, trailing garbage, single quotes, bare keys
    "not_utf8",  # Latin-1 bytes inside a string
    "not_object",  # a JSON array, string, number, null or boolean
    "wrong_type",  # amount as a string or a boolean, user_id as a number
    "missing_field",  # one of transaction_id, user_id, amount, timestamp left out
    "nan_amount",  # "amount": NaN / Infinity / -Infinity (not JSON at all)
    "inf_amount",  # "amount": 1e999 (JSON, but overflows a double)
    "negative_amount",
    "naive_timestamp",  # no zone
    "timestamp_past",  # year 1990
    "timestamp_future",  # year 2090
    "oversize",  # > MAX_MESSAGE_BYTES, a valid record with a huge extra field
    "empty_key",  # Kafka key b"", the value a valid record
    "duplicate",  # an exact copy of a recent valid record (same transaction_id)
)
_REQUIRED = ("transaction_id", "user_id", "amount", "timestamp")
_DUPLICATE_RECENT = 64  # duplicates copy one of the last records of the pool


def _bad_base(
    rng: random.Random, pool: Sequence[dict[str, Any]], i: int, seed: int, kind: str
) -> dict[str, Any]:
    src = pool[len(pool) - 1 - rng.randrange(min(len(pool), _DUPLICATE_RECENT))]
    rec = {k: v for k, v in src.items() if not k.startswith("_")}
    rec["transaction_id"] = f"x{seed}-{i:06d}"
    rec["_malformed"] = kind
    return rec


def _with_raw(rec: dict[str, Any], name: str, raw: bytes) -> bytes:
    """JSON of ``rec`` with field ``name`` written as ``raw`` text."""
    rec = dict(rec)
    rec[name] = "@@RAW@@"
    return orjson.dumps(rec).replace(b'"@@RAW@@"', raw)


def _bad_value(kind: str, rec: dict[str, Any], rng: random.Random, variant: int) -> bytes:
    if kind == "bad_json":
        good = orjson.dumps(rec)
        return (
            good[: len(good) // 2],
            good + b"}",
            repr(rec).encode(),
            good.replace(b'"user_id"', b"user_id", 1),
        )[variant % 4]
    if kind == "not_utf8":
        return _with_raw(rec, "merchant_id", b'"caf\xe9-\xff\xfe"')
    if kind == "not_object":
        return (orjson.dumps(list(rec.values())), b'"a string"', b"42", b"null", b"true", b"[]")[
            variant % 6
        ]
    if kind == "wrong_type":
        rec = dict(rec)
        if variant % 3 == 0:
            rec["amount"] = f"{rec['amount']:.2f}"
        elif variant % 3 == 1:
            rec["user_id"] = int(rec["user_id"].lstrip("u") or 0)
        else:
            rec["amount"] = True
        return orjson.dumps(rec)
    if kind == "missing_field":
        rec = dict(rec)
        del rec[_REQUIRED[variant % len(_REQUIRED)]]
        return orjson.dumps(rec)
    if kind == "nan_amount":
        return _with_raw(rec, "amount", (b"NaN", b"Infinity", b"-Infinity")[variant % 3])
    if kind == "inf_amount":
        return _with_raw(rec, "amount", (b"1e999", b"-1e999")[variant % 2])
    if kind == "negative_amount":
        return orjson.dumps({**rec, "amount": -round(abs(rec["amount"]) + 0.01, 2)})
    ts = datetime.fromisoformat(rec["timestamp"])
    if kind == "naive_timestamp":
        fmt = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f")[variant % 2]
        return orjson.dumps({**rec, "timestamp": ts.replace(tzinfo=None).strftime(fmt)})
    if kind in ("timestamp_past", "timestamp_future"):
        year = 1990 if kind == "timestamp_past" else 2090
        moved = ts.replace(year=year, day=min(ts.day, 28))
        return orjson.dumps({**rec, "timestamp": moved.isoformat().replace("+00:00", "Z")})
    if kind == "oversize":
        pad = MAX_MESSAGE_BYTES + rng.randrange(1, 4096)
        return orjson.dumps({**rec, "_padding": "x" * pad})
    if kind == "empty_key":
        return orjson.dumps(rec)
    raise ValueError(f"unknown malformed kind {kind!r}")


def malformed(
    count: int,
    *,
    seed: int,
    valid_pool: Sequence[dict[str, Any]],
    kinds: Sequence[str] = MALFORMED_KINDS,
) -> Iterator[tuple[bytes | None, bytes, str]]:
    """``count`` bad messages as (kafka_key, value, kind), kinds spread evenly.

    Each is built from a recent record of ``valid_pool`` (read when the message
    is drawn, so a caller may keep appending to it; it must not be empty then),
    with a fresh ``transaction_id`` and a ``_malformed`` field naming the kind
    where the value is still an object. ``duplicate`` re-sends an exact copy of
    one of the last records of the pool, keyed by its user_id. ``kinds`` picks
    a subset (e.g. files, which carry no key, leave out ``empty_key``).
    """
    unknown = [k for k in kinds if k not in MALFORMED_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown or no malformed kinds: {unknown or kinds!r}")
    return _malformed(count, seed, valid_pool, tuple(kinds))


def _malformed(
    count: int, seed: int, pool: Sequence[dict[str, Any]], kinds: tuple[str, ...]
) -> Iterator[tuple[bytes | None, bytes, str]]:
    rng = random.Random(seed ^ 0x5EED)  # noqa: S311 - a simulation, not security
    offset = rng.randrange(len(kinds))
    for i in range(count):
        if not pool:
            raise ValueError("malformed(): valid_pool is empty; emit a valid record first")
        kind = kinds[(offset + i) % len(kinds)]
        variant = i // len(kinds)
        if kind == "duplicate":
            src = pool[len(pool) - 1 - rng.randrange(min(len(pool), _DUPLICATE_RECENT))]
            yield src["user_id"].encode(), orjson.dumps(src), kind
            continue
        rec = _bad_base(rng, pool, i, seed, kind)
        key = b"" if kind == "empty_key" else str(rec["user_id"]).encode()
        yield key, _bad_value(kind, rec, rng, variant), kind


__all__ = [
    "CHANNELS",
    "COMPROMISED_MERCHANT",
    "DEFAULT_START",
    "HIGH_RISK_CATEGORIES",
    "MALFORMED_KINDS",
    "MAX_MESSAGE_BYTES",
    "SCENARIOS",
    "compromised_windows",
    "generate",
    "haversine_km",
    "malformed",
]

"""The synthetic transaction generator: validity, determinism, realism, fraud scenarios."""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudflow.config.settings import ValidationSettings
from fraudflow.generator import (
    CHANNELS,
    DEFAULT_START,
    HIGH_RISK_CATEGORIES,
    MIN_HISTORY,
    SCENARIOS,
    generate,
    haversine_km,
)
from fraudflow.operators.ingest.parse import validate_object

ANOMALY_RATE = 0.02
COUNT = 20_000
USERS = 250


def ts(rec: dict[str, Any]) -> float:
    return datetime.fromisoformat(rec["timestamp"]).timestamp()


@dataclass
class History:
    """What a user did before a record, as the flow would know it."""

    count: int = 0
    devices: set[str] = field(default_factory=set)
    countries: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    merchants: set[str] = field(default_factory=set)
    amounts: list[float] = field(default_factory=list)  # normal ones only
    hours: list[int] = field(default_factory=list)  # normal ones only
    last_geo: tuple[float, float, float] | None = None
    last_scenario: str = ""  # of the previous record
    last_geo_scenario: str = ""  # of the previous record with lat/lon


def with_history(recs: list[dict[str, Any]]) -> Hist:
    """Each record with a frozen copy of its user's history before it."""
    hist: dict[str, History] = defaultdict(History)
    out = []
    for r in recs:
        h = hist[r["user_id"]]
        out.append(
            (
                r,
                History(
                    h.count,
                    set(h.devices),
                    set(h.countries),
                    set(h.categories),
                    set(h.merchants),
                    list(h.amounts),
                    list(h.hours),
                    h.last_geo,
                    h.last_scenario,
                    h.last_geo_scenario,
                ),
            )
        )
        h.count += 1
        h.countries.add(r["country"])
        h.categories.add(r["merchant_category"])
        h.merchants.add(r["merchant_id"])
        if "device_id" in r:
            h.devices.add(r["device_id"])
        if r["_label"] == 0:
            h.amounts.append(r["amount"])
            h.hours.append(int(r["timestamp"][11:13]))
        if "lat" in r:
            h.last_geo = (ts(r), r["lat"], r["lon"])
            h.last_geo_scenario = r["_scenario"]
        h.last_scenario = r["_scenario"]
    return out


Hist = list[tuple[dict[str, Any], History]]


@pytest.fixture(scope="module")
def recs() -> list[dict[str, Any]]:
    return list(generate(COUNT, users=USERS, seed=11, anomaly_rate=ANOMALY_RATE))


@pytest.fixture(scope="module")
def hist(recs: list[dict[str, Any]]) -> Hist:
    return with_history(recs)


def by_scenario(hist: Hist, name: str) -> Hist:
    rows = [(r, h) for r, h in hist if r["_scenario"] == name]
    assert rows, f"no {name} records"
    return rows


# --- validity --------------------------------------------------------------

_RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def check_record(r: dict[str, Any]) -> None:
    """Field by field against DESIGN.md section 2, then the flow's own validator."""
    for name in ("transaction_id", "user_id"):
        assert isinstance(r[name], str)
        assert 1 <= len(r[name]) <= 128
    assert type(r["amount"]) is float
    assert math.isfinite(r["amount"])
    assert r["amount"] >= 0
    assert round(r["amount"], 2) == r["amount"]
    assert _RFC3339_Z.fullmatch(r["timestamp"]), r["timestamp"]
    assert re.fullmatch(r"[A-Z]{3}", r["currency"])
    assert re.fullmatch(r"[A-Z]{2}", r["country"])
    for name in ("merchant_id", "merchant_category", "payment_method", "channel"):
        assert isinstance(r[name], str)
        assert r[name]
    assert r["channel"] in CHANNELS
    assert ("lat" in r) == ("lon" in r)
    if r["channel"] in ("pos", "atm"):
        assert "lat" in r
    if "lat" in r:
        assert -90 <= r["lat"] <= 90
        assert -180 <= r["lon"] <= 180
    assert r["_label"] in (0, 1)
    assert (r["_scenario"] == "normal") == (r["_label"] == 0)
    assert r["_scenario"] in ("normal", *SCENARIOS)
    now = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    txn = validate_object(r, ValidationSettings(), now)
    assert txn.transaction_id == r["transaction_id"]


def test_every_record_is_valid(recs: list[dict[str, Any]]) -> None:
    for r in recs:
        check_record(r)


def test_ids_are_unique_and_sequential(recs: list[dict[str, Any]]) -> None:
    ids = [r["transaction_id"] for r in recs]
    assert len(set(ids)) == len(ids)
    assert ids[:2] == ["t11-000000000", "t11-000000001"]


def test_event_time_never_goes_back(recs: list[dict[str, Any]]) -> None:
    times = [ts(r) for r in recs]
    assert all(a <= b for a, b in itertools.pairwise(times))
    assert times[0] >= DEFAULT_START.timestamp()


def test_exact_count_and_json_ready(recs: list[dict[str, Any]]) -> None:
    assert len(recs) == COUNT
    assert orjson.loads(orjson.dumps(recs[0])) == recs[0]


# --- determinism -----------------------------------------------------------


def test_same_seed_same_output() -> None:
    assert list(generate(2000, users=50, seed=3)) == list(generate(2000, users=50, seed=3))


def test_different_seed_different_output() -> None:
    a = list(generate(500, users=50, seed=3))
    b = list(generate(500, users=50, seed=4))
    assert [r["amount"] for r in a] != [r["amount"] for r in b]
    assert [r["user_id"] for r in a] != [r["user_id"] for r in b]


def test_a_prefix_is_the_start_of_a_longer_run() -> None:
    assert list(generate(300, users=40, seed=5)) == list(generate(600, users=40, seed=5))[:300]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    users=st.integers(1, 40),
    count=st.integers(0, 400),
    rate=st.floats(0.0, 0.3),
)
def test_any_parameters_give_valid_ordered_records(
    seed: int, users: int, count: int, rate: float
) -> None:
    out = list(generate(count, users=users, seed=seed, anomaly_rate=rate))
    assert len(out) == count
    assert len({r["transaction_id"] for r in out}) == count
    times = [ts(r) for r in out]
    assert times == sorted(times)
    assert {r["user_id"] for r in out} <= {f"u{i:06d}" for i in range(users)}
    for r in out:
        check_record(r)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0}, "users"),
        ({"anomaly_rate": -0.1}, "anomaly_rate"),
        ({"anomaly_rate": 0.9}, "anomaly_rate"),
        ({"rate": 0.0}, "rate"),
        ({"start": datetime(2025, 1, 1)}, "aware"),  # noqa: DTZ001 - the point of the test
    ],
)
def test_bad_arguments_fail_at_call_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(10, **kwargs)


# --- volume and timing ------------------------------------------------------


def test_start_and_event_rate() -> None:
    """``rate`` is the mean over whole days (users sleep, so hours differ)."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    rate = 3000 / (4 * 86400)
    out = list(generate(3000, users=100, seed=2, start=start, rate=rate))
    assert ts(out[0]) >= start.timestamp()
    span = ts(out[-1]) - ts(out[0])
    assert 3.5 * 86400 < span < 4.5 * 86400


def test_default_volume_spans_a_few_days_with_history_per_user() -> None:
    out = list(generate(100_000, users=2000, seed=7))
    span = timedelta(seconds=ts(out[-1]) - ts(out[0]))
    assert timedelta(days=2) < span < timedelta(days=8)
    per_user = Counter(r["user_id"] for r in out)
    assert len(per_user) > 1900
    assert statistics.median(per_user.values()) >= 25
    assert max(per_user.values()) > 5 * statistics.median(per_user.values())  # some are far busier
    labelled = sum(r["_label"] for r in out)
    assert 800 < labelled < 1200  # default anomaly_rate 1%


# --- normal behaviour --------------------------------------------------------


def test_normal_traffic_is_mostly_habit_with_some_noise(hist: Hist) -> None:
    normal = [(r, h) for r, h in hist if r["_label"] == 0 and h.count >= MIN_HISTORY]
    new_merchant = sum(r["merchant_id"] not in h.merchants for r, h in normal) / len(normal)
    assert 0.03 < new_merchant < 0.2
    online = [(r, h) for r, h in normal if r["channel"] == "online"]
    new_device = sum(r["device_id"] not in h.devices for r, h in online) / len(online)
    assert 0 < new_device < 0.02
    night = sum(1 <= int(r["timestamp"][11:13]) <= 4 for r, _ in normal) / len(normal)
    assert 0.002 < night < 0.05
    abroad = sum(r["country"] not in h.countries for r, h in normal)
    assert abroad > 0  # trips happen
    assert {r["channel"] for r, _ in normal} == set(CHANNELS)
    high_risk = sum(r["merchant_category"] in HIGH_RISK_CATEGORIES for r, _ in normal) / len(normal)
    assert high_risk < 0.02  # a few users gamble as a habit; fraud is a first time


def test_normal_moves_are_physically_possible(hist: Hist) -> None:
    """Trips take flights of a plausible speed; only fraud (and the return after it) is faster."""
    for r, h in hist:
        if r["_label"] or "lat" not in r or h.last_geo is None or h.last_geo_scenario != "normal":
            continue
        t0, lat, lon = h.last_geo
        km = haversine_km(lat, lon, r["lat"], r["lon"])
        hours = max(ts(r) - t0, 1e-3) / 3600
        assert km / hours < 900, (r, h.last_geo)


def test_users_spend_at_their_own_level(hist: Hist) -> None:
    medians = {}
    for r, h in hist:
        if len(h.amounts) >= 30:
            medians[r["user_id"]] = statistics.median(h.amounts)
    assert len(medians) > 50
    assert min(medians.values()) < 30
    assert max(medians.values()) > 90


# --- fraud -------------------------------------------------------------------


def test_anomaly_rate_is_met(recs: list[dict[str, Any]]) -> None:
    share = sum(r["_label"] for r in recs) / len(recs)
    assert ANOMALY_RATE * 0.8 < share < ANOMALY_RATE * 1.2


def test_no_anomalies_when_rate_is_zero() -> None:
    assert not any(r["_label"] for r in generate(3000, users=20, seed=1, anomaly_rate=0.0))


def test_every_scenario_appears_in_fair_shares(recs: list[dict[str, Any]]) -> None:
    counts = Counter(r["_scenario"] for r in recs if r["_label"])
    assert set(counts) == set(SCENARIOS)
    total = sum(counts.values())
    assert all(n / total > 0.05 for n in counts.values()), counts


def test_fraud_only_hits_users_with_history(hist: Hist) -> None:
    assert all(h.count >= MIN_HISTORY for r, h in hist if r["_label"])


def test_account_takeover(hist: Hist) -> None:
    rows = by_scenario(hist, "account_takeover")
    takeovers: dict[str, list[tuple[dict[str, Any], History]]] = defaultdict(list)
    for r, h in rows:  # one attacker device per takeover
        takeovers[r["device_id"]].append((r, h))
    for group in takeovers.values():
        assert 1 <= len(group) <= 3
        first, h0 = group[0]
        assert first["device_id"] not in h0.devices
        assert first["country"] not in h0.countries
        assert {r["country"] for r, _ in group} == {first["country"]}
    for r, h in rows:
        assert "lat" in r
        assert r["amount"] > 2 * statistics.median(h.amounts)
    assert statistics.median(r["amount"] / statistics.median(h.amounts) for r, h in rows) > 5
    assert sum(r["channel"] == "online" for r, _ in rows) / len(rows) > 0.7
    assert sum(r["merchant_id"] not in h.merchants for r, h in rows) / len(rows) > 0.5


def test_card_testing_bursts(recs: list[dict[str, Any]], hist: Hist) -> None:
    bursts: dict[str, list[tuple[dict[str, Any], History]]] = defaultdict(list)
    for r, h in by_scenario(hist, "card_testing"):
        assert 0.5 <= r["amount"] <= 5.0
        assert r["channel"] == "online"
        bursts[r["device_id"]].append((r, h))  # one attacker device per burst
    complete = [b for b in bursts.values() if b[-1][0] is not recs[-1]]
    assert complete
    for burst in complete:
        assert 5 <= len(burst) <= 12
        assert ts(burst[-1][0]) - ts(burst[0][0]) <= 180
        merchants = {r["merchant_id"] for r, _ in burst}
        assert len(merchants) <= 3
        assert not merchants & burst[0][1].merchants
        assert len({r["user_id"] for r, _ in burst}) == 1


def test_impossible_travel(hist: Hist) -> None:
    for r, h in by_scenario(hist, "impossible_travel"):
        assert r["channel"] == "pos"
        assert h.last_geo is not None
        t0, lat, lon = h.last_geo
        km = haversine_km(lat, lon, r["lat"], r["lon"])
        hours = (ts(r) - t0) / 3600
        assert km > 3000
        assert 0 < hours <= 1.0
        assert km / hours > 900
        assert r["amount"] <= 8 * statistics.median(h.amounts)  # ordinary to high, not extreme


def test_unusual_hour(hist: Hist) -> None:
    rows = by_scenario(hist, "unusual_hour")
    for r, h in rows:
        assert 1 <= int(r["timestamp"][11:13]) <= 4
        assert r["amount"] > 1.5 * statistics.median(h.amounts)
        usual = sum(1 <= x <= 4 for x in h.hours) / len(h.hours)
        assert usual < 0.15
    assert statistics.median(r["amount"] / statistics.median(h.amounts) for r, h in rows) > 3


def test_unusual_merchant_category(hist: Hist) -> None:
    rows = by_scenario(hist, "unusual_merchant_category")
    for r, h in rows:
        assert r["merchant_category"] in HIGH_RISK_CATEGORIES
        assert r["merchant_category"] not in h.categories
        assert r["amount"] > 2 * statistics.median(h.amounts)
    assert statistics.median(r["amount"] / statistics.median(h.amounts) for r, h in rows) > 4

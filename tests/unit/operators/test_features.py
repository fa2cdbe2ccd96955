"""Per-user features: windows, event time, habits, detectors, bounds, pickling."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import timedelta

import pytest

from fraudflow.config.settings import FeatureSettings, ModelSettings, ValidationSettings
from fraudflow.operators.detectors.amount import IqrDetector, ZScoreDetector
from fraudflow.operators.detectors.registry import DETECTORS
from fraudflow.operators.features.catalogue import feature_catalogue
from fraudflow.operators.features.user import FeatureParams, user_step
from fraudflow.records import DeadLetter, FeatureRow, Transaction
from fraudflow.state.user import MAX_IDS, UserState

P = FeatureParams.from_settings(FeatureSettings(), ValidationSettings())
T0 = 1_767_225_600.0


def txn(i: int, t: float, amount: float = 20.0, **kw: object) -> Transaction:
    base = {
        "transaction_id": f"t{i}",
        "user_id": "u1",
        "amount": amount,
        "ts": t,
        "currency": "USD",
        "merchant_id": "m1",
        "country": "DE",
        "device_id": "d1",
        "payment_method": "card",
        "merchant_category": "grocery",
    }
    base.update(kw)
    return Transaction(**base)  # type: ignore[arg-type]


def run(
    txns: list[Transaction], state: UserState | None = None, p: FeatureParams = P
) -> tuple[UserState, list[FeatureRow | DeadLetter]]:
    out = []
    for t in txns:
        state, r = user_step(state, t, p)
        out.append(r)
    assert state is not None
    return state, out


def rows(out: list[FeatureRow | DeadLetter]) -> list[dict[str, object]]:
    return [r.features for r in out if isinstance(r, FeatureRow)]


def test_every_catalogue_name_is_filled_with_its_type() -> None:
    _, out = run([txn(i, T0 + 60 * i) for i in range(8)])
    cat = feature_catalogue(FeatureSettings().windows)
    scores = {f"{d.name}_score" for d in DETECTORS}  # the detectors' (FeatureRow.scores)
    for f in rows(out):
        assert set(f) == set(cat) - scores
        for name, spec in cat.items():
            if name in scores:
                continue
            v = f[name]
            assert isinstance(v, spec.type) or (spec.type is float and isinstance(v, int)), (
                name,
                v,
            )


def test_sliding_window_counts_and_sums() -> None:
    # 5 records 20 s apart, then one 2 minutes later
    times = [T0 + 20 * i for i in range(5)] + [T0 + 80 + 120]
    _, out = run([txn(i, t, amount=10.0 * (i + 1)) for i, t in enumerate(times)])
    f = rows(out)
    # windows are half-open, (t - w, t]: a record exactly 60 s old is out
    assert [r["count_1m"] for r in f] == [1, 2, 3, 3, 3, 1]
    assert f[3]["sum_1m"] == 20 + 30 + 40
    assert [r["count_1h"] for r in f] == [1, 2, 3, 4, 5, 6]
    assert f[5]["secs_since_prev"] == 120
    assert f[0]["secs_since_prev"] == 1e9


def test_out_of_order_within_lateness_lands_in_event_time_order() -> None:
    state, out = run([txn(0, T0), txn(1, T0 + 100), txn(2, T0 + 50)])
    f = rows(out)[2]
    assert f["late"] is False
    assert f["count_1m"] == 2  # T0+50 sees T0 (within 60 s) but not T0+100
    assert f["secs_since_prev"] == 50
    assert list(state.ev_ts) == [T0, T0 + 50, T0 + 100]


def test_late_records_are_flagged_scored_and_not_learned() -> None:
    state, _ = run([txn(i, T0 + 3600 * i) for i in range(6)])
    n_before, ev_before = state.n, list(state.ev_ts)
    state, out = run([txn(99, T0 + 3600, amount=5000.0)], state)
    (f,) = rows(out)
    assert f["late"] is True
    assert state.n == n_before
    assert list(state.ev_ts) == ev_before


def test_duplicate_transaction_id_is_dead_lettered() -> None:
    _, out = run([txn(1, T0), txn(2, T0 + 5), txn(1, T0 + 9)])
    assert isinstance(out[2], DeadLetter)
    assert out[2].code == "duplicate"
    assert out[2].step == "features"


def test_habits_first_use_flags() -> None:
    _, out = run(
        [
            txn(0, T0),
            txn(1, T0 + 60),
            txn(2, T0 + 120, merchant_id="m2", country="FR", device_id="d9"),
        ]
    )
    f = rows(out)
    assert not any(f[0][k] for k in ("new_merchant", "new_country", "new_device"))  # no history yet
    assert not f[1]["new_merchant"]
    assert f[2]["new_merchant"]
    assert f[2]["new_country"]
    assert f[2]["new_device"]
    assert not f[2]["new_payment_method"]
    assert f[2]["distinct_merchants_24h"] == 2
    assert f[2]["distinct_countries_24h"] == 2


def test_amount_spike_scores_after_warmup_only() -> None:
    _, out = run(
        [txn(i, T0 + 3600 * i, amount=20.0 + i % 3) for i in range(10)]
        + [txn(10, T0 + 36000 + 60, amount=900.0)]
    )
    got = [r for r in out if isinstance(r, FeatureRow)]
    f = rows(out)
    assert f[2]["amount_z"] == 0.0  # warm-up
    assert f[-1]["amount_z"] > 5
    z = ZScoreDetector(0, ModelSettings()).score_then_learn(got)
    assert z[-1] > 0.8
    assert IqrDetector(0, ModelSettings()).score_then_learn(got)[-1] > 0.8
    assert max(z[:-1]) == 0.0


def test_travel_speed_between_geolocated_transactions() -> None:
    _, out = run([txn(0, T0, lat=52.52, lon=13.405), txn(1, T0 + 1800, lat=48.8566, lon=2.3522)])
    assert rows(out)[1]["travel_kmh"] == pytest.approx(877 * 2, rel=0.01)


def test_fast_trips_are_a_travel_habit() -> None:
    """Each jump faster than trusted counts for the user's later transactions; a flight
    does not; the count survives a pickle and a snapshot from before it restores as 0."""
    berlin, singapore = (52.52, 13.405), (1.35, 103.82)
    # 10,000 km in 30 min, twice (the jump's location is not trusted: Berlin stays the
    # user's last location, so the way back is no jump)
    hops = [berlin, singapore, berlin, singapore]
    txns = [txn(i, T0 + 1800 * i, lat=la, lon=lo) for i, (la, lo) in enumerate(hops)]
    txns.append(txn(4, T0 + 1800 * 4 + 86400, lat=1.30, lon=103.85))  # a day later, near
    state, out = run(txns)
    f = rows(out)
    assert [r["fast_trips_before"] for r in f] == [0, 0, 1, 1, 2]
    assert f[1]["travel_kmh"] > 900
    assert state.fast_trips == 2
    back = pickle.loads(pickle.dumps(state))
    assert back.fast_trips == 2
    old = UserState.__new__(UserState)
    old.__setstate__(state.__getstate__()[:12])  # as pickled before the count existed
    assert old.fast_trips == 0


def test_unusual_hour_against_the_users_habit() -> None:
    days = [txn(i, T0 + 86400 * i + 12 * 3600) for i in range(8)]  # always at noon
    _, out = run([*days, txn(8, T0 + 86400 * 8 + 3 * 3600)])
    f = rows(out)
    assert f[-2]["unusual_hour"] is False
    assert f[-1]["unusual_hour"] is True
    assert f[-1]["hour"] == 3


def test_long_event_time_gap_starts_the_user_afresh() -> None:
    p = FeatureParams.from_settings(
        replace(FeatureSettings(), idle_ttl=timedelta(days=1)), ValidationSettings()
    )
    _, out = run([txn(0, T0), txn(1, T0 + 3 * 86400)], p=p)
    assert rows(out)[1]["txn_count"] == 0


def test_state_is_bounded() -> None:
    p = FeatureParams.from_settings(
        replace(FeatureSettings(), max_events_per_user=50, recent_set_size=8), ValidationSettings()
    )
    txns = [
        txn(i, T0 + i, merchant_id=f"m{i}", device_id=f"d{i}", country="DE") for i in range(2000)
    ]
    state, _ = run(txns, p=p)
    assert len(state.ev_ts) == 50
    assert all(state.habits.count(kind) <= 8 for kind in range(5))
    assert len(state.habits.keys) <= 5 * 8
    assert len(state.recent_amt) <= 32
    # the duplicate horizon is by time: all 2,000 ids of the last 24h, 16 bytes each
    assert len(state.ids) == len(state.id_at) == 2000
    assert len(pickle.dumps(state)) < 4096 + 16 * 2000


def test_pickle_round_trip_continues_identically() -> None:
    first = [
        txn(i, T0 + 97 * i, amount=10.0 + i, merchant_id=f"m{i % 4}", lat=50.0, lon=8.0 + i / 100)
        for i in range(30)
    ]
    rest = [
        txn(100 + i, T0 + 3000 + 61 * i, amount=30.0 + 7 * i, merchant_id=f"m{i % 6}")
        for i in range(20)
    ]
    state, _ = run(first)
    restored = pickle.loads(pickle.dumps(state))
    _, a = run(rest, state)
    _, b = run(rest, restored)
    assert rows(a) == rows(b)


def test_duplicate_ids_are_kept_for_the_horizon_in_event_time_then_forgotten() -> None:
    hour = 3600.0
    state, out = run([txn(i, T0 + hour * i) for i in range(30)])  # 29 h, horizon 24 h
    assert len(state.ids) == 24  # ids seen in the last 24 h of the user's time (half-open)
    assert list(state.id_at) == sorted(state.id_at)
    # an id inside the horizon is a duplicate, one beyond it is not
    state, out = run([txn(10, T0 + hour * 30), txn(3, T0 + hour * 30 + 1)], state)
    assert isinstance(out[0], DeadLetter)
    assert out[0].code == "duplicate"
    assert isinstance(out[1], FeatureRow)


def test_duplicate_ids_per_user_are_capped() -> None:
    state = UserState(8)
    for i in range(MAX_IDS + 100):
        state.remember_id(i, T0 + i / 1000)
        state.forget_ids(T0 - 86400)  # as user_step does after each record
    assert len(state.ids) == len(state.id_at) == MAX_IDS
    assert state.ids[0] == 100  # the oldest went first
    assert len(pickle.dumps(state)) < 16 * MAX_IDS + 4096


def test_a_snapshot_from_before_the_time_horizon_still_loads() -> None:
    state, _ = run([txn(i, T0 + 60 * i) for i in range(5)])
    old = state.__getstate__()[:11]  # the previous layout: ids aligned with event times
    restored = UserState.__new__(UserState)
    restored.__setstate__(old)
    assert list(restored.ids) == list(state.ids)
    assert list(restored.id_at) == list(restored.ev_ts)
    _, out = run([txn(2, T0 + 400)], restored)
    assert isinstance(out[0], DeadLetter)

"""Extreme but valid inputs through every feature and detector: outputs stay finite.

Any amount in [0, largest float], any accepted timestamp, any lat/lon and
sequences of them (many in one window, one timestamp repeated, out of
order) must give finite features and scores in [0, 1], never an exception
(issue 13: three amounts of 1e308 in one minute crashed the score step).
"""

from __future__ import annotations

import copy
import math
import sys

from hypothesis import given, settings
from hypothesis import strategies as hs

from fraudflow.config.settings import FeatureSettings, ModelSettings, Settings
from fraudflow.operators.decide.ensemble import EnsembleParams, decide
from fraudflow.operators.detectors.hst import hst_inputs
from fraudflow.operators.detectors.registry import DETECTORS, new_detectors
from fraudflow.operators.features.user import FeatureParams, user_step, window_sum
from fraudflow.records import FeatureRow, Transaction
from fraudflow.state.user import UserState

MAX = sys.float_info.max
TINY = 5e-324  # the smallest subnormal
T0 = 1_767_225_600.0
P = FeatureParams.from_settings(FeatureSettings(), Settings().validation)
EXTREMES = (0.0, TINY, 2.2250738585072014e-308, 1.0, 1e308, MAX)


def txn(i: int, t: float, amount: float, lat: float = 52.5, lon: float = 13.4) -> Transaction:
    return Transaction(
        f"t{i}",
        "u1",
        amount,
        t,
        "USD",
        merchant_id=f"m{i % 3}",
        country="DE",
        device_id="d1",
        lat=lat,
        lon=lon,
    )


def sequences() -> dict[str, list[Transaction]]:
    """Named sequences of extreme records for one user."""
    out: dict[str, list[Transaction]] = {}
    out["1e308 x3 in a minute"] = [txn(i, T0 + i, 1e308) for i in range(3)]
    out["max float x600 in a minute"] = [txn(i, T0 + i / 10, MAX) for i in range(600)]
    out["same timestamp repeated"] = [txn(i, T0, MAX if i % 2 else TINY) for i in range(50)]
    out["mix in order"] = [txn(i, T0 + 7 * i, EXTREMES[i % 6]) for i in range(200)]
    out["mix out of order"] = [
        txn(i, T0 + 600 - 13 * (i % 9) + i, EXTREMES[(i * 5) % 6]) for i in range(200)
    ]
    out["late extremes"] = [txn(0, T0 + 3600, MAX)] + [txn(i, T0 + i, MAX) for i in range(1, 20)]
    out["poles and antimeridian"] = [
        txn(i, T0 + i, EXTREMES[i % 6], lat=(-90.0, 90.0, 0.0)[i % 3], lon=(-180.0, 180.0)[i % 2])
        for i in range(60)
    ]
    out["decades apart"] = [txn(0, 0.0, MAX), txn(1, T0, MAX), txn(2, T0 + 1e8, 0.0)]
    return out


def assert_finite_row(r: FeatureRow) -> None:
    for k, v in r.features.items():
        if isinstance(v, float):
            assert math.isfinite(v), (k, v)
    assert set(r.scores) == {d.name for d in DETECTORS}
    for k, s in r.scores.items():
        assert 0.0 <= s <= 1.0, (k, s)


def features_of(
    txns: list[Transaction], p: FeatureParams = P, now: float | None = None
) -> list[FeatureRow]:
    state: UserState | None = None
    rows = []
    for t in txns:
        state, r = user_step(state, t, p, now)
        assert isinstance(r, FeatureRow)
        rows.append(r)
    return rows


def test_window_sum_saturates_instead_of_overflowing() -> None:
    assert window_sum([1e308, 1e308], 1e308) == MAX
    assert window_sum([MAX] * 1000, MAX) == MAX
    assert window_sum([TINY], TINY) == 2 * TINY
    assert window_sum([], 0.0) == 0.0
    assert window_sum([1.5, 2.5], 3.0) == 7.0  # ordinary sums are exact as before


def score_rows(rows: list[FeatureRow], m: ModelSettings) -> None:
    """Every registered detector's raw and calibrated scores on ``rows``."""
    for name, d in new_detectors(0, m).items():
        raws = copy.deepcopy(d.detector).score_then_learn(rows)
        assert all(math.isfinite(x) for x in raws), name
        for r, s in zip(rows, d.score_then_learn(rows), strict=True):
            assert 0.0 <= s <= 1.0, name
            r.scores[name] = s


def test_every_feature_and_detector_stays_finite_on_extremes() -> None:
    m = Settings().replace(hst_warmup=20, hst_window=20).model
    ens = EnsembleParams.from_settings(Settings().ensemble)
    for (name, txns), now in [(x, n) for x in sequences().items() for n in (None, T0)]:
        rows = features_of(txns, now=now)  # T0: the records ahead of it are not learned
        score_rows(rows, m)
        for r in rows:
            for v in hst_inputs(r.features).values():
                assert 0.0 <= v <= 1.0, name
            assert_finite_row(r)
            d = decide(r, [], ens, rules_version="r", model_ver="m", now=T0)
            assert 0.0 <= d.score <= 1.0, name
            assert all(math.isfinite(s) for s in d.detector_scores.values()), name
            d.to_json()  # serialisable (no inf/nan to trip a sink)


def test_three_amounts_of_1e308_in_a_minute_saturate_the_window_sums() -> None:
    rows = features_of(sequences()["1e308 x3 in a minute"])
    assert rows[0].features["sum_1m"] == 1e308
    assert rows[1].features["sum_1m"] == MAX  # 2e308 is above the largest float
    assert rows[2].features["sum_1m"] == MAX
    assert rows[2].features["count_1m"] == 3


@settings(max_examples=60, deadline=None)
@given(
    hs.lists(
        hs.tuples(
            hs.one_of(
                hs.sampled_from(EXTREMES),
                hs.floats(min_value=0.0, max_value=MAX, allow_nan=False, allow_infinity=False),
            ),
            # event times from 1970 to 2100, many of them equal or close
            hs.one_of(hs.floats(0.0, 4.1e9), hs.integers(-120, 120).map(lambda d: T0 + d)),
            hs.floats(-90.0, 90.0),
            hs.floats(-180.0, 180.0),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_any_finite_amounts_and_times_give_finite_features_and_scores(
    recs: list[tuple[float, float, float, float]],
) -> None:
    txns = [txn(i, t, a, lat, lon) for i, (a, t, lat, lon) in enumerate(recs)]
    rows = features_of(
        txns, FeatureParams.from_settings(FeatureSettings(zscore_warmup=2), Settings().validation)
    )
    score_rows(rows, Settings().replace(hst_warmup=2, hst_window=4).model)
    ens = EnsembleParams.from_settings(Settings().ensemble)
    for r in rows:
        assert_finite_row(r)
        assert 0.0 <= decide(r, [], ens, rules_version="r", model_ver="m", now=T0).score <= 1.0

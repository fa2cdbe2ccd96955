"""The contract every registered detector keeps (issue 14), checked the same way for each.

- the same input gives the same scores (detectors are seeded);
- a pickle round trip mid-stream continues exactly as the detector that never stopped;
- every row is scored before it is learned from: a row's score does not depend on the row
  itself or on any later row (a batch scores as its rows one at a time, and a prefix of a
  batch scores as the whole batch did on those rows);
- no detector writes into the feature dict, and scores are in [0, 1];
- the state stays bounded: the snapshot does not grow with the rows seen;
- the registry is consistent: each detector has an ensemble weight and a rule feature.
"""

from __future__ import annotations

import copy
import math
import pickle
import random
from dataclasses import fields

import pytest

from fraudflow.config.settings import EnsembleSettings, Settings
from fraudflow.operators.detectors.base import Detector
from fraudflow.operators.detectors.calibrate import Calibrated
from fraudflow.operators.detectors.registry import BY_NAME, DETECTORS, new_detectors
from fraudflow.operators.features.catalogue import feature_catalogue
from fraudflow.operators.features.user import FeatureParams, user_step
from fraudflow.records import FeatureRow, Transaction
from fraudflow.state.user import UserState

T0 = 1_767_225_600.0
SETTINGS = Settings().replace(hst_warmup=50, hst_window=50, calibration_window=500)
# every registered detector, raw and as the shard runs it (with its calibrator)
NAMES = [f"{kind}:{d.name}" for kind in ("raw", "calibrated") for d in DETECTORS]


def rows(n: int, seed: int) -> list[FeatureRow]:
    """Feature rows as the feature step gives them (users with spikes and new devices)."""
    rnd = random.Random(seed)
    fp = FeatureParams.from_settings(SETTINGS.features, SETTINGS.validation)
    users: dict[str, UserState] = {}
    out = []
    for i in range(n):
        uid = f"u{rnd.randrange(25)}"
        spike = rnd.random() < 0.05
        txn = Transaction(
            f"t{seed}-{i}",
            uid,
            round(rnd.uniform(500, 5000) if spike else rnd.lognormvariate(3, 0.6), 2),
            T0 + 90.0 * i,
            "EUR",
            merchant_id=f"m{rnd.randrange(30)}",
            country=rnd.choice(["DE", "DE", "FR"]),
            device_id=f"d{uid}" if rnd.random() < 0.9 else f"x{i}",
        )
        users[uid], res = user_step(users.get(uid), txn, fp)
        assert isinstance(res, FeatureRow)
        out.append(res)
    return out


def make(name: str) -> Detector | Calibrated:
    kind, detector = name.split(":")
    if kind == "raw":
        return BY_NAME[detector](0, SETTINGS.model)
    return new_detectors(0, SETTINGS.model)[detector]


def score(d: Detector | Calibrated, rs: list[FeatureRow], batch: int = 40) -> list[float]:
    out: list[float] = []
    for i in range(0, len(rs), batch):
        out.extend(d.score_then_learn(rs[i : i + batch]))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_the_same_input_gives_the_same_scores(name: str) -> None:
    a, b = score(make(name), rows(1500, 1)), score(make(name), rows(1500, 1))
    assert a == b
    assert len(a) == 1500
    assert all(math.isfinite(s) for s in a)
    if name.startswith("calibrated:"):
        assert all(0.0 <= s <= 1.0 for s in a)
    assert any(s > 0.0 for s in a)  # the detector does fire on the spikes


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cut", [40, 600, 1440])
def test_a_pickle_round_trip_continues_identically(name: str, cut: int) -> None:
    rs = rows(1500, 2)
    unbroken = score(make(name), rs)
    before = make(name)
    assert score(before, rs[:cut]) == unbroken[:cut]
    after = pickle.loads(pickle.dumps(before, pickle.HIGHEST_PROTOCOL))
    assert score(after, rs[cut:]) == unbroken[cut:]


@pytest.mark.parametrize("name", NAMES)
def test_every_row_is_scored_before_it_is_learned(name: str) -> None:
    rs = rows(1500, 1)
    warm = make(name)
    score(warm, rs[:30])
    batch = rs[30:230]  # the trees fire here, just after their warm-up
    whole = copy.deepcopy(warm).score_then_learn(batch)
    assert len(set(whole)) >= 5  # not vacuous: the detector does score differently here
    one_by_one = score(copy.deepcopy(warm), batch, batch=1)
    assert whole == one_by_one
    for k in (1, 17, 199):
        assert copy.deepcopy(warm).score_then_learn(batch[:k]) == whole[:k]


@pytest.mark.parametrize("name", NAMES)
def test_no_detector_writes_into_the_features(name: str) -> None:
    rs = rows(300, 4)
    before = [copy.deepcopy((r.features, r.scores)) for r in rs]
    score(make(name), rs)
    assert [(r.features, r.scores) for r in rs] == before


@pytest.mark.parametrize("name", NAMES)
def test_the_state_stays_bounded(name: str) -> None:
    d = make(name)
    rs = rows(6000, 5)
    sizes = []
    for i in range(0, len(rs), 500):
        d.score_then_learn(rs[i : i + 500])
        sizes.append(len(pickle.dumps(d, pickle.HIGHEST_PROTOCOL)))
    half = len(sizes) // 2
    assert max(sizes[half:]) <= 1.1 * max(sizes[:half]), sizes


def test_the_registry_is_consistent() -> None:
    weights = {f.name for f in fields(EnsembleSettings)}
    catalogue = feature_catalogue(SETTINGS.features.windows)
    assert len(set(NAMES)) == len(NAMES)
    assert len({d.reason for d in DETECTORS}) == len(DETECTORS)
    for d in DETECTORS:
        assert f"weight_{d.name}" in weights
        assert catalogue[f"{d.name}_score"].type is float
        assert set(d.detail) <= set(catalogue)

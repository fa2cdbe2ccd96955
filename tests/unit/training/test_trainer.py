"""The trainer: risk features, training set at a cutoff, artifacts, promotion."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from fraudflow.training.model import TrainedModel
from fraudflow.training.risk import DAY, History, RiskParams, RiskTables, encode, risk_columns
from fraudflow.training.trainer import Frame, TrainParams, label_arrays, labels_at, train

T0 = 1_735_689_600.0  # 2025-01-01


def world(
    n: int = 6000, days: int = 40, seed: int = 1
) -> tuple[list[dict[str, Any]], dict[str, tuple[int, float]]]:
    """Fraud when amount is large at a 'bad' merchant, or at random (rare)."""
    rng = random.Random(seed)
    recs, labels = [], {}
    for i in range(n):
        ts = T0 + days * DAY * i / n
        merchant = f"m{rng.randrange(50)}"
        amount = rng.lognormvariate(3, 1)
        bad = merchant in ("m1", "m2", "m3") and rng.random() < 0.5
        fraud = int(bad or rng.random() < 0.003)
        if fraud:
            amount *= 3
        tid = f"t{i}"
        recs.append({
            "ts": ts, "transaction_id": tid, "user_id": f"u{rng.randrange(300)}",
            "merchant_id": merchant, "device_id": None, "country": None,
            "features": {"amount": amount, "hst_score": rng.random(), "rules_score": 0.0},
        })  # fmt: skip
        labels[tid] = (fraud, ts + 7 * DAY)
    return recs, labels


def test_risk_counts_are_windowed_and_shifted_by_the_delay() -> None:
    ts = np.array([0.0, DAY, 2 * DAY, 9 * DAY])
    vocab, codes = encode(["a", "a", "b", "a"])
    h = History(vocab, codes, ts, np.array([True, False, False, False]))
    p = RiskParams(fields=("merchant_id",), windows=(7,), delay=DAY, prior_strength=0.0)
    cols = risk_columns(p, {"merchant_id": h}, {"merchant_id": h.codes(["a", "b", "c"])},
                        np.full(3, 3 * DAY))  # fmt: skip
    # as of day 3 with a 1-day delay: transactions of [-5d, 2d): a has 2 (1 fraud), b none
    assert cols["risk_merchant_7d_frauds"].tolist() == [1.0, 0.0, 0.0]
    assert cols["risk_merchant_7d"][0] == pytest.approx(0.5)


def test_risk_tables_equal_the_point_in_time_features_at_the_cutoff() -> None:
    recs, labels = world(2000, 20)
    frame = Frame.from_records(recs)
    p = RiskParams(fields=("merchant_id", "user_id"), windows=(1, 7), delay=2 * DAY)
    cutoff = T0 + 15 * DAY
    y = labels_at(frame, label_arrays(frame, labels), cutoff, 14 * DAY)
    idx = np.flatnonzero(frame.ts < cutoff)
    hist = {f: History(frame.vocab[f], frame.codes[f][idx], frame.ts[idx], y[idx] == 1)
            for f in p.fields}  # fmt: skip
    tables = RiskTables.build(p, hist, cutoff)
    ents = {f: frame.entities(idx)[f] for f in p.fields}
    served = tables.columns(ents, len(idx))
    direct = risk_columns(p, hist, {f: frame.codes[f][idx] for f in p.fields},
                          np.full(len(idx), cutoff))  # fmt: skip
    for name in p.all_names:
        np.testing.assert_allclose(served[name], direct[name])


def test_labels_at_respects_the_cutoff_and_the_horizon() -> None:
    recs, labels = world(100, 30)
    frame = Frame.from_records(recs)
    cutoff = T0 + 20 * DAY
    y = labels_at(frame, label_arrays(frame, labels), cutoff, 1000 * DAY)
    known = frame.ts + 7 * DAY <= cutoff
    assert (y[~known] == -1).all()
    assert (y[known] >= 0).all()


def test_train_learns_ranks_and_round_trips_through_its_artifact() -> None:
    recs, labels = world()
    frame = Frame.from_records(recs)
    p = TrainParams(window=40 * DAY, holdout=5 * DAY, rounds=40, min_leaf=10,
                    risk=RiskParams(fields=("merchant_id", "user_id"), windows=(7,)))  # fmt: skip
    res = train(frame, labels, T0 + 40 * DAY, p)
    assert res.model is not None
    assert res.promoted
    assert res.metrics["average_precision"] > 0.5  # a learnable world: well above the base rate
    m = res.model
    again = TrainedModel.from_artifact(m.to_artifact(), m.model_text(), m.risk.tables)
    idx = np.arange(len(frame) - 200, len(frame))
    base = [dict(recs[i]["features"]) for i in idx]  # frame order is input order here
    ents = {f: [recs[i][f] for i in idx] for f in ("merchant_id", "user_id")}
    np.testing.assert_allclose(m.score_rows(base, ents), again.score_rows(base, ents))
    # deterministic: the same data trains the same model
    assert train(frame, labels, T0 + 40 * DAY, p).model.version == m.version  # type: ignore[union-attr]


def test_a_model_is_promoted_only_when_it_beats_the_current_one() -> None:
    recs, labels = world()
    frame = Frame.from_records(recs)
    p = TrainParams(window=40 * DAY, holdout=5 * DAY, rounds=40, min_leaf=10,
                    risk=RiskParams(fields=("merchant_id",), windows=(7,)))  # fmt: skip
    first = train(frame, labels, T0 + 40 * DAY, p)
    assert first.model is not None
    same = train(frame, labels, T0 + 40 * DAY, p, first.model)
    assert not same.promoted  # equal, not better
    assert same.metrics["current_average_precision"] == same.metrics["average_precision"]
    # not promoted: the serving model is republished with risk tables as of this cutoff
    assert same.refreshed is not None
    assert same.refreshed.version == first.model.version  # same booster, same cutoff
    assert same.refreshed.model_text() == first.model.model_text()
    assert same.refreshed.risk.cutoff == T0 + 40 * DAY


def test_no_labels_no_model() -> None:
    recs, _ = world(500, 10)
    res = train(Frame.from_records(recs), {}, T0 + 5 * DAY, TrainParams(horizon=1000 * DAY))
    assert res.model is None

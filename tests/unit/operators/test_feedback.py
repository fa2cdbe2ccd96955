"""Feedback: entity fraud rates, label handling, expiry, the supervised model, state."""

from __future__ import annotations

import copy
import pickle
import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from fraudflow.config.settings import FeatureSettings, FeedbackSettings
from fraudflow.operators.detectors import feedback as fb
from fraudflow.operators.detectors.feedback import FeedbackParams, apply_label, enrich, model_inputs
from fraudflow.operators.features.catalogue import feature_catalogue, feedback_features
from fraudflow.records import DeadLetter, FeatureRow, Label, Transaction
from fraudflow.state.feedback import DAY, EntityCounts, FeedbackState

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a day boundary
NOW = T0 + 100 * DAY  # wall clock for dead letters


def params(**kw: Any) -> FeedbackParams:
    fs = FeedbackSettings(feedback=True, **kw)
    return FeedbackParams.from_settings(fs, feature_catalogue(FeatureSettings().windows, fs))


def row(
    tid: str,
    ts: float,
    merchant: str | None = "m1",
    *,
    device: str | None = None,
    country: str | None = "DE",
    amount: float = 20.0,
) -> FeatureRow:
    t = Transaction(
        tid, "u1", amount, ts, "EUR", merchant_id=merchant, device_id=device, country=country
    )
    return FeatureRow(t, {"amount": amount, "hst_score": 0.1, "txn_count": 3, "hour": 12})


def label(tid: str, y: int, reported_at: float = T0) -> Label:
    return Label(tid, y, reported_at, value=b"raw:" + tid.encode(), topic="labels", partition=1)


def probe(st: FeedbackState, p: FeedbackParams, ts: float, merchant: str | None) -> dict[str, Any]:
    """The features a new row at ``merchant`` would get, without touching ``st``."""
    r = row("probe", ts, merchant)
    enrich(copy.deepcopy(st), r, p)
    return r.features


def test_params_from_settings() -> None:
    p = params()
    assert p.fields == (
        ("merchant_id", "merchant"),
        ("device_id", "device"),
        ("country", "country"),
    )
    assert p.windows == (("7d", 7), ("28d", 28))
    assert p.keep_days == 28
    assert p.horizon == 14 * DAY
    names = {n for n, _ in p.inputs}
    assert "supervised_score" not in names
    assert "hour" not in names
    assert "merchant_fraud_rate_28d" in names


def test_enrich_fills_every_feedback_feature() -> None:
    fs = FeedbackSettings(feedback=True)
    p = params()
    r = row("t1", T0)
    enrich(p.new_state(), r, p)
    assert {s.name for s in feedback_features(fs)} <= set(r.features)


def test_smoothed_rate_formula() -> None:
    m = 5.0
    p = params(entity_prior_strength=m)
    st = p.new_state()
    # day 0: m1 has 10 transactions (3 frauds), m2 has 20 (1 fraud; 9 confirmed legit,
    # 10 with no label yet); no device
    for i in range(10):
        enrich(st, row(f"a{i}", T0 + i, "m1"), p)
    for i in range(20):
        enrich(st, row(f"b{i}", T0 + 100 + i, "m2"), p)
    for i in range(10):
        assert apply_label(st, label(f"a{i}", int(i < 3)), p, NOW) is None
        assert apply_label(st, label(f"b{i}", int(i < 1)), p, NOW) is None
    p0 = 4 / 30
    f = probe(st, p, T0 + DAY + 5, "m1")
    for lab in ("7d", "28d"):
        assert f[f"merchant_fraud_rate_{lab}"] == pytest.approx((3 + m * p0) / (10 + m))
        assert f[f"merchant_frauds_{lab}"] == 3
        # absent device: no evidence of its own, the overall rate
        assert f[f"device_fraud_rate_{lab}"] == pytest.approx(p0)
        assert f[f"device_frauds_{lab}"] == 0
        # every transaction is in DE
        assert f[f"country_fraud_rate_{lab}"] == pytest.approx((4 + m * p0) / (30 + m))
    assert f["entity_risk"] == pytest.approx((3 + m * p0) / (10 + m) - p0)
    # a legit label moves nothing: every transaction of the window counts
    g = probe(st, p, T0 + DAY + 5, "m2")
    assert g["merchant_fraud_rate_28d"] == pytest.approx((1 + m * p0) / (20 + m))
    assert g["merchant_frauds_28d"] == 1
    new = probe(st, p, T0 + DAY + 5, "never-seen")
    assert new["merchant_fraud_rate_28d"] == pytest.approx(p0)
    assert new["merchant_frauds_28d"] == 0


def test_first_row_sees_no_evidence() -> None:
    p = params()
    r = row("t1", T0)
    enrich(p.new_state(), r, p)
    assert r.features["merchant_fraud_rate_28d"] == 0.0
    assert r.features["merchant_frauds_28d"] == 0
    assert r.features["entity_risk"] == 0.0
    assert r.features["supervised_score"] == 0.0


def test_windows_are_event_time_days() -> None:
    p = params()
    st = p.new_state()
    enrich(st, row("f", T0 + 3600, "m1"), p)  # day 0
    apply_label(st, label("f", 1), p, NOW)
    expect = {  # day of the probe: (frauds in 7d, frauds in 28d)
        0: (1, 1),
        6: (1, 1),
        7: (0, 1),
        27: (0, 1),
        28: (0, 0),
        40: (0, 0),
    }
    for day, (in7, in28) in expect.items():
        f = probe(st, p, T0 + day * DAY + 7200, "m1")
        assert (f["merchant_frauds_7d"], f["merchant_frauds_28d"]) == (in7, in28), day
    # the window moves with the row's event time, not with the wall clock or arrival
    for day in range(1, 29):
        enrich(st, row(f"x{day}", T0 + day * DAY, "other"), p)
    f = probe(st, p, T0 + 29 * DAY, "m1")
    assert f["merchant_frauds_28d"] == 0
    # a fraud confirmed late counts on its transaction's day
    enrich(st, row("g", T0 + 29 * DAY, "m1"), p)
    enrich(st, row("y", T0 + 36 * DAY, "other"), p)
    apply_label(st, label("g", 1), p, NOW)
    f = probe(st, p, T0 + 36 * DAY, "m1")
    assert (f["merchant_frauds_7d"], f["merchant_frauds_28d"]) == (0, 1)


def test_score_before_learn() -> None:
    m = 1.0
    p = params(entity_prior_strength=m)
    st = p.new_state()
    for i in range(4):
        enrich(st, row(f"t{i}", T0 + i, "m1"), p)
        apply_label(st, label(f"t{i}", int(i == 0)), p, NOW)
    a = row("a", T0 + 10, "m1")
    enrich(st, a, p)
    # a's own transaction is not among the evidence: 4 transactions, not 5
    p0 = 1 / 4
    assert a.features["merchant_fraud_rate_28d"] == pytest.approx((1 + m * p0) / (4 + m))
    before = dict(a.features)
    # a's own label does not reach a's features; it reaches the next row
    apply_label(st, label("a", 1), p, NOW)
    assert a.features == before
    b = row("b", T0 + 11, "m1")
    enrich(st, b, p)
    assert b.features["merchant_frauds_28d"] == 2
    p0 = 2 / 5
    assert b.features["merchant_fraud_rate_28d"] == pytest.approx((2 + m * p0) / (5 + m))


def _twins(p: FeedbackParams) -> tuple[FeedbackState, FeedbackState]:
    a, b = p.new_state(), p.new_state()
    for st in (a, b):
        for i in range(5):
            enrich(st, row(f"t{i}", T0 + i, "m1"), p)
        enrich(st, row("x", T0 + 9, "m2"), p)
        apply_label(st, label("x", 1), p, NOW)
    return a, b


def test_a_later_label_replaces_an_earlier_one() -> None:
    p = params()
    st, direct = _twins(p)
    assert apply_label(direct, label("t1", 0, reported_at=T0 + 200), p, NOW) is None
    assert apply_label(st, label("t1", 1, reported_at=T0 + 100), p, NOW) is None
    assert probe(st, p, T0 + 10, "m1")["merchant_frauds_28d"] == 1
    assert (st.frauds_learned, st.legit_learned) == (2, 0)
    # 1 -> 0: the counts are as if it had been legit from the start
    assert apply_label(st, label("t1", 0, reported_at=T0 + 200), p, NOW) is None
    assert st.entities.counts == direct.entities.counts
    after = probe(st, p, T0 + 10, "m1")
    assert after["merchant_frauds_28d"] == 0
    expected = probe(direct, p, T0 + 10, "m1")
    for k in expected:
        if "fraud" in k or k == "entity_risk":
            assert after[k] == expected[k], k
    assert (st.frauds_learned, st.legit_learned) == (2, 1)
    # an older verdict than the one applied is ignored
    assert apply_label(st, label("t1", 1, reported_at=T0 + 150), p, NOW) is None
    assert st.entities.counts == direct.entities.counts
    assert (st.frauds_learned, st.legit_learned) == (2, 1)
    # the same verdict again changes nothing
    assert apply_label(st, label("t1", 0, reported_at=T0 + 300), p, NOW) is None
    assert st.entities.counts == direct.entities.counts
    assert (st.frauds_learned, st.legit_learned) == (2, 1)
    # a newer fraud verdict counts once
    assert apply_label(st, label("t1", 1, reported_at=T0 + 400), p, NOW) is None
    f = probe(st, p, T0 + 10, "m1")
    assert f["merchant_frauds_28d"] == 1
    m = p.prior_strength
    assert f["merchant_fraud_rate_28d"] == pytest.approx((1 + m * 2 / 6) / (5 + m))


def test_label_for_unknown_transaction_is_dead_lettered() -> None:
    p = params()
    st = p.new_state()
    enrich(st, row("t1", T0), p)
    lab = Label("nope", 1, T0, value=b'{"raw": 1}', key=b"k", topic="labels", partition=2, offset=9)
    dead = apply_label(st, lab, p, NOW)
    assert isinstance(dead, DeadLetter)
    assert dead.code == "label_unknown_transaction"
    assert dead.step == "feedback"
    assert (dead.value, dead.key, dead.topic, dead.partition, dead.offset) == (
        b'{"raw": 1}',
        b"k",
        "labels",
        2,
        9,
    )
    assert dead.dead_at == NOW
    assert (st.frauds_learned, st.legit_learned) == (0, 0)
    assert probe(st, p, T0 + 1, "m1")["merchant_frauds_28d"] == 0


def test_unlabelled_row_past_the_horizon_is_learned_as_legit() -> None:
    m = 20.0
    p = params(label_horizon=timedelta(days=1), entity_prior_strength=m)
    st = p.new_state()
    enrich(st, row("x", T0, "m9"), p)
    apply_label(st, label("x", 1), p, NOW)
    enrich(st, row("old", T0, "m1"), p)
    enrich(st, row("edge", T0 + DAY, "m2"), p)  # exactly one horizon later: "old" still waits
    assert "old" in st.pending
    assert st.legit_learned == 0
    before = probe(st, p, T0 + DAY, "m1")
    enrich(st, row("new", T0 + DAY + 1, "m2"), p)  # event time, not the wall clock, moves it
    assert "old" not in st.pending
    assert set(st.pending) == {"edge", "new"}
    assert st.legit_learned == 1
    # it was counted when scored; leaving moves no count
    f = probe(st, p, T0 + DAY + 1, "m1")
    assert f["merchant_frauds_28d"] == before["merchant_frauds_28d"] == 0
    assert f["merchant_fraud_rate_28d"] == pytest.approx((0 + m / 4) / (1 + m))
    dead = apply_label(st, label("old", 1), p, NOW)
    assert isinstance(dead, DeadLetter)
    assert dead.code == "label_expired"
    assert dead.step == "feedback"
    assert st.frauds_learned == 1
    assert apply_label(st, label("edge", 1), p, NOW) is None


def test_a_labelled_row_that_leaves_is_not_learned_again() -> None:
    m = 20.0
    p = params(label_horizon=timedelta(days=1), entity_prior_strength=m)
    st = p.new_state()
    enrich(st, row("f", T0, "m1"), p)
    enrich(st, row("g", T0 + 1, "m1"), p)
    enrich(st, row("h", T0 + 2, "m3"), p)
    apply_label(st, label("f", 1), p, NOW)
    apply_label(st, label("g", 0), p, NOW)
    enrich(st, row("later", T0 + 3 * DAY, "m2"), p)
    assert not {"f", "g", "h"} & set(st.pending)
    assert (st.frauds_learned, st.legit_learned) == (1, 2)  # h learned as legit
    # f and g count once each at their merchant, f once as a fraud
    f = probe(st, p, T0 + 3 * DAY, "m1")
    assert f["merchant_frauds_28d"] == 1
    assert f["merchant_fraud_rate_28d"] == pytest.approx((1 + m / 4) / (2 + m))


def test_max_pending_bounds_pending() -> None:
    cap = 5
    p = params(max_pending=cap)
    st = p.new_state()
    for i in range(40):
        enrich(st, row(f"t{i}", T0 + i), p)
        assert len(st.pending) <= cap
        assert len(st.order) <= cap
        assert len(st.expired) + len(st.expired_old) <= 2 * cap
    assert set(st.pending) == {f"t{i}" for i in range(35, 40)}
    assert st.legit_learned == 35
    assert apply_label(st, label("t39", 1), p, NOW) is None
    late = apply_label(st, label("t34", 1), p, NOW)
    assert isinstance(late, DeadLetter)
    assert late.code == "label_expired"
    # long gone: no longer told apart from an unknown id
    gone = apply_label(st, label("t0", 1), p, NOW)
    assert isinstance(gone, DeadLetter)
    assert gone.code == "label_unknown_transaction"


def test_entity_counts_sweep_forgets_idle_entities() -> None:
    c = EntityCounts(keep_days=7)
    c.add("a", 0, 1, 0)
    c.add("b", 5, 2, 1)
    c.add("b", 1, 1, 0)
    assert len(c) == 2
    c.sweep(6)  # both have a day in (6 - 7, 6]
    assert len(c) == 2
    c.sweep(7)  # "a" last seen on day 0, outside (0, 7]
    assert set(c.counts) == {"b"}
    assert c.window("b", 7, 7) == (3, 1)
    c.sweep(12)
    assert len(c) == 0
    assert c.window("b", 12, 7) == (0, 0)


def test_entity_counts_keep_a_bounded_number_of_days() -> None:
    c = EntityCounts(keep_days=7)
    for day in range(100):
        c.add("a", day, 1, day % 2)
        assert len(c.counts["a"]) <= 8
    assert c.window("a", 99, 7) == (7, 4)


@given(
    hs.lists(
        hs.tuples(hs.sampled_from("abcde"), hs.integers(0, 40), hs.integers(0, 3)), max_size=60
    ),
    hs.integers(0, 10),
    hs.integers(1, 7),
)
def test_sweep_never_changes_a_window(
    adds: list[tuple[str, int, int]], ahead: int, days: int
) -> None:
    c = EntityCounts(keep_days=7)
    for key, day, n in adds:
        c.add(key, day, n, n // 2)
    today = max((d for _, d, _ in adds), default=0) + ahead
    before = {k: c.window(k, today, days) for k in "abcde"}
    c.sweep(today)
    assert {k: c.window(k, today, days) for k in "abcde"} == before
    assert all(max(d) > today - 7 for d in c.counts.values())


def test_idle_entities_leave_the_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fb, "SWEEP_ROWS", 10)
    p = params(max_pending=50)
    st = p.new_state()
    sizes = []
    i = 0
    for day in range(120):
        for _ in range(10):  # ten new merchants a day, never seen again
            enrich(st, row(f"t{i}", T0 + day * DAY + i % 10, f"m{i}", device=f"d{i}"), p)
            i += 1
        sizes.append(len(st.entities))
    # merchants and devices of the last 28 days (+1 for the sweep's lag), country and total
    assert max(sizes) <= 2 * 10 * 29 + 2
    assert sizes[-1] < sizes[40] + 5
    assert len(st.pending) <= 50


@pytest.mark.parametrize(
    ("frauds", "legit", "counts"),
    [
        (0, 0, False),
        (2, 10, False),
        (3, 2, False),  # enough frauds, too few legit
        (3, 0, False),
        (3, 3, True),
        (6, 4, True),
    ],
)
def test_supervised_score_waits_for_fraud_and_legit(frauds: int, legit: int, counts: bool) -> None:
    p = params(supervised_warmup=3)
    st = p.new_state()
    for i in range(frauds):
        enrich(st, row(f"f{i}", T0 + i, amount=900.0), p)
        apply_label(st, label(f"f{i}", 1), p, NOW)
    for i in range(legit):
        enrich(st, row(f"l{i}", T0 + 100 + i, amount=10.0), p)
        apply_label(st, label(f"l{i}", 0), p, NOW)
    assert (st.frauds_learned, st.legit_learned) == (frauds, legit)
    r = row("q", T0 + 1000, amount=900.0)
    enrich(st, r, p)
    s = r.features["supervised_score"]
    if counts:
        assert 0.0 < s <= 1.0
    else:
        assert s == 0.0, (frauds, legit, s)


def _stream(seed: int, n: int) -> list[tuple[str, Any]]:
    """Rows and labels in arrival order (labels a few rows after their transaction)."""
    rnd = random.Random(seed)
    items: list[tuple[str, Any]] = []
    waiting: list[Label] = []
    for i in range(n):
        m = f"m{rnd.randrange(6)}"
        bad = m == "m0" and rnd.random() < 0.6
        ts = T0 + i * 1800
        amount = rnd.lognormvariate(6 if bad else 3, 0.5)
        items.append(("row", row(f"t{i}", ts, m, device=f"d{rnd.randrange(30)}", amount=amount)))
        if rnd.random() < 0.5:
            waiting.append(label(f"t{i}", int(bad), reported_at=ts + 3600))
        while waiting and rnd.random() < 0.6:
            items.append(("label", waiting.pop(0)))
    items.append(("label", label("unknown", 1)))
    return items


def _feed(st: FeedbackState, p: FeedbackParams, items: list[tuple[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for kind, item in copy.deepcopy(items):
        if kind == "row":
            enrich(st, item, p)
            out.append(item.features)
        else:
            dead = apply_label(st, item, p, NOW)
            out.append(None if dead is None else dead.to_dict())
    return out


FAST = {"supervised_warmup": 5, "label_horizon": timedelta(days=2), "max_pending": 60}


def test_supervised_score_is_a_probability_after_warmup() -> None:
    p = params(**FAST)
    st = p.new_state()
    out = _feed(st, p, _stream(1, 400))
    scores = [f["supervised_score"] for f in out if isinstance(f, dict) and "amount" in f]
    assert min(st.frauds_learned, st.legit_learned) >= 5
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores) > 0.0
    for f in out:
        if isinstance(f, dict) and "amount" in f:
            assert all(0.0 <= f[k] <= 1.0 for k in f if "_fraud_rate_" in k)
            assert 0.0 <= f["entity_risk"] <= 1.0


def test_same_inputs_give_same_features() -> None:
    p = params(**FAST)
    items = _stream(2, 300)
    assert _feed(p.new_state(), p, items) == _feed(p.new_state(), p, items)


def test_state_pickles_to_an_equal_behaving_state() -> None:
    p = params(**FAST)
    items = _stream(3, 500)
    st = p.new_state()
    _feed(st, p, items[:300])
    assert st.model is not None
    assert st.frauds_learned >= 5
    assert st.expired
    restored = pickle.loads(pickle.dumps(st, pickle.HIGHEST_PROTOCOL))
    assert isinstance(restored, FeedbackState)
    assert set(restored.pending) == set(st.pending)
    assert list(restored.order) == list(st.order)
    assert restored.entities.counts == st.entities.counts
    assert (restored.frauds_learned, restored.legit_learned, restored.watermark) == (
        st.frauds_learned,
        st.legit_learned,
        st.watermark,
    )
    rest = [*items[300:], ("label", label("t0", 1)), ("label", label("t299", 0))]
    a = _feed(st, p, rest)
    b = _feed(restored, p, rest)
    assert a == b
    assert any(isinstance(f, dict) and f.get("supervised_score", 0.0) > 0 for f in a)


def test_model_inputs_are_finite_and_bounded() -> None:
    p = params()
    feats = {
        "amount": 1e308,
        "amount_z": float("inf"),
        "amount_iqr_excess": float("nan"),
        "hst_score": -1e9,
        "secs_since_prev": -5.0,
        "new_device": True,
    }
    x = model_inputs(feats, p)
    assert set(x) == {n for n, _ in p.inputs}
    assert all(-50.0 <= v <= 710.0 for v in x.values())
    assert x["amount_z"] == 0.0
    assert x["amount_iqr_excess"] == 0.0
    assert x["hst_score"] == -50.0
    assert x["secs_since_prev"] == 0.0
    assert x["new_device"] == 1.0
    assert x["zscore_score"] == 0.0  # missing features are 0

"""The detector report card: AP, ROC AUC and recall at the review rate, against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, recall_score, roc_auc_score

from fraudflow.backtest.metrics import compute, recall_at_share, report_card
from fraudflow.backtest.report import card_table


def _random(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[str]]]:
    """Labels, a continuous detector, a coarse detector (many ties) and rule hits."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05).astype(np.int64)
    good = rng.random(n) + 0.6 * y
    coarse = np.round(rng.random(n) * 0.7 + 0.3 * y, 1)
    rules = [
        (["r1"] if (y[i] and rng.random() < 0.5) or rng.random() < 0.02 else [])
        + (["r2"] if rng.random() < 0.03 else [])
        for i in range(n)
    ]
    return y, good, coarse, rules


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_card_matches_sklearn_on_random_data(seed: int) -> None:
    y, good, coarse, rules = _random(seed)
    score = 0.5 * good + 0.5 * coarse
    alerted = score >= np.quantile(score, 0.97)
    rows = {
        r.name: r
        for r in report_card(
            y, score, detectors={"good": good, "coarse": coarse}, rules=rules, alerted=alerted
        )
    }
    assert list(rows) == ["ensemble", "coarse", "good", "rule:r1", "rule:r2"]
    r1 = np.array([1.0 if "r1" in ids else 0.0 for ids in rules])
    r2 = np.array([1.0 if "r2" in ids else 0.0 for ids in rules])
    columns = {"ensemble": score, "good": good, "coarse": coarse, "rule:r1": r1, "rule:r2": r2}
    for name, col in columns.items():
        assert rows[name].average_precision == pytest.approx(
            average_precision_score(y, col), abs=1e-12
        )
        assert rows[name].roc_auc == pytest.approx(roc_auc_score(y, col), abs=1e-12)
    assert rows["ensemble"].flagged == int(alerted.sum())
    assert rows["rule:r1"].flagged == int(r1.sum())
    assert rows["good"].flagged is None
    assert (rows["ensemble"].kind, rows["good"].kind, rows["rule:r2"].kind) == (
        "ensemble",
        "detector",
        "rule",
    )


@given(seed=st.integers(0, 10_000), n=st.integers(1, 300), share=st.floats(0, 1))
@settings(max_examples=60, deadline=None)
def test_recall_at_share_without_ties_is_recall_of_the_top_rows(
    seed: int, n: int, share: float
) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    score = rng.permutation(n).astype(np.float64)  # distinct scores
    k = int(share * n)
    got = recall_at_share(y, score, k / n)
    if not y.any():
        assert got is None
        return
    top = np.zeros(n, dtype=bool)
    top[np.argsort(-score)[:k]] = True
    assert got == pytest.approx(recall_score(y, top, zero_division=0.0), abs=1e-12)


@given(
    n=st.integers(2, 300),
    hits=st.integers(0, 300),
    fraud_hits=st.integers(0, 300),
    frauds=st.integers(1, 300),
    share=st.floats(0, 1),
)
def test_recall_at_share_of_a_binary_detector_shares_its_ties(
    n: int, hits: int, fraud_hits: int, frauds: int, share: float
) -> None:
    """Hits rank first, then the rest; within each, frauds count in proportion."""
    hits, frauds = min(hits, n), min(frauds, n)
    fraud_hits = max(min(fraud_hits, hits, frauds), frauds - (n - hits))
    score = np.r_[np.ones(hits), np.zeros(n - hits)]
    y = np.r_[
        np.ones(fraud_hits), np.zeros(hits - fraud_hits),
        np.ones(frauds - fraud_hits), np.zeros(n - hits - frauds + fraud_hits),
    ].astype(np.int64)  # fmt: skip
    k = share * n
    if k <= hits:
        want = fraud_hits * k / hits if hits else 0.0
    else:
        want = fraud_hits + (frauds - fraud_hits) * (k - hits) / (n - hits)
    got = recall_at_share(y, score, share)
    assert got == pytest.approx(want / frauds, abs=1e-9)
    # the order of the rows does not matter
    perm = np.random.default_rng(n).permutation(n)
    assert recall_at_share(y[perm], score[perm], share) == pytest.approx(got, abs=1e-9)


def test_without_frauds_or_labels_only_volume_is_known() -> None:
    _y, good, _coarse, rules = _random(4, 300)
    alerted = good > 1.2
    rows = report_card(None, good, detectors={"good": good}, rules=rules, alerted=alerted)
    assert all(r.average_precision is r.roc_auc is r.recall_at_review is None for r in rows)
    assert rows[0].flagged == int(alerted.sum())
    assert recall_at_share(np.zeros(5, dtype=np.int64), np.arange(5.0), 0.5) is None


def test_compute_carries_the_card_into_tables_and_json() -> None:
    y, good, coarse, rules = _random(5, 500)
    score = good
    tiers = ["review" if s > 1.3 else "approve" for s in score]
    m = compute(
        y.tolist(), score.tolist(), tiers=tiers, rules=rules,
        users=["u"] * 500, days=["2025-01-01"] * 500, detectors={"coarse": coarse},
    )  # fmt: skip
    head, rows = card_table(m)
    assert head[4].startswith("recall at review rate")
    assert [r[0] for r in rows][:2] == ["ensemble", "coarse"]
    js = m.to_dict()["report_card"]
    assert js["labelled"] is True
    assert js["rows"][1]["roc_auc"] == pytest.approx(roc_auc_score(y, coarse), abs=1e-6)
    alert_share = sum(t == "review" for t in tiers) / 500
    assert js["rows"][0]["recall_at_review"] == pytest.approx(
        recall_at_share(y, score, alert_share), abs=1e-6
    )
    m.card_labelled = False
    head, _rows = card_table(m)
    assert "no labels" in head[0]

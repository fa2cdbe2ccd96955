"""Backtest metrics against scikit-learn and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

from fraudflow.backtest.evaluation import read_jsonl
from fraudflow.backtest.metrics import (
    average_precision,
    card_precision_at_k,
    compute,
    precision_at_k,
    recall_at_k,
    roc_auc,
    rule_stats,
)
from fraudflow.generator.stream import produce_to_file


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    """Labels of a generated file and a rough score (log amount, rounded: many ties)."""
    d = tmp_path_factory.mktemp("gen")
    produce_to_file(d / "in.jsonl", 5000, users=300, seed=3, truth=d / "truth.jsonl")
    recs = list(read_jsonl(d / "truth.jsonl"))
    y = np.array([r["label"] for r in recs])
    rng = np.random.default_rng(3)
    score = np.round(rng.random(y.size) * 0.5 + 0.4 * y, 2)
    return y, score


def test_auc_and_ap_match_sklearn_on_generated_labels(
    generated: tuple[np.ndarray, np.ndarray],
) -> None:
    y, score = generated
    assert 0 < y.sum() < y.size
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert average_precision(y, score) == pytest.approx(
        average_precision_score(y, score), abs=1e-12
    )


@pytest.mark.parametrize("seed", range(5))
def test_auc_and_ap_match_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(400) < 0.1).astype(int)
    y[0], y[1] = 0, 1
    score = rng.integers(0, 8, 400) / 8 + 0.2 * y
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert average_precision(y, score) == pytest.approx(
        average_precision_score(y, score), abs=1e-12
    )


def test_one_class_gives_none() -> None:
    assert roc_auc([0, 0], [0.1, 0.2]) is None
    assert average_precision([0, 0], [0.1, 0.2]) is None
    assert recall_at_k([0, 0], [0.1, 0.2], 1) is None


def test_at_k() -> None:
    y = [0, 1, 0, 1, 0]
    s = [0.9, 0.8, 0.1, 0.7, 0.2]
    assert precision_at_k(y, s, 2) == 0.5
    assert precision_at_k(y, s, 3) == pytest.approx(2 / 3)
    assert recall_at_k(y, s, 2) == 0.5
    assert recall_at_k(y, s, 3) == 1.0
    assert precision_at_k(y, s, 100) == 0.4  # fewer rows than K: all of them


def test_tier_confusion_matches_sklearn(generated: tuple[np.ndarray, np.ndarray]) -> None:
    y, score = generated
    tiers = ["block" if s >= 0.85 else "review" if s >= 0.5 else "approve" for s in score]
    n = y.size
    m = compute(
        y.tolist(), score.tolist(), tiers=tiers, rules=[[]] * n, users=["u"] * n, days=["d"] * n
    )
    alerted = score >= 0.5
    assert m.review.precision == pytest.approx(precision_score(y, alerted))
    assert m.review.recall == pytest.approx(recall_score(y, alerted))
    assert m.block.recall == pytest.approx(recall_score(y, score >= 0.85))
    assert m.alert_rate == pytest.approx(alerted.mean())
    assert m.alerts_per_day == {"d": int(alerted.sum())}


def test_rule_stats_only_this_rule() -> None:
    s = rule_stats([1, 1, 0, 1], [["a"], ["a", "b"], ["b"], ["b", "b"]])
    assert (s["a"].hits, s["a"].fraud_hits, s["a"].only_this_rule) == (2, 2, 1)
    assert (s["b"].hits, s["b"].fraud_hits, s["b"].only_this_rule) == (3, 2, 1)
    assert s["b"].precision == pytest.approx(2 / 3)


def test_card_precision_ranks_users_per_day() -> None:
    # day 1: users a (max 0.9, fraud), b (0.8, clean), c (0.1, fraud); K=2 -> 1/2
    # day 2: user a alone, clean -> 0
    y = [1, 0, 0, 1, 0]
    s = [0.9, 0.2, 0.8, 0.1, 0.99]
    users = ["a", "a", "b", "c", "a"]
    days = ["1", "1", "1", "1", "2"]
    assert card_precision_at_k(y, s, users, days, k=2) == {"1": 0.5, "2": 0.0}

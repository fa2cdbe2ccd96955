"""AlertBudget: the review share stays within budget; blocks and forced tiers are kept."""

from __future__ import annotations

import copy
import pickle
import random
from typing import Any

import pytest

from fraudflow.operators.decide.budget import MIN_SCORES, AlertBudget
from fraudflow.records import Decision, Transaction

T0 = 1_767_225_600.0
REVIEW, BLOCK = 0.3, 0.9


def decision(i: int, score: float, rule_tier: str | None = None) -> Decision:
    """What the ensemble gives: the tier of the score, raised by a rule's forced tier."""
    tier = "block" if score >= BLOCK else "review" if score >= REVIEW else "approve"
    if rule_tier == "block" or (rule_tier == "review" and tier == "approve"):
        tier = rule_tier
    hits: list[dict[str, Any]] = [
        {"id": "other", "score": 0.1, "tier": None, "severity": "low"},
    ]
    if rule_tier is not None:
        hits.append({"id": "forcing", "score": 0.1, "tier": rule_tier, "severity": "high"})
    return Decision(
        alert_id=f"a{i}",
        txn=Transaction(f"t{i}", "u1", 10.0, T0 + i, "USD"),
        score=score,
        tier=tier,
        detector_scores={},
        rule_hits=hits,
        reasons=[],
        rules_version="r1",
        model_version="m1",
        review_threshold=REVIEW,
    )


def stream(n: int, seed: int) -> list[Decision]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        u = rnd.random()
        rule_tier = "review" if u < 0.02 else "block" if u < 0.03 else None
        out.append(decision(i, rnd.betavariate(2, 3), rule_tier))
    return out


def test_min_scores() -> None:
    assert AlertBudget(0.01, 100).min_scores == 100
    assert AlertBudget(0.01, 50_000).min_scores == MIN_SCORES


@pytest.mark.parametrize(("budget", "window"), [(0.02, 1000), (0.05, 2000), (0.1, 500)])
def test_review_share_stays_within_budget(budget: float, window: int) -> None:
    b = AlertBudget(budget, window)
    given = stream(20_000, seed=int(budget * 1000))
    before = [d.tier for d in given]
    out = [b.apply(d) for d in given]
    warm = min(window, MIN_SCORES)
    after = out[warm:]
    unforced = [
        (t0, d) for t0, d in zip(before[warm:], after, strict=True) if len(d.rule_hits) == 1
    ]
    # the ensemble alone would flood review: the budget has work to do
    assert sum(t0 == "review" for t0, _ in unforced) / len(unforced) > 5 * budget
    kept = sum(t0 == "review" and d.tier == "review" for t0, d in unforced) / len(after)
    assert kept <= budget + 0.01
    assert kept >= budget / 2  # it holds reviews back, it does not stop them all
    # nothing is lowered during warm-up
    assert [d.tier for d in out[:warm]] == before[:warm]
    assert all(d.review_threshold == REVIEW for d in out[:warm])


def test_blocks_and_forced_tiers_are_never_lowered() -> None:
    b = AlertBudget(0.01, 500)
    given = stream(10_000, seed=7)
    before = [d.tier for d in given]
    out = [b.apply(d) for d in given]
    lowered = 0
    for t0, d in zip(before, out, strict=True):
        forced = [h["tier"] for h in d.rule_hits if h["tier"]]
        if t0 == "block" or forced:
            assert d.tier == t0
        elif t0 != d.tier:
            assert (t0, d.tier) == ("review", "approve")
            lowered += 1
        if t0 == "approve":
            assert d.tier == "approve"  # never raised
    assert lowered > 1000
    # a forced review below the raised threshold keeps its tier
    low = decision(10_001, 0.05, "review")
    assert b.apply(low).tier == "review"
    assert low.score < low.review_threshold


def test_review_threshold_is_recorded() -> None:
    b = AlertBudget(0.05, 1000)
    out = [b.apply(d) for d in stream(5000, seed=3)]
    after = out[1000:]
    assert all(d.review_threshold >= REVIEW for d in after)
    assert max(d.review_threshold for d in after) > 0.6  # the quantile, above the configured
    for d in after:
        unforced = len(d.rule_hits) == 1
        if d.tier == "review" and unforced:
            assert d.score >= d.review_threshold
        if d.tier == "approve" and unforced and d.score >= REVIEW:
            assert d.score < d.review_threshold


def test_the_configured_threshold_is_a_floor() -> None:
    b = AlertBudget(0.5, 200)  # the median of low scores is below the configured threshold
    out = [b.apply(decision(i, 0.01 * (i % 20))) for i in range(1000)]
    assert all(d.review_threshold == REVIEW for d in out)
    assert all(d.tier == ("review" if d.score >= REVIEW else "approve") for d in out)


def test_a_decision_does_not_meet_its_own_score() -> None:
    # after warm-up on low scores, one high score is above the quantile of what came before
    b = AlertBudget(0.01, 100)
    for i in range(100):
        b.apply(decision(i, 0.1))
    d = b.apply(decision(100, 0.5))
    assert d.tier == "review"
    assert d.review_threshold == REVIEW


def test_tied_scores_do_not_flood_review() -> None:
    """A broad rule with a fixed score gives many equal scores: the share still holds."""
    rnd = random.Random(5)
    b = AlertBudget(0.05, 1000)
    out = [b.apply(decision(i, 0.6 if rnd.random() < 0.3 else 0.1)) for i in range(5000)]
    share = sum(d.tier == "review" for d in out[1000:]) / 4000
    assert share <= 0.05 + 0.01


def test_pickle_round_trip_behaves_the_same() -> None:
    b = AlertBudget(0.05, 1000)
    given = stream(3000, seed=11)
    for d in given[:1500]:
        b.apply(d)
    restored = pickle.loads(pickle.dumps(b, pickle.HIGHEST_PROTOCOL))
    assert isinstance(restored, AlertBudget)
    assert (restored.seen, restored.min_scores) == (b.seen, b.min_scores)
    rest = given[1500:]
    a_out = [b.apply(d) for d in copy.deepcopy(rest)]
    r_out = [restored.apply(d) for d in copy.deepcopy(rest)]
    assert [(d.tier, d.review_threshold) for d in a_out] == [
        (d.tier, d.review_threshold) for d in r_out
    ]
    assert b.quantile.get() == restored.quantile.get()

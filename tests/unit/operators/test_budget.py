"""AlertBudget: the review tier holds the budget's share; blocks and must-review rules are kept."""

from __future__ import annotations

import copy
import pickle
import random

import pytest

from fraudflow.operators.decide.budget import MIN_SCORES, AlertBudget
from fraudflow.records import TIERS, Decision, RuleHit, Transaction

T0 = 1_767_225_600.0
REVIEW, BLOCK = 0.3, 0.9


def decision(
    i: int, score: float, rule_tier: str | None = None, must_review: bool = False
) -> Decision:
    """What the ensemble gives: the tier of the score, raised by a rule's forced tier."""
    tier = "block" if score >= BLOCK else "review" if score >= REVIEW else "approve"
    if rule_tier == "block" or (rule_tier == "review" and tier == "approve"):
        tier = rule_tier
    hits = [RuleHit("other", 0.1, None, "low", "", {})]
    if rule_tier is not None:
        hits.append(RuleHit("forcing", 0.1, rule_tier, "high", "", {}, must_review))
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


def stream(n: int, seed: int, must_review: bool = False) -> list[Decision]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        u = rnd.random()
        rule_tier = "review" if u < 0.02 else "block" if u < 0.03 else None
        out.append(decision(i, rnd.betavariate(2, 3), rule_tier, must_review))
    return out


def budgeted(b: AlertBudget, given: list[Decision]) -> tuple[list[str], list[Decision]]:
    before = [d.tier for d in given]
    return before, [b.apply(d) for d in given]


def test_min_scores() -> None:
    assert AlertBudget(0.01, 100).min_scores == 100
    assert AlertBudget(0.01, 50_000).min_scores == MIN_SCORES


@pytest.mark.parametrize(("budget", "window"), [(0.02, 1000), (0.05, 2000), (0.1, 500)])
@pytest.mark.parametrize("shape", [(2, 3), (1, 30)])  # a flood, and a quiet population
def test_review_share_is_the_budget(budget: float, window: int, shape: tuple[int, int]) -> None:
    """On scores that would flood review and on scores that would rarely reach it, the
    review tier holds the budget's share (no rule forces a tier here)."""
    rnd = random.Random(int(budget * 1000))
    b = AlertBudget(budget, window, BLOCK)
    given = [decision(i, rnd.betavariate(*shape)) for i in range(20_000)]
    before, out = budgeted(b, given)
    warm = min(window, MIN_SCORES)
    share = sum(d.tier != "approve" for d in out[warm:]) / len(out[warm:])
    assert abs(share - budget) <= 0.2 * budget
    natural = sum(t != "approve" for t in before[warm:]) / len(out[warm:])
    assert abs(natural - budget) > 0.2 * budget  # the configured threshold alone would not
    # nothing changes during warm-up
    assert [d.tier for d in out[:warm]] == before[:warm]
    assert all(d.review_threshold == REVIEW for d in out[:warm])


def test_blocks_are_kept_and_only_must_review_rules_force_a_tier() -> None:
    b = AlertBudget(0.01, 500, BLOCK)
    given = stream(10_000, seed=7)
    given[5000:] = stream(5000, seed=8, must_review=True)
    before, out = budgeted(b, given)
    for i, (t0, d) in enumerate(zip(before, out, strict=True)):
        if i < 500:
            continue
        forcing = [h for h in d.rule_hits if h.tier]
        if d.score >= BLOCK:
            assert d.tier == "block"
        elif forcing and i >= 5000:
            assert d.tier == max(t0, forcing[0].tier, key=TIERS.index)  # kept over budget
        else:
            assert d.tier == ("review" if d.score > d.review_threshold else "approve")
    # a forced review of an ordinary rule competes: below the quantile it is not reviewed
    low = decision(10_001, 0.05, "review")
    assert b.apply(low).tier == "approve"
    low = decision(10_002, 0.05, "review", must_review=True)
    assert b.apply(low).tier == "review"


def test_review_threshold_is_the_quantile() -> None:
    b = AlertBudget(0.05, 1000, BLOCK)
    _, out = budgeted(b, stream(5000, seed=3))
    after = out[1000:]
    assert max(d.review_threshold for d in after) > 0.6  # above the configured threshold
    for d in after:
        if d.score < BLOCK:
            assert (d.tier == "review") == (d.score > d.review_threshold)


def test_a_decision_does_not_meet_its_own_score() -> None:
    # after warm-up on low scores, one high score is above the quantile of what came before
    b = AlertBudget(0.01, 100, BLOCK)
    for i in range(100):
        b.apply(decision(i, 0.1))
    d = b.apply(decision(100, 0.5))
    assert d.tier == "review"
    assert d.review_threshold == pytest.approx(0.1)


def test_tied_scores_do_not_flood_review() -> None:
    """A broad rule with a fixed score gives many equal scores: the share still holds."""
    rnd = random.Random(5)
    b = AlertBudget(0.05, 1000, BLOCK)
    out = [b.apply(decision(i, 0.6 if rnd.random() < 0.3 else 0.1)) for i in range(5000)]
    share = sum(d.tier == "review" for d in out[1000:]) / 4000
    assert share <= 0.05 + 0.01


def test_pickle_round_trip_behaves_the_same() -> None:
    b = AlertBudget(0.05, 1000, BLOCK)
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

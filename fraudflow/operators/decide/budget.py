"""An alert budget: the review tier holds a set share of recent decisions.

Once the shard has seen ``min(window, 1000)`` scores, a decision is reviewed
when its score is above the ``1 - budget`` quantile of the shard's last
``window`` scores (river's exact rolling quantile), whatever the configured
review threshold: the queue has the size the operator chose on any data, an
unfamiliar population cannot flood it and a quiet one still fills it with its
most suspicious share. A score must be *above* the quantile, so many equal
scores (a broad rule's fixed score) cannot flood it either. Blocks stay driven
by high-confidence evidence (the block threshold). Rule hits compete through
their score like any evidence; only a rule marked ``must_review`` (a policy:
deny lists, compliance) keeps its tier over the budget. Before warm-up the
ensemble's tiers stand.
"""

from __future__ import annotations

from river import stats

from fraudflow.records import TIER_RANK, TIERS, Decision

MIN_SCORES = 1000


class AlertBudget:
    """One shard's budget state (snapshotted with the step)."""

    __slots__ = ("block", "min_scores", "quantile", "seen")

    def __init__(self, budget: float, window: int, block: float = 1.0) -> None:
        self.quantile = stats.RollingQuantile(q=1.0 - budget, window_size=window)
        self.seen = 0
        self.min_scores = min(window, MIN_SCORES)
        self.block = block  # the block threshold (set by the step from the settings)

    def apply(self, d: Decision) -> Decision:
        """Score first, then learn: the threshold a decision meets excludes its own score."""
        if self.seen >= self.min_scores:
            q = self.quantile.get() or 0.0
            d.review_threshold = q
            rank = 2 if d.score >= self.block else 1 if d.score > q else 0
            forced = max(
                (TIER_RANK[h.tier] for h in d.rule_hits if h.tier and h.must_review),
                default=0,
            )
            d.tier = TIERS[max(rank, forced)]
        self.quantile.update(d.score)
        self.seen += 1
        return d

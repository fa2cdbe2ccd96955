"""An alert budget: at most a given share of recent decisions at the review tier.

The review threshold in force is the higher of the configured one and the
``1 - budget`` quantile of the shard's last ``window`` scores (river's
exact rolling quantile); a review must score above the quantile, so a shift
that raises every score, or many equal scores, cannot flood the review
queue. Blocks and tiers forced by a rule are kept. The quantile counts once
``min(window, 1000)`` scores have been seen.
"""

from __future__ import annotations

from river import stats

from fraudflow.records import TIER_RANK, Decision

MIN_SCORES = 1000


class AlertBudget:
    """One shard's budget state (snapshotted with the step)."""

    __slots__ = ("min_scores", "quantile", "seen")

    def __init__(self, budget: float, window: int) -> None:
        self.quantile = stats.RollingQuantile(q=1.0 - budget, window_size=window)
        self.seen = 0
        self.min_scores = min(window, MIN_SCORES)

    def apply(self, d: Decision) -> Decision:
        """Score first, then learn: the threshold a decision meets excludes its own score."""
        if self.seen >= self.min_scores:
            q = self.quantile.get() or 0.0
            d.review_threshold = max(d.review_threshold, q)
            forced = max((TIER_RANK[h["tier"]] for h in d.rule_hits if h["tier"]), default=0)
            # at or below the quantile is over budget: ties (a rule's fixed score) included
            if d.tier == "review" and d.score <= q and forced < TIER_RANK["review"]:
                d.tier = "approve"
        self.quantile.update(d.score)
        self.seen += 1
        return d

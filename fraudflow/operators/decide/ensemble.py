"""Combine detector scores and rule hits into one decision with reasons.

The score is a weighted noisy-OR, ``1 - prod(1 - w_i * s_i)``: any one strong
signal can raise a review on its own, and independent weak signals add up.
Rules combine the same way among themselves before their weight applies. A
rule may also force a minimum tier. Reasons are the largest contributions,
each with the feature values behind it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from fraudflow.config.settings import EnsembleSettings, Settings
from fraudflow.operators.detectors.registry import DETECTORS
from fraudflow.records import TIER_RANK, TIERS, Decision, FeatureRow, Reason, RuleHit, alert_id

# detector -> (reason code, feature values shown as its detail): the registry's detectors
# and a trained model's
REASONS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{d.name: (d.reason, d.detail) for d in DETECTORS},
    # a trained model (docs/training.md)
    "model": ("TRAINED_MODEL", ("amount", "hst_score", "zscore_score", "iqr_score")),
}
MODEL_SCORE = "model_score"  # the trained model's probability, in the decision's features


@dataclass(frozen=True)
class EnsembleParams:
    weights: dict[str, float]
    weight_rules: float
    review: float
    block: float
    top: int

    @classmethod
    def from_settings(cls, e: EnsembleSettings) -> EnsembleParams:
        return cls(
            weights={d.name: getattr(e, f"weight_{d.name}") for d in DETECTORS},
            weight_rules=e.weight_rules,
            review=e.review_threshold,
            block=e.block_threshold,
            top=e.top_reasons,
        )


def model_version(settings: Settings) -> str:
    """Hash of everything that shapes a score except the rules (features, models, ensemble)."""
    parts = {
        "features": asdict(settings.features),
        "validation": asdict(settings.validation),
        "model": asdict(settings.model),
        "ensemble": asdict(settings.ensemble),
    }
    blob = orjson.dumps(parts, default=str, option=orjson.OPT_SORT_KEYS)
    return "m-" + hashlib.blake2b(blob, digest_size=6).hexdigest()


def tier_for(score: float, p: EnsembleParams) -> str:
    """The tier a score falls in.

    >>> p = EnsembleParams({}, 1.0, review=0.5, block=0.8, top=3)
    >>> tier_for(0.2, p), tier_for(0.5, p), tier_for(0.9, p)
    ('approve', 'review', 'block')
    """
    if score >= p.block:
        return "block"
    if score >= p.review:
        return "review"
    return "approve"


def _round(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


def decide(
    row: FeatureRow,
    hits: Sequence[RuleHit],
    p: EnsembleParams,
    *,
    rules_version: str,
    model_ver: str,
    now: float,
    view: dict[str, Any] | None = None,
    trained: float | None = None,
) -> Decision:
    """The ensemble's verdict on one scored feature row.

    ``view``: ``row.view()`` when the caller has it already (the rules read it); it becomes
    the decision's features. ``trained``: a trained model's probability for the row
    (training hook): it then ranks alone, since the detector and rule scores are among its
    inputs; rules still force tiers and give reasons.
    """
    f = row.view() if view is None else view
    scores = dict(row.scores)
    contributions: list[Reason] = []
    keep = 1.0
    if trained is not None:
        f[MODEL_SCORE] = trained
    combined = scores if trained is None else {"model": trained}
    for name, s in combined.items():
        c = min(1.0, p.weights.get(name, 1.0) * s)
        keep *= 1.0 - c
        if c > 0.0:
            code, shown = REASONS[name]
            detail = {k: _round(f[k]) for k in shown if k in f}
            contributions.append(Reason(code, c, detail))
    rule_keep = 1.0
    forced = 0
    for h in hits:
        rule_keep *= 1.0 - h.score
        if h.tier is not None:
            forced = max(forced, TIER_RANK[h.tier])
        c = p.weight_rules * h.score
        contributions.append(
            Reason(
                f"RULE:{h.rule_id}",
                c,
                {"description": h.description, **{k: _round(v) for k, v in h.values.items()}},
            )
        )
    if trained is not None:
        scores["model"] = trained
    rules_score = 1.0 - rule_keep
    if trained is None:  # a trained model has the rule score among its inputs already
        keep *= 1.0 - p.weight_rules * rules_score
    score = min(1.0, max(0.0, 1.0 - keep if trained is None else float(trained)))
    scores["rules"] = rules_score
    tier = TIERS[max(TIER_RANK[tier_for(score, p)], forced)]
    contributions.sort(key=lambda r: (-r.contribution, r.code))
    txn = row.txn
    return Decision(
        alert_id=alert_id(txn.user_id, txn.transaction_id, model_ver, rules_version),
        txn=txn,
        score=score if math.isfinite(score) else 1.0,
        tier=tier,
        detector_scores=scores,
        rule_hits=list(hits),
        reasons=contributions[: p.top],
        rules_version=rules_version,
        model_version=model_ver,
        features=f,
        processed_at=now,
        late=bool(f.get("late", False)),
        review_threshold=p.review,
    )

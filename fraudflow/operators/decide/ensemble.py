"""Combine detector scores and rule hits into one decision with reasons.

Detectors arrive calibrated (operators/detectors/calibrate.py): each score is
``1 - p``, ``p`` the score's tail probability in the shard's recent traffic.
The detector evidence is the strongest of them, each tail probability raised
to the detector's evidence weight (``min_i p_i ** w_i``), turned into a
probability without labels by the Sellke-Bayarri-Berger bound on the Bayes
factor, ``BF <= 1 / (-e p ln p)``, at a prior (:func:`evidence`). Rules combine
as a noisy-OR of their scores (set a rule's score from the precision a
backtest measures for it), and the two as ``1 - (1 - D)(1 - w_rules R)``. A
rule may also force a minimum tier. Reasons are the largest contributions,
each with the feature values behind it. Issue 16's study (docs/benchmarks.md,
"Detection study") chose this over Fisher, rank and equal-weight min-p
combinations, which let weak detectors crowd the top on sparse data.
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
    prior: float = 0.1

    @classmethod
    def from_settings(cls, e: EnsembleSettings) -> EnsembleParams:
        return cls(
            weights={d.name: getattr(e, f"weight_{d.name}") for d in DETECTORS},
            weight_rules=e.weight_rules,
            review=e.review_threshold,
            block=e.block_threshold,
            top=e.top_reasons,
            prior=e.detector_prior,
        )


INV_E = 1.0 / math.e
MIN_REASON = 0.01  # weaker detector evidence is not listed as a reason


def evidence(p: float, prior: float) -> float:
    """A tail probability as evidence in [0, 1): the posterior at ``prior`` with the bound
    ``BF = 1 / (-e p ln p)`` (1 for ``p >= 1/e``), rescaled so that no evidence is 0.

    >>> evidence(0.5, 0.1), round(evidence(1e-3, 0.1), 3), round(evidence(1e-5, 0.1), 4)
    (0.0, 0.839, 0.9969)
    """
    if p >= INV_E:
        return 0.0
    if p <= 0.0:
        return 1.0
    bf = -1.0 / (math.e * p * math.log(p))
    post = prior * bf / (1.0 - prior + prior * bf)
    return (post - prior) / (1.0 - prior)


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


def _reason(name: str, c: float, f: dict[str, Any]) -> Reason:
    code, shown = REASONS[name]
    return Reason(code, c, {k: _round(f[k]) for k in shown if k in f})


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
    if trained is None:  # the strongest detector's evidence
        strongest = 0.0
        for name, s in scores.items():
            w = p.weights.get(name, 1.0)
            if w <= 0.0:
                continue
            c = evidence((1.0 - s) ** w, p.prior)
            strongest = max(strongest, c)
            if c >= MIN_REASON:
                contributions.append(_reason(name, c, f))
        keep = 1.0 - strongest
    else:
        keep = 1.0 - trained
        contributions.append(_reason("model", trained, f))
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

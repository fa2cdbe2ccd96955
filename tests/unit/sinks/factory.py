"""Decisions built with fraudflow.records, for the sink tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fraudflow.records import Decision, Reason, RuleHit, Transaction, alert_id

RULES_VERSION = "rules-test-1"
MODEL_VERSION = "model-test-1"


def ts(text: str) -> float:
    """Epoch seconds of an ISO time (UTC when no zone is given)."""
    d = datetime.fromisoformat(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp()


def make_decision(
    n: int,
    *,
    user: str = "u1",
    at: float | str = "2024-03-10T12:00:00",
    tier: str = "review",
    score: float | None = None,
    rules: tuple[str, ...] = ("R_VELOCITY",),
    features: dict[str, Any] | None = None,
    txn_id: str | None = None,
) -> Decision:
    """Decision ``n`` of ``user`` at ``at``; same arguments give the same alert_id."""
    when = ts(at) if isinstance(at, str) else at
    tid = txn_id or f"t-{user}-{n}"
    txn = Transaction(
        transaction_id=tid,
        user_id=user,
        amount=10.0 + n,
        ts=when,
        currency="EUR",
        merchant_id=f"m{n % 7}",
        country="FR",
        topic="transactions",
        partition=0,
        offset=n,
    )
    if score is None:
        score = {"approve": 0.1, "review": 0.6, "block": 0.9}[tier]
    hits = [RuleHit(r, 0.5, None, "medium", f"{r} fired", {}) for r in rules]
    feats = {
        "count_1m": 1,
        "count_1h": 3,
        "count_24h": 7,
        "sum_1m": 11.0,
        "sum_1h": 40.5,
        "sum_24h": 99.25,
        "txn_count": 12,
        "amount_z": 2.5,
        "distinct_merchants_24h": 3,
        "travel_kmh": 0.0,
        "merchant_category": "5411",  # not a profile field
    }
    feats.update(features or {})
    return Decision(
        alert_id=alert_id(txn.user_id, tid, MODEL_VERSION, RULES_VERSION),
        txn=txn,
        score=score,
        tier=tier,
        detector_scores={"hst": 0.2, "zscore": 0.7, "iqr": 0.1, "rules": 0.5},
        rule_hits=hits,
        reasons=[Reason("AMOUNT_ZSCORE", 0.38, {"amount_z": 2.5})],
        rules_version=RULES_VERSION,
        model_version=MODEL_VERSION,
        features=feats,
        processed_at=when + 0.25,
    )

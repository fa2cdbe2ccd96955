"""The alert budget in the flow: the review tier holds the configured share."""

from __future__ import annotations

import random
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage

from fraudflow.config.settings import Settings
from fraudflow.records import Decision
from tests.unit.flows.test_flow import run

T0 = 1_767_225_600.0


def stream(n: int, seed: int = 9, spikes: int = 7) -> list[KafkaSourceMessage]:
    """Ordinary amounts, and a spike every ``spikes`` records (many reviews without a budget)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        user = f"u{rnd.randrange(20)}"
        amount = rnd.uniform(300, 3000) if i % spikes == 0 else rnd.lognormvariate(3, 0.5)
        rec = {
            "transaction_id": f"t{i}",
            "user_id": user,
            "amount": round(amount, 2),
            "timestamp": int((T0 + 30 * i) * 1000),
            "merchant_id": f"m{rnd.randrange(50)}",
            "country": "DE",
            "device_id": f"d-{user}",
        }
        out.append(
            KafkaSourceMessage(
                key=user.encode(), value=orjson.dumps(rec), topic="tx", partition=0, offset=i
            )
        )
    return out


def settings(**kw: Any) -> Settings:
    return Settings().replace(**{"hst_warmup": 50, "hst_window": 50, "review_threshold": 0.3, **kw})


def share(ds: list[Decision]) -> float:
    return sum(d.tier != "approve" for d in ds) / len(ds)


def test_the_review_tier_holds_the_budget_share() -> None:
    msgs = stream(2000)
    budget, window = 0.03, 200
    _, base, _, _ = run(msgs, settings(alert_budget=0.0))
    alerts, held, _, io = run(msgs, settings(alert_budget=budget, alert_budget_window=window))
    # the run's counts are of the tiers that went out, after the budget
    tiers = io.stats.snapshot()["tiers"]
    assert tiers == {t: sum(d.tier == t for d in held) for t in ("approve", "review", "block")}
    assert tiers["review"] + tiers["block"] == len(alerts)
    assert [d.txn.transaction_id for d in base] == [d.txn.transaction_id for d in held]
    assert share(base[window:]) > 3 * budget  # the threshold alone floods review
    assert abs(share(held[window:]) - budget) <= 0.2 * budget
    for b, h in zip(base, held, strict=True):
        assert h.score == b.score  # the budget moves tiers, never scores
        if b.score >= 0.85:
            assert h.tier == "block"
    assert all(h.tier == b.tier for b, h in zip(base[:window], held[:window], strict=True))


def test_the_budget_is_on_by_default() -> None:
    assert Settings().ensemble.alert_budget == 0.015

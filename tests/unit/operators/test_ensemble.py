"""Ensemble: noisy-OR scoring, tiers, forced tiers, reasons, deterministic ids."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraudflow.config.settings import Settings
from fraudflow.operators.decide.ensemble import EnsembleParams, decide, model_version
from fraudflow.records import FeatureRow, Transaction
from fraudflow.rules import RuleHit

P = EnsembleParams.from_settings(Settings().ensemble)


def row(hst: float = 0.0, z: float = 0.0, iqr: float = 0.0, **extra: Any) -> FeatureRow:
    t = Transaction("t1", "u1", 50.0, 1_767_225_600.0, "USD")
    f = {
        "amount": 50.0,
        "amount_mean": 10.0,
        "amount_z": 3.0,
        "txn_count": 9,
        "amount_iqr_excess": 2.0,
        "count_1m": 1,
        "new_device": False,
        "new_country": False,
        "travel_kmh": 0.0,
        "hour": 3,
        "late": False,
        **extra,
    }
    return FeatureRow(t, f, {"hst": hst, "zscore": z, "iqr": iqr})


def hit(rule_id: str, score: float, tier: str | None = None) -> RuleHit:
    return RuleHit(rule_id, score, tier, "high", f"{rule_id} fired", {"amount": 50.0})


def run(r: FeatureRow, hits: list[RuleHit] | None = None, p: EnsembleParams = P) -> Any:
    return decide(r, hits or [], p, rules_version="r1", model_ver="m1", now=0.0)


def test_nothing_unusual_is_approved_with_no_reasons() -> None:
    d = run(row())
    assert d.score == 0.0
    assert d.tier == "approve"
    assert d.reasons == []
    assert not d.is_alert


def test_noisy_or_of_weighted_detectors() -> None:
    d = run(row(hst=0.5, z=0.8))
    expected = 1 - (1 - P.weights["hst"] * 0.5) * (1 - P.weights["zscore"] * 0.8)
    assert d.score == pytest.approx(expected)
    assert d.detector_scores["hst"] == 0.5


def test_rules_combine_then_weigh() -> None:
    d = run(row(), [hit("a", 0.5), hit("b", 0.5)])
    assert d.detector_scores["rules"] == pytest.approx(0.75)
    assert d.score == pytest.approx(P.weight_rules * 0.75)
    assert d.tier == "review"
    assert [h.rule_id for h in d.rule_hits] == ["a", "b"]


@pytest.mark.parametrize(
    ("score", "tier"), [(0.49, "approve"), (0.5, "review"), (0.85, "block"), (0.99, "block")]
)
def test_tiers_by_threshold(score: float, tier: str) -> None:
    assert run(row(), [hit("x", score)]).tier == tier


def test_a_rule_can_force_a_minimum_tier() -> None:
    d = run(row(), [hit("deny", 0.0, tier="block")])
    assert d.score == 0.0
    assert d.tier == "block"


def test_reasons_are_the_largest_contributions_with_their_values() -> None:
    d = run(row(hst=0.2, z=0.9, iqr=0.1), [hit("big", 0.6)])
    codes = [r.code for r in d.reasons]
    assert codes == ["RULE:big", "AMOUNT_ZSCORE", "HST_ANOMALY"]  # top 3 of 4, largest first
    z = d.reasons[1]
    assert z.detail["amount_z"] == 3.0
    assert d.reasons[0].detail["description"] == "big fired"


def test_alert_id_is_deterministic_and_versioned() -> None:
    a = run(row(z=1.0))
    b = run(row(z=1.0))
    c = decide(row(z=1.0), [], P, rules_version="r2", model_ver="m1", now=0.0)
    assert a.alert_id == b.alert_id
    assert a.alert_id != c.alert_id


def test_model_version_follows_the_settings_that_shape_scores() -> None:
    s = Settings()
    assert model_version(s) == model_version(Settings())
    assert model_version(s) != model_version(s.replace(weight_hst=0.1))
    assert model_version(s) == model_version(s.replace(brokers="x:1"))  # IO is not the model
    assert model_version(s) != model_version(s.replace(windows="1m,1h"))
    # logging inputs and storing labels for training do not change a score
    assert model_version(s) == model_version(s.replace(feature_log=True, label_store=True))


unit = st.floats(min_value=0.0, max_value=1.0)


@given(unit, unit, unit, st.lists(unit, max_size=5))
def test_score_is_in_unit_interval_and_monotone(
    h: float, z: float, i: float, rules: list[float]
) -> None:
    d = run(row(h, z, i), [hit(f"r{k}", s) for k, s in enumerate(rules)])
    assert 0.0 <= d.score <= 1.0
    more = run(row(min(1.0, h + 0.1), z, i), [hit(f"r{k}", s) for k, s in enumerate(rules)])
    assert more.score >= d.score - 1e-12


def test_weights_zero_silence_a_detector() -> None:
    p = replace(P, weights={"hst": 0.0, "zscore": 0.0, "iqr": 0.0})
    assert run(row(1.0, 1.0, 1.0), p=p).score == 0.0

"""Ensemble: noisy-OR scoring, tiers, forced tiers, reasons, deterministic ids."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraudflow.config.settings import Settings
from fraudflow.operators.decide.ensemble import EnsembleParams, decide, evidence, model_version
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


def test_the_strongest_weighted_tail_probability_is_the_detector_evidence() -> None:
    # scores are 1 - p; the evidence is that of min_i p_i ** w_i
    d = run(row(hst=1 - 1e-3, z=1 - 1e-6, iqr=0.5))
    p = min(1e-3 ** P.weights["hst"], 1e-6 ** P.weights["zscore"], 0.5 ** P.weights["iqr"])
    assert d.score == pytest.approx(evidence(p, P.prior))
    assert p == pytest.approx(1e-3)  # the z-score's rarer p weighs less (weight 0.25)
    assert d.detector_scores["hst"] == 1 - 1e-3
    assert [r.code for r in d.reasons] == ["HST_ANOMALY", "AMOUNT_ZSCORE"]  # iqr: no evidence
    # a rarer score is stronger evidence; weight 0 ignores a detector
    assert run(row(hst=1 - 1e-4)).score > run(row(hst=1 - 1e-3)).score > 0.5
    off = replace(P, weights={**P.weights, "hst": 0.0})
    assert run(row(hst=1 - 1e-4), p=off).score == 0.0


def test_detectors_and_rules_combine_as_a_noisy_or() -> None:
    d = run(row(hst=1 - 1e-3), [hit("a", 0.5)])
    expected = 1 - (1 - evidence(1e-3, P.prior)) * (1 - P.weight_rules * 0.5)
    assert d.score == pytest.approx(expected)


def test_evidence_is_monotone_and_bounded() -> None:
    ps = [1.0, 0.5, 1 / math.e, 0.1, 1e-2, 1e-3, 1e-5, 1e-9, 0.0]
    es = [evidence(p, 0.1) for p in ps]
    assert es == sorted(es)
    assert es[:3] == [0.0, 0.0, 0.0]
    assert es[-1] == 1.0
    assert all(0.0 <= e <= 1.0 for e in es)


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
    d = run(row(hst=1 - 0.05, z=1 - 1e-12, iqr=1 - 1e-4), [hit("big", 0.6)])
    codes = [r.code for r in d.reasons]
    assert codes == ["AMOUNT_ZSCORE", "RULE:big", "HST_ANOMALY"]  # top 3 of 4, largest first
    z = d.reasons[0]
    assert z.detail["amount_z"] == 3.0
    assert d.reasons[1].detail["description"] == "big fired"


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

"""The trained model in the flow: the decision hook, version stamps, and the feature log
records exactly what the model scored."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from fraudflow.backtest.replay import CollectSink, DiscardSink
from fraudflow.config.settings import Settings
from fraudflow.connectors.files import JsonLinesSource
from fraudflow.flows.detection import build_flow
from fraudflow.flows.io import FlowIO
from fraudflow.flows.wiring import run_flow
from fraudflow.operators.decide.ensemble import EnsembleParams, decide
from fraudflow.records import Decision, FeatureRow, Transaction
from fraudflow.training.featurelog import log_record
from fraudflow.training.model import TrainedModel
from fraudflow.training.risk import DAY, RiskParams
from fraudflow.training.trainer import Frame, TrainParams, train

T0 = 1_735_689_600.0


class Static:
    def __init__(self, model: TrainedModel | None) -> None:
        self.model = model

    def current(self) -> TrainedModel | None:
        return self.model


def _file(path: Path, n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        merchant = "m-bad" if rng.random() < 0.1 else f"m{rng.randrange(8)}"
        fraud = int(merchant == "m-bad" and rng.random() < 0.6)
        recs.append({"transaction_id": f"t{i}", "user_id": f"u{rng.randrange(30)}",
                     "amount": round(rng.lognormvariate(3, 0.5) * (3 if fraud else 1), 2),
                     "timestamp": int((T0 + 30 * DAY * i / n) * 1000), "merchant_id": merchant,
                     "_label": fraud})  # fmt: skip
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    return recs


def _replay(path: Path, model: TrainedModel | None) -> list[Decision]:
    settings = Settings()
    out: list[Decision] = []
    io = FlowIO(source=JsonLinesSource([path]), alerts=DiscardSink(), dead_letters=CollectSink([]),
                decisions=[("d", CollectSink(out))], require_key=False, event_clock=True,
                models=Static(model))  # fmt: skip
    run_flow(build_flow(settings, io), settings)
    return sorted(out, key=lambda d: d.txn.offset)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Decision], TrainedModel]:
    path = tmp_path_factory.mktemp("serving") / "tx.jsonl"
    recs = _file(path, 3000, 3)
    plain = _replay(path, None)
    frame = Frame.from_records(log_record(d) for d in plain)
    labels = {r["transaction_id"]: (r["_label"], r["timestamp"] / 1000 + DAY) for r in recs}
    p = TrainParams(holdout=5 * DAY, rounds=30, min_leaf=10, horizon=1000 * DAY,
                    risk=RiskParams(fields=("merchant_id", "user_id"), delay=DAY))  # fmt: skip
    res = train(frame, labels, T0 + 25 * DAY, p)
    assert res.model is not None
    return path, plain, res.model


def test_the_flow_serves_the_model_and_stamps_its_version(
    trained: tuple[Path, list[Decision], TrainedModel],
) -> None:
    path, plain, model = trained
    served = _replay(path, model)
    assert {d.model_version for d in served} == {model.version}
    assert {d.model_version for d in plain} != {model.version}
    # the score is the model's probability on the logged inputs (the hook), except where a
    # rule forces a tier: recomputed here from the feature log records
    base = [log_record(d)["features"] for d in served]
    ents = {f: [getattr(d.txn, f) for d in served] for f in model.risk.params.fields}
    expect = model.score_rows(base, ents)
    got = np.array([d.score for d in served])
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-12)
    assert all(d.detector_scores["model"] == d.score for d in served)
    # the unsupervised inputs the model saw are the same as without it
    assert [d.features["hst_score"] for d in served] == [d.features["hst_score"] for d in plain]


def test_decide_ranks_by_the_model_score_when_present() -> None:
    txn = Transaction("t", "u", 10.0, T0, "USD")
    scores = {"hst": 0.9999, "zscore": 0.9999, "iqr": 0.9999}  # 1 - p: p = 1e-4
    p = EnsembleParams.from_settings(Settings().ensemble)
    row = FeatureRow(txn, {"amount": 10.0}, dict(scores))
    without = decide(row, [], p, rules_version="r", model_ver="m", now=0.0)
    with_model = decide(row, [], p, rules_version="r", model_ver="gbm-x", now=0.0, trained=0.01)
    assert without.score > 0.5
    assert with_model.score == pytest.approx(0.01)
    assert with_model.reasons[0].code == "TRAINED_MODEL"
    assert with_model.tier == "approve"
    assert with_model.features["model_score"] == 0.01
    assert with_model.features["hst_score"] == 0.9999  # the inputs stay beside it
    assert row.features == {"amount": 10.0}  # decide does not write into the row

"""Serving's column-wise inputs equal the row-by-row ones the feature log records."""

from __future__ import annotations

import math
import random
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from fraudflow.training.model import TrainedModel, input_block, model_inputs
from fraudflow.training.risk import RiskParams, RiskTables

P = RiskParams(fields=("merchant_id", "user_id"), windows=(1, 7))
NAMES = ("amount", "count_1h", "hst_score", "new_device", "rules_score", "travel_kmh")
ODD = (math.nan, math.inf, -math.inf, None, 1e39, -0.0, 2**40)


def _value(rng: random.Random, name: str, odd: float) -> Any:
    if rng.random() < odd:
        return rng.choice(ODD)
    if name == "new_device":
        return rng.random() < 0.5
    if name == "count_1h":
        return rng.randrange(20)
    return rng.lognormvariate(2, 2) * rng.choice((1, -1))


def _rows(rng: random.Random, n: int, odd: float, drop: float = 0.0) -> list[dict[str, Any]]:
    rows = []
    for _ in range(n):
        row = {k: _value(rng, k, odd) for k in NAMES if rng.random() >= drop}
        row |= {"channel": "web", "model_score": 0.5}  # never inputs
        rows.append(row)
    return rows


def _model(rng: random.Random) -> TrainedModel:
    names = (*NAMES, *P.all_names)
    x = rng.random  # a small booster over every input, NaNs included
    data = np.array([[x() if x() > 0.1 else np.nan for _ in names] for _ in range(400)])
    y = (np.nan_to_num(data[:, 0]) + np.nan_to_num(data[:, 7]) > 1.0).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1,
                         "min_data_in_leaf": 5}, lgb.Dataset(data, y), 10)  # fmt: skip
    width = 2 * len(P.windows)
    tables = {
        "merchant_id": {f"m{i}": tuple(rng.random() for _ in range(width)) for i in range(20)},
        "user_id": {f"u{i}": tuple(rng.random() for _ in range(width)) for i in range(5)},
    }
    risk = RiskTables(P, 0.0, tuple(rng.random() for _ in range(width)), tables)
    return TrainedModel("gbm-test", booster, names, (1.2, -0.3), risk)


def _entities(rng: random.Random, n: int) -> dict[str, list[str | None]]:
    return {
        "merchant_id": [rng.choice([None, "", "m-unknown", *(f"m{i}" for i in range(20))])
                        for _ in range(n)],
        "user_id": [rng.choice([None, "u1", "u4", "u9"]) for _ in range(n)],
    }  # fmt: skip


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # 1e39 to float32: inf
@pytest.mark.parametrize(("seed", "odd", "drop"), [(1, 0.0, 0.0), (2, 0.2, 0.0), (3, 0.3, 0.2)])
def test_feature_matrix_equals_the_row_by_row_matrix(seed: int, odd: float, drop: float) -> None:
    rng = random.Random(seed)
    model = _model(rng)
    for n in (1, 7, 1000):
        rows = _rows(rng, n, odd, drop)
        rules = np.array([rng.random() for _ in range(n)])
        ents = _entities(rng, n)
        base = [model_inputs(r, s) for r, s in zip(rows, rules.tolist(), strict=True)]
        expect = model.matrix(base, ents)
        got = model.feature_matrix(rows, {"rules_score": rules}, ents)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expect)  # NaN == NaN here, bit for bit otherwise
        np.testing.assert_array_equal(
            model.score_features(rows, {"rules_score": rules}, ents), model.score_rows(base, ents)
        )


def test_a_string_or_a_missing_name_takes_the_value_by_value_path() -> None:
    # the catalogue gives a name one type: the first row's types decide the path
    rows = [{"a": "7", "b": 1}, {"a": 3.0, "b": None}]
    np.testing.assert_array_equal(input_block(rows, ["a", "b"]), [[np.nan, 1.0], [3.0, np.nan]])
    rows = [{"a": 1.0}, {"b": 2.0}]
    np.testing.assert_array_equal(input_block(rows, ["a"]), [[1.0], [np.nan]])


def test_risk_columns_are_the_table_rows_or_the_priors() -> None:
    rng = random.Random(5)
    risk = _model(rng).risk
    ents = _entities(rng, 50)
    cols = risk.columns(ents, 50)
    for field in P.fields:
        table = risk.tables[field]
        for j, name in enumerate(P.names(field)):
            want = [table.get(e, risk.priors)[j] if e is not None else risk.priors[j]
                    for e in ents[field]]  # fmt: skip
            assert cols[name].tolist() == want

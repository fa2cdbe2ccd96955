"""A trained model as it is published and served: LightGBM text, inputs, calibration, risk.

The artifact is data only: the booster in LightGBM's own text format, the
ordered input names, the Platt calibration (two numbers), the risk
parameters and tables, the training window and the holdout metrics. Loading
it executes no code (no pickle).

Serving (:meth:`TrainedModel.score_features`) builds the input matrix of a
batch from the rows' feature dicts (the same values the feature log records,
column by column, not row by row through :func:`model_inputs`) and the risk
tables, and returns calibrated probabilities: one LightGBM call per batch.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import orjson

from fraudflow.training.risk import F64, RiskParams, RiskTables

LIBRARY = "lightgbm"
MODEL_SCORE = "model_score"  # the trained model's probability on a row (never an input)
F32 = npt.NDArray[np.float32]


def model_inputs(features: Mapping[str, Any], rules_score: float) -> dict[str, float]:
    """The numeric model inputs of a scored row (the feature log's ``features``).

    >>> model_inputs({"amount": 2, "new_device": False, "channel": "web"}, 0.25)
    {'amount': 2.0, 'new_device': 0.0, 'rules_score': 0.25}
    """
    out: dict[str, float] = {}
    for k, v in features.items():
        if k == MODEL_SCORE or isinstance(v, str) or v is None:
            continue
        if isinstance(v, bool | int | float) and math.isfinite(x := float(v)):
            out[k] = x
    out["rules_score"] = float(rules_score)
    return out


_PLAIN = frozenset({bool, int, float, type(None)})  # what numpy converts as model_inputs does


def input_block(features: Sequence[Mapping[str, Any]], names: Sequence[str]) -> F64:
    """Columns ``names`` of feature dicts, each value as :func:`model_inputs` keeps it or NaN.

    Column by column in C (``itemgetter``, one ``np.array``) when the first row's
    values of ``names`` are plain bools, ints, floats or None: the feature
    catalogue gives every name one type, so the other rows' are too. Otherwise, or
    when a row lacks a name, value by value.

    >>> input_block([{"a": 1, "b": True}, {"a": float("inf"), "b": None}], ["a", "b"])
    array([[ 1.,  1.],
           [nan, nan]])
    """
    n, nan = len(features), math.nan
    x: F64 | None = None
    if n and names and all(type(features[0].get(k)) in _PLAIN for k in names):
        pick = itemgetter(*names)
        try:  # None becomes NaN, bools 0/1
            x = np.array([pick(f) for f in features], dtype=np.float64).reshape(n, len(names))
        except (KeyError, TypeError, ValueError):
            x = None
    if x is None:
        x = np.array(
            [[_number(f.get(k)) for k in names] for f in features], dtype=np.float64
        ).reshape(n, len(names))
    x[~np.isfinite(x)] = nan
    return x


def _number(v: Any) -> float:
    if isinstance(v, bool | int | float):
        x = float(v)
        return x if math.isfinite(x) else math.nan
    return math.nan


def sigmoid(x: F64) -> F64:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def logit(p: F64) -> F64:
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(q / (1 - q))


def fit_platt(raw: F64, y: npt.NDArray[np.int8], iters: int = 100) -> tuple[float, float]:
    """(a, b) minimising the log loss of ``sigmoid(a * logit(raw) + b)`` (Newton, ridge 1e-6)."""
    x = logit(raw)
    a, b = 1.0, 0.0
    for _ in range(iters):
        p = sigmoid(a * x + b)
        g = np.array([np.sum((p - y) * x), np.sum(p - y)])
        w = p * (1 - p)
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
        h += np.eye(2) * 1e-6
        step = np.linalg.solve(h, g)
        a, b = a - float(step[0]), b - float(step[1])
        if float(np.abs(step).max()) < 1e-9:
            break
    return a, b


@dataclass
class TrainedModel:
    """A published model: what every worker scores with."""

    version: str
    booster: lgb.Booster
    inputs: tuple[str, ...]  # base inputs (feature log names), then risk inputs
    calibration: tuple[float, float]
    risk: RiskTables
    meta: dict[str, Any] = field(default_factory=dict)  # window, metrics, parameters

    @cached_property
    def base_inputs(self) -> tuple[str, ...]:
        risk = set(self.risk.params.all_names)
        return tuple(n for n in self.inputs if n not in risk)

    def predict_matrix(self, x: F32) -> F64:
        """Calibrated probabilities for an input matrix (columns in :attr:`inputs` order)."""
        if len(x) == 0:
            return np.zeros(0)
        raw = np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float64)
        a, b = self.calibration
        return sigmoid(a * logit(raw) + b)

    def matrix(
        self,
        base: Sequence[Mapping[str, float]],
        entities: Mapping[str, Sequence[str | None]],
        risk: dict[str, F64] | None = None,
    ) -> F32:
        """The input matrix of rows given by their model inputs and entities.

        ``risk``: point-in-time risk columns (training); default: the published tables.
        """
        n = len(base)
        names = self.base_inputs
        nan = math.nan
        x = np.empty((n, len(self.inputs)), dtype=np.float32)
        if n == 0:
            return x
        x[:, : len(names)] = np.array(
            [[r.get(k, nan) for k in names] for r in base], dtype=np.float32
        ).reshape(n, len(names))
        cols = risk if risk is not None else self.risk.columns(entities, n)
        for j, name in enumerate(self.inputs[len(names) :], start=len(names)):
            x[:, j] = cols[name]
        return x

    def score_rows(
        self, base: Sequence[Mapping[str, float]], entities: Mapping[str, Sequence[str | None]]
    ) -> F64:
        """Calibrated probabilities of a batch, with the published risk tables."""
        return self.predict_matrix(self.matrix(base, entities))

    def feature_matrix(
        self,
        features: Sequence[Mapping[str, Any]],
        given: Mapping[str, F64],
        entities: Mapping[str, Sequence[str | None]],
    ) -> F32:
        """The input matrix of rows given by their feature dicts (serving).

        ``given``: input columns that replace the dicts' values (``rules_score``).
        Equal to :meth:`matrix` of the rows' :func:`model_inputs`.
        """
        n = len(features)
        names = self.base_inputs
        x64 = np.empty((n, len(self.inputs)), dtype=np.float64)
        take = [j for j, k in enumerate(names) if k not in given]
        x64[:, take] = input_block(features, [names[j] for j in take])
        for k, col in given.items():
            if k in names:
                x64[:, names.index(k)] = col
        risk = self.risk.columns(entities, n)
        for j, name in enumerate(self.inputs[len(names) :], start=len(names)):
            x64[:, j] = risk[name]
        return x64.astype(np.float32)

    def score_features(
        self,
        features: Sequence[Mapping[str, Any]],
        given: Mapping[str, F64],
        entities: Mapping[str, Sequence[str | None]],
    ) -> F64:
        """Calibrated probabilities of a batch of feature dicts (:meth:`feature_matrix`)."""
        return self.predict_matrix(self.feature_matrix(features, given, entities))

    # --- the artifact ------------------------------------------------------------

    def to_artifact(self) -> dict[str, Any]:
        """Everything but the booster text and the risk tables, as JSON-able data."""
        return {
            "version": self.version,
            "library": LIBRARY,
            "library_version": lgb.__version__,
            "inputs": list(self.inputs),
            "calibration": list(self.calibration),
            "risk_params": self.risk.params.to_dict(),
            "risk_cutoff": self.risk.cutoff,
            "risk_priors": list(self.risk.priors),
            **self.meta,
        }

    def model_text(self) -> str:
        return str(self.booster.model_to_string())

    @classmethod
    def from_artifact(
        cls,
        artifact: Mapping[str, Any],
        model_text: str,
        tables: dict[str, dict[str, tuple[float, ...]]],
    ) -> TrainedModel:
        """Load a published model: LightGBM's text parser, JSON data, no code executed."""
        if artifact.get("library") != LIBRARY:
            raise ValueError(
                f"model {artifact.get('version')}: library {artifact.get('library')!r}"
                f" is not {LIBRARY!r}"
            )
        params = RiskParams.from_dict(dict(artifact["risk_params"]))
        risk = RiskTables(
            params,
            float(artifact["risk_cutoff"]),
            tuple(float(x) for x in artifact["risk_priors"]),
            tables,
        )
        known = {"version", "library", "library_version", "inputs", "calibration",
                 "risk_params", "risk_cutoff", "risk_priors"}  # fmt: skip
        a, b = artifact["calibration"]
        return cls(
            version=str(artifact["version"]),
            booster=lgb.Booster(model_str=model_text),
            inputs=tuple(str(x) for x in artifact["inputs"]),
            calibration=(float(a), float(b)),
            risk=risk,
            meta={k: v for k, v in artifact.items() if k not in known},
        )


def version_of(model_text: str, cutoff: float) -> str:
    """A version name from the model's content and cutoff (same training, same name)."""
    digest = hashlib.blake2b(f"{cutoff!r}\n{model_text}".encode(), digest_size=5).hexdigest()
    return f"gbm-{digest}"


def load_artifact_dir(path: Path) -> TrainedModel:
    """A model written by ``fraudflow train --out DIR`` (model.txt, artifact.json, risk.json)."""
    artifact = orjson.loads((path / "artifact.json").read_bytes())
    tables = {
        field: {e: tuple(float(x) for x in v) for e, v in table.items()}
        for field, table in orjson.loads((path / "risk.json").read_bytes()).items()
    }
    return TrainedModel.from_artifact(artifact, (path / "model.txt").read_text(), tables)

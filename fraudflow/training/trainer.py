"""Train a model from the feature log and the labels known at a cutoff.

:func:`train` is pure (no store): the feature log as a :class:`Frame`, the
labels as ``{transaction_id: (label, known_at)}``, a cutoff and, when there
is one, the current model. It

1. keeps the logged rows of ``[cutoff - window, cutoff)`` whose label is known
   at the cutoff; a row older than ``horizon`` without a label counts as legit
   (labels report frauds; a transaction nobody disputed by then was fine);
2. holds out the latest ``holdout`` of them (by event time); the rest train;
3. keeps every fraud and a deterministic share (``negatives``) of the legit
   rows of the training part (by a hash of the transaction id);
4. adds the entity risk features (:mod:`fraudflow.training.risk`) as of the
   start of each row's retrain period, with the labels known at the cutoff;
5. fits a LightGBM binary model (deterministic: one thread, fixed seed);
6. calibrates it on the holdout (Platt: two numbers; rank metrics unchanged)
   and measures average precision and ROC AUC there;
7. scores the same holdout with the current model: the new one is promoted
   only when its average precision beats the current one's by ``min_gain``;
   otherwise the current model with risk tables rebuilt at this cutoff is the
   result's ``refreshed`` model (same booster, new version), so the entity
   risk served is never older than one training period.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from fraudflow.backtest.metrics import average_precision, roc_auc
from fraudflow.training.model import F32, TrainedModel, fit_platt, version_of
from fraudflow.training.risk import DAY, F64, I64, History, RiskParams, RiskTables, encode
from fraudflow.training.risk import risk_columns as _risk_columns

log = logging.getLogger(__name__)

Labels = Mapping[str, tuple[int, float]]  # transaction_id -> (label, known at)
ENTITY_FIELDS = ("user_id", "merchant_id", "device_id", "country")
NAME_SAMPLE = 1000  # records whose feature names make a frame's columns


@dataclass
class Frame:
    """Feature-log rows as columns: event times, ids, entity codes, inputs matrix."""

    ts: F64
    tids: list[str]
    vocab: dict[str, npt.NDArray[np.object_]]
    codes: dict[str, I64]
    names: tuple[str, ...]
    x: F32  # rows x names, NaN where a row lacks an input
    score: F64  # the decision's score as logged
    _draws: F64 | None = field(default=None, repr=False)

    def column(self, name: str) -> F32:
        """One input column (NaN when the frame lacks it)."""
        if name in self.names:
            return self.x[:, self.names.index(name)]
        return np.full(len(self.ts), np.nan, dtype=np.float32)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Frame:
        """From feature-log records (:func:`fraudflow.training.featurelog.log_record`).

        Columns are the input names of the first records (the feature catalogue).
        """
        ts: list[float] = []
        scores: list[float] = []
        tids: list[str] = []
        ents: dict[str, list[str | None]] = {f: [] for f in ENTITY_FIELDS}
        rows: list[list[float]] = []
        seen: dict[str, None] = {}
        names: tuple[str, ...] | None = None
        pending: list[Mapping[str, float]] = []
        nan = math.nan
        for rec in records:
            ts.append(float(rec["ts"]))
            scores.append(float(rec.get("score", 0.0)))
            tids.append(str(rec["transaction_id"]))
            for f in ENTITY_FIELDS:
                ents[f].append(rec.get(f))
            feats = rec["features"]
            if names is None:
                seen.update(dict.fromkeys(feats))
                pending.append(feats)
                if len(pending) < NAME_SAMPLE:
                    continue
                names = tuple(sorted(seen))
                rows.extend([[p.get(n, nan) for n in names] for p in pending])
                pending = []
                continue
            get = feats.get
            rows.append([get(n, nan) for n in names])
        if names is None:
            names = tuple(sorted(seen))
            rows.extend([[p.get(n, nan) for n in names] for p in pending])
        x = np.array(rows, dtype=np.float32).reshape(len(rows), len(names))
        vocab: dict[str, npt.NDArray[np.object_]] = {}
        codes: dict[str, I64] = {}
        for f in ENTITY_FIELDS:
            vocab[f], codes[f] = encode(ents[f])
        order = np.argsort(np.array(ts), kind="stable")
        return cls(
            ts=np.array(ts, dtype=np.float64)[order],
            tids=[tids[i] for i in order],
            vocab=vocab,
            codes={f: c[order] for f, c in codes.items()},
            names=names,
            x=x[order],
            score=np.array(scores, dtype=np.float64)[order],
        )

    def __len__(self) -> int:
        return len(self.ts)

    def draws(self) -> F64:
        """Per row a number in [0, 1) from a hash of its id: which legit rows are sampled."""
        if self._draws is None:
            self._draws = np.array([zlib.crc32(t.encode()) for t in self.tids]) / 0x1_0000_0000
        return self._draws

    def entities(self, idx: I64) -> dict[str, list[str | None]]:
        """The entity values of rows ``idx`` (for serving-style scoring)."""
        out: dict[str, list[str | None]] = {}
        for f in ENTITY_FIELDS:
            v, c = self.vocab[f], self.codes[f][idx]
            out[f] = [None if k < 0 else str(v[k]) for k in c]
        return out

    def base_matrix(self, idx: I64, names: Sequence[str]) -> F32:
        """Columns ``names`` of rows ``idx`` (NaN for a name the frame lacks)."""
        pos = {n: i for i, n in enumerate(self.names)}
        out = np.full((len(idx), len(names)), np.nan, dtype=np.float32)
        for j, n in enumerate(names):
            if n in pos:
                out[:, j] = self.x[idx, pos[n]]
        return out


@dataclass(frozen=True)
class TrainParams:
    window: float = 60 * DAY  # training rows from [cutoff - window, cutoff)
    holdout: float = 3 * DAY  # the latest labelled rows held out
    horizon: float = 14 * DAY  # an unlabelled row older than this counts as legit
    negatives: float = 0.1  # share of legit training rows kept
    rounds: int = 150
    leaves: int = 31
    learning_rate: float = 0.05
    min_leaf: int = 50
    step: float = DAY  # the retrain period: risk features as of its start
    min_gain: float = 0.0  # average precision a new model must add to be promoted
    seed: int = 42
    risk: RiskParams = field(default_factory=RiskParams)

    def lgb_params(self) -> dict[str, Any]:
        return {
            "objective": "binary",
            "num_leaves": self.leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_leaf,
            "feature_fraction": 0.9,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbose": -1,
        }


@dataclass
class TrainResult:
    """What a training run produced; ``model`` is None when there was nothing to learn."""

    model: TrainedModel | None
    promoted: bool
    reason: str
    metrics: dict[str, Any]
    # when the new model is not promoted: the serving model with risk tables as of this
    # cutoff (published in its place, so the tables never age past one training period)
    refreshed: TrainedModel | None = None


def histories(
    frame: Frame, idx: I64, fraud: npt.NDArray[np.bool_], fields: Sequence[str]
) -> dict[str, History]:
    """Risk histories of rows ``idx`` (``fraud``: their labels known at the cutoff)."""
    return {f: History(frame.vocab[f], frame.codes[f][idx], frame.ts[idx], fraud) for f in fields}


def risk_at(
    p: RiskParams, hist: dict[str, History], frame: Frame, idx: I64, step: float
) -> dict[str, F64]:
    """Point-in-time risk features of rows ``idx``, as of the start of their period."""
    t = np.floor(frame.ts[idx] / step) * step
    return _risk_columns(p, hist, {f: frame.codes[f][idx] for f in p.fields}, t)


def model_matrix(
    inputs: Sequence[str], risk_names: set[str], frame: Frame, idx: I64, risk: dict[str, F64]
) -> F32:
    base = [n for n in inputs if n not in risk_names]
    x = np.empty((len(idx), len(inputs)), dtype=np.float32)
    x[:, : len(base)] = frame.base_matrix(idx, base)
    for j, n in enumerate(inputs[len(base) :], start=len(base)):
        x[:, j] = risk[n]
    return x


def label_arrays(frame: Frame, labels: Labels) -> tuple[npt.NDArray[np.int8], F64]:
    """Per row: its label (-1 none) and when it became known (inf: never)."""
    lab = np.full(len(frame), -1, dtype=np.int8)
    at = np.full(len(frame), np.inf)
    get = labels.get
    for i, tid in enumerate(frame.tids):
        got = get(tid)
        if got is not None:
            lab[i], at[i] = got
    return lab, at


def labels_at(
    frame: Frame, arrays: tuple[npt.NDArray[np.int8], F64], cutoff: float, horizon: float
) -> npt.NDArray[np.int8]:
    """Per row: 1/0 when known at ``cutoff`` (or legit past the horizon), -1 unknown."""
    lab, at = arrays
    y = np.where(at <= cutoff, lab, np.int8(-1)).astype(np.int8)
    y[(y < 0) & (frame.ts <= cutoff - horizon)] = 0
    return y


def train(
    frame: Frame,
    labels: Labels,
    cutoff: float,
    p: TrainParams,
    current: TrainedModel | None = None,
    *,
    arrays: tuple[npt.NDArray[np.int8], F64] | None = None,
) -> TrainResult:
    """Train, calibrate, hold out and decide promotion (module doc). Pure and deterministic.

    ``arrays``: :func:`label_arrays` of the frame, when already computed.
    """
    started = time.perf_counter()
    before = int(np.searchsorted(frame.ts, cutoff, "left"))
    arrays = arrays if arrays is not None else label_arrays(frame, labels)
    y_all = labels_at(frame, arrays, cutoff, p.horizon)[:before]
    hist_idx = np.arange(before, dtype=np.int64)
    fields = tuple(
        dict.fromkeys((*p.risk.fields, *(current.risk.params.fields if current else ())))
    )
    hist = histories(frame, hist_idx, y_all == 1, fields)
    start = int(np.searchsorted(frame.ts, cutoff - p.window, "left"))
    idx = np.flatnonzero(y_all[start:] >= 0).astype(np.int64) + start
    if len(idx) == 0 or not (y_all[idx] == 1).any():
        return TrainResult(None, False, "no labelled fraud in the training window", {},
                           current and refresh(current, hist, cutoff))  # fmt: skip
    last = float(frame.ts[idx[-1]])
    hold_mask = frame.ts[idx] >= last - p.holdout
    hold, fit_idx = idx[hold_mask], idx[~hold_mask]
    y_fit = y_all[fit_idx]
    if not (y_fit == 1).any() or not (y_all[hold] == 1).any():
        return TrainResult(None, False, "no labelled fraud in the training or holdout part", {},
                           current and refresh(current, hist, cutoff))  # fmt: skip
    keep = (y_fit == 1) | (frame.draws()[fit_idx] < p.negatives)
    fit_idx, y_fit = fit_idx[keep], y_fit[keep]
    risk_names = set(p.risk.all_names)
    inputs = (*frame.names, *p.risk.all_names)
    x_fit = model_matrix(
        inputs, risk_names, frame, fit_idx, risk_at(p.risk, hist, frame, fit_idx, p.step)
    )
    booster = lgb.train(
        p.lgb_params(),
        lgb.Dataset(x_fit, label=y_fit, feature_name=list(inputs), free_raw_data=True),
        num_boost_round=p.rounds,
    )
    hold_risk = risk_at(p.risk, hist, frame, hold, p.step)
    x_hold = model_matrix(inputs, risk_names, frame, hold, hold_risk)
    y_hold = y_all[hold]
    raw = np.asarray(booster.predict(x_hold, num_threads=1), dtype=np.float64)
    calibration = fit_platt(raw, y_hold)
    text = str(booster.model_to_string())
    risk = RiskTables.build(p.risk, {f: hist[f] for f in p.risk.fields}, cutoff)
    ap = average_precision(y_hold, raw)
    metrics: dict[str, Any] = {
        "holdout_from": float(frame.ts[hold[0]]),
        "holdout_to": last,
        "holdout_rows": len(hold),
        "holdout_frauds": int((y_hold == 1).sum()),
        "average_precision": ap,
        "roc_auc": roc_auc(y_hold, raw),
        "train_rows": len(fit_idx),
        "train_frauds": int((y_fit == 1).sum()),
        "train_from": float(frame.ts[fit_idx[0]]) if len(fit_idx) else None,
        "train_to": float(frame.ts[fit_idx[-1]]) if len(fit_idx) else None,
    }
    model = TrainedModel(
        version=version_of(text, cutoff),
        booster=lgb.Booster(model_str=text),
        inputs=inputs,
        calibration=calibration,
        risk=risk,
        meta={"cutoff": cutoff, "metrics": metrics, "params": _params_dict(p)},
    )
    if current is None:
        promoted, reason = True, "no current model"
    else:
        cur_risk = (
            hold_risk
            if current.risk.params == p.risk
            else risk_at(current.risk.params, hist, frame, hold, p.step)
        )
        cur_names = set(current.risk.params.all_names)
        cur_x = model_matrix(current.inputs, cur_names, frame, hold, cur_risk)
        cur_ap = average_precision(y_hold, current.predict_matrix(cur_x))
        metrics["current_version"] = current.version
        metrics["current_average_precision"] = cur_ap
        promoted = ap is not None and (cur_ap is None or ap > cur_ap + p.min_gain)
        reason = f"holdout AP {ap:.4f} vs current {current.version} {cur_ap or 0.0:.4f}"
    refreshed = None
    if current is not None and not promoted:
        refreshed = refresh(current, hist, cutoff)
    metrics["seconds"] = round(time.perf_counter() - started, 3)
    return TrainResult(model, promoted, reason, metrics, refreshed)


def refresh(model: TrainedModel, hist: dict[str, History], cutoff: float) -> TrainedModel:
    """``model`` with its risk tables rebuilt as of ``cutoff`` (a new version: same booster)."""
    p = model.risk.params
    risk = RiskTables.build(p, {f: hist[f] for f in p.fields}, cutoff)
    text = model.model_text()
    meta = {**model.meta, "risk_refreshed_from": model.version}
    return TrainedModel(version_of(text, cutoff), model.booster, model.inputs,
                        model.calibration, risk, meta)  # fmt: skip


def _params_dict(p: TrainParams) -> dict[str, Any]:
    return {
        "window": p.window,
        "holdout": p.holdout,
        "horizon": p.horizon,
        "negatives": p.negatives,
        "rounds": p.rounds,
        "leaves": p.leaves,
        "learning_rate": p.learning_rate,
        "min_leaf": p.min_leaf,
        "step": p.step,
        "min_gain": p.min_gain,
        "seed": p.seed,
    }

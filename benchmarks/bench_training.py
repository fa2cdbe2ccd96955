"""Which gradient-boosted trees: LightGBM, XGBoost, scikit-learn's HistGradientBoosting.

On a backtest's feature log (``fraudflow backtest --feature-log F``) and its
labels, one training set exactly as ``fraudflow train`` builds it at a cutoff
(the inputs, the entity risk features, the legit rows sampled), then each
library with comparable settings (depth/leaves, rounds, learning rate, one
thread): holdout average precision and ROC AUC, training time, and per-row
batch inference cost on batches of 1,000 rows (what a decide step sees).
Then the serving path's cost: :func:`fraudflow.training.serving.score_batch`
on feature rows (inputs built from dicts, risk tables looked up, predicted).

    python benchmarks/bench_training.py --feature-log F --labels INPUT.jsonl \
        --cutoff 2025-04-10T00:00:00Z [--label-delay 7d]

Prints a table and one JSON line (recorded in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import timedelta
from typing import Any

import lightgbm as lgb
import numpy as np

from fraudflow.backtest.metrics import average_precision, roc_auc
from fraudflow.cli.train import _cutoff, file_labels
from fraudflow.config.settings import parse_duration
from fraudflow.training.featurelog import read_feature_log
from fraudflow.training.risk import RiskParams
from fraudflow.training.trainer import (
    Frame,
    TrainParams,
    histories,
    label_arrays,
    labels_at,
    model_matrix,
    risk_at,
    train,
)

BATCH = 1000


def dataset(frame: Frame, labels: Any, cutoff: float, p: TrainParams) -> dict[str, Any]:
    """The train and holdout matrices ``train`` would build at ``cutoff``."""
    before = int(np.searchsorted(frame.ts, cutoff, "left"))
    y_all = labels_at(frame, label_arrays(frame, labels), cutoff, p.horizon)[:before]
    hist = histories(frame, np.arange(before, dtype=np.int64), y_all == 1, p.risk.fields)
    start = int(np.searchsorted(frame.ts, cutoff - p.window, "left"))
    idx = np.flatnonzero(y_all[start:] >= 0).astype(np.int64) + start
    last = float(frame.ts[idx[-1]])
    hold_mask = frame.ts[idx] >= last - p.holdout
    hold, fit = idx[hold_mask], idx[~hold_mask]
    keep = (y_all[fit] == 1) | (frame.draws()[fit] < p.negatives)
    fit = fit[keep]
    inputs = (*frame.names, *p.risk.all_names)
    names = set(p.risk.all_names)
    fit_risk = risk_at(p.risk, hist, frame, fit, p.step)
    hold_risk = risk_at(p.risk, hist, frame, hold, p.step)
    return {
        "x_fit": model_matrix(inputs, names, frame, fit, fit_risk),
        "y_fit": y_all[fit],
        "x_hold": model_matrix(inputs, names, frame, hold, hold_risk),
        "y_hold": y_all[hold],
    }


def per_row_us(predict: Any, x: np.ndarray) -> float:
    """Microseconds per row, predicting batches of ``BATCH`` rows."""
    n = min(len(x), 50 * BATCH)
    started = time.perf_counter()
    for i in range(0, n, BATCH):
        predict(x[i : i + BATCH])
    return (time.perf_counter() - started) / n * 1e6


def compare(d: dict[str, Any], p: TrainParams) -> list[dict[str, Any]]:
    import xgboost as xgb  # noqa: PLC0415 - dev dependency, only for this comparison
    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: PLC0415

    x, y, xh, yh = d["x_fit"], d["y_fit"], d["x_hold"], d["y_hold"]
    out = []

    def row(name: str, fit: Any, predict: Any, fmt: str) -> None:
        started = time.perf_counter()
        model = fit()
        secs = time.perf_counter() - started
        s = predict(model, xh)
        out.append({
            "library": name, "average_precision": average_precision(yh, s),
            "roc_auc": roc_auc(yh, s), "train_s": round(secs, 2),
            "predict_us_per_row": round(per_row_us(lambda b: predict(model, b), xh), 3),
            "format": fmt,
        })  # fmt: skip

    row(
        f"lightgbm {lgb.__version__}",
        lambda: lgb.train(p.lgb_params(), lgb.Dataset(x, label=y), num_boost_round=p.rounds),
        lambda m, b: m.predict(b, num_threads=1),
        "text (model_to_string)",
    )
    row(
        f"xgboost {xgb.__version__}",
        lambda: xgb.train(
            {
                "objective": "binary:logistic",
                "tree_method": "hist",
                "max_leaves": p.leaves,
                "grow_policy": "lossguide",
                "max_depth": 0,
                "eta": p.learning_rate,
                "min_child_weight": 1,
                "nthread": 1,
                "seed": p.seed,
            },
            xgb.DMatrix(x, label=y),
            num_boost_round=p.rounds,
        ),
        lambda m, b: m.inplace_predict(b),
        "JSON / UBJSON (save_raw)",
    )
    row(
        f"sklearn HistGradientBoosting {__import__('sklearn').__version__}",
        lambda: HistGradientBoostingClassifier(
            max_iter=p.rounds,
            max_leaf_nodes=p.leaves,
            learning_rate=p.learning_rate,
            min_samples_leaf=p.min_leaf,
            early_stopping=False,
            random_state=p.seed,
        ).fit(x, y),
        lambda m, b: m.predict_proba(b)[:, 1],
        "pickle only",
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feature-log", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--cutoff", required=True)
    ap.add_argument("--label-delay", type=parse_duration, default=timedelta(days=7))
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from pathlib import Path  # noqa: PLC0415

    p = TrainParams(risk=RiskParams(delay=args.label_delay.total_seconds()))
    frame = Frame.from_records(read_feature_log(Path(args.feature_log)))
    labels = file_labels(Path(args.labels), p.risk.delay)
    cutoff = _cutoff(args.cutoff)
    d = dataset(frame, labels, cutoff, p)
    rows = compare(d, p)
    yf, yh = d["y_fit"], d["y_hold"]
    print(f"train rows {len(yf)} ({int(yf.sum())} fraud), holdout rows {len(yh)}"
          f" ({int(yh.sum())} fraud), {d['x_fit'].shape[1]} inputs")  # fmt: skip
    print(f"{'library':<44} {'AP':>7} {'ROC AUC':>8} {'train s':>8} {'us/row':>7}  format")
    for r in rows:
        print(f"{r['library']:<44} {r['average_precision']:>7.4f} {r['roc_auc']:>8.4f} "
              f"{r['train_s']:>8.2f} {r['predict_us_per_row']:>7.2f}  {r['format']}")  # fmt: skip
    # the serving path: score_batch on dict rows (inputs, risk lookups, predict)
    res = train(frame, labels, cutoff, p)
    serving = None
    if res.model is not None:
        m = res.model
        idx = np.arange(max(0, len(frame) - 20 * BATCH), len(frame), dtype=np.int64)
        base = [dict(zip(frame.names, map(float, frame.x[i]), strict=True)) for i in idx]
        ents = frame.entities(idx)
        started = time.perf_counter()
        for i in range(0, len(idx), BATCH):
            m.score_rows(base[i : i + BATCH], {f: v[i : i + BATCH] for f, v in ents.items()})
        serving = (time.perf_counter() - started) / len(idx) * 1e6
        print(f"serving path (inputs from dicts + risk lookups + predict): {serving:.2f} us/row")
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "python": platform.python_version(), "rows": rows,
                      "serving_us_per_row": serving}))  # fmt: skip


if __name__ == "__main__":
    main()

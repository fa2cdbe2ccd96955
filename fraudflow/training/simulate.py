"""The backtest's simulation of scheduled training: retrain every R of event time.

Given a replay's feature log (the decisions' exact model inputs) and the
labels with the time each becomes known, :func:`simulate` walks event time in
steps of ``every`` (a day by default). At each step boundary ``c`` it trains
on what a trainer running at ``c`` would see (rows before ``c``, labels known
by ``c``), promotes the new model only when it beats the serving one on the
holdout (:func:`fraudflow.training.trainer.train`), and scores the rows of
``[c, c + every)`` with the serving model and its risk tables, exactly as the
flow's hook does (the decision score is the model's calibrated probability;
before the first model, the unsupervised score).
Deterministic: the same inputs give the same scores.

:func:`offline_reference` is the comparison the issue asks for: one model
trained on everything before the last ``holdout`` with all its labels, scored
on that last period.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fraudflow.backtest.metrics import average_precision, card_precision_at_k, roc_auc
from fraudflow.training.model import TrainedModel
from fraudflow.training.risk import DAY, F64
from fraudflow.training.trainer import (
    Frame,
    Labels,
    TrainParams,
    label_arrays,
    model_matrix,
    train,
)

log = logging.getLogger(__name__)


@dataclass
class Simulation:
    """Per row: the score with scheduled training (``on``) and the serving version."""

    on: F64
    versions: list[str]
    trainings: list[dict[str, Any]] = field(default_factory=list)


def serve(model: TrainedModel, frame: Frame, idx: Any) -> F64:
    """The decision scores the flow gives rows ``idx`` with ``model`` serving (the model's
    probability: the ensemble's training hook ranks by it alone)."""
    risk = model.risk.columns(frame.entities(idx), len(idx))
    x = model_matrix(model.inputs, set(model.risk.params.all_names), frame, idx, risk)
    return model.predict_matrix(x)


def simulate(
    frame: Frame,
    labels: Labels,
    p: TrainParams,
    *,
    every: float = DAY,
    progress: Any = None,
    start: float | None = None,
) -> Simulation:
    """Retrain every ``every`` of event time; score each period with the serving model."""
    arrays = label_arrays(frame, labels)
    on = frame.score.astype(np.float64).copy()
    versions = ["" for _ in range(len(frame))]
    if len(frame) == 0:
        return Simulation(on, versions)
    first = math.floor(float(frame.ts[0]) / every) * every + every
    if start is not None:  # the first training (rows before keep the replay's score)
        first = max(first, math.floor(start / every) * every)
    end = float(frame.ts[-1])
    current: TrainedModel | None = None
    sim = Simulation(on, versions)
    c = first
    while c <= end:
        res = train(frame, labels, c, p, current, arrays=arrays)
        sim.trainings.append({
            "cutoff": c, "version": res.model.version if res.model else None,
            "promoted": res.promoted, "reason": res.reason, **res.metrics,
        })  # fmt: skip
        if res.promoted and res.model is not None:
            current = res.model
        elif res.refreshed is not None:
            current = res.refreshed
        lo, hi = np.searchsorted(frame.ts, [c, c + every], "left")
        if current is not None and hi > lo:
            idx = np.arange(lo, hi, dtype=np.int64)
            on[lo:hi] = serve(current, frame, idx)
            for i in range(lo, hi):
                versions[i] = current.version
        if progress is not None:
            progress(c, res)
        c += every
    return sim


def offline_reference(
    frame: Frame, labels: Labels, p: TrainParams, last: float = 7 * DAY
) -> tuple[F64, Any]:
    """Scores of the last ``last`` of event time by one model trained on everything before
    it with all its labels (known or not by then); (scores, row indices)."""
    everything = {k: (v[0], -math.inf) for k, v in labels.items()}  # every label known
    split = float(frame.ts[-1]) - last
    ref = dataclasses.replace(p, window=math.inf)
    res = train(frame, everything, split, ref)
    idx = np.flatnonzero(frame.ts >= split).astype(np.int64)
    if res.model is None:
        return np.zeros(len(idx)), idx
    return serve(res.model, frame, idx), idx


def metrics(y: Any, score: Any, users: list[str], days: list[str]) -> dict[str, float | None]:
    """AP, ROC AUC and the mean card precision@100 per day."""
    cards = card_precision_at_k(y, score, users, days, 100)
    return {
        "average_precision": average_precision(y, score),
        "roc_auc": roc_auc(y, score),
        "card_precision_at_100": (sum(cards.values()) / len(cards)) if cards else None,
    }


def retrain_report(
    frame: Frame,
    labels: Labels,
    p: TrainParams,
    *,
    every: float = DAY,
    reference: float = 7 * DAY,
    start: float | None = None,
) -> tuple[str, dict[str, Any]]:
    """Simulate scheduled training and compare: off (the replay's scores) vs on, over every
    labelled row and over the last ``reference`` of event time, with the offline reference
    on that last period. (text, figures)."""
    sim = simulate(frame, labels, p, every=every, start=start)
    lab = np.array([labels.get(t, (-1, 0.0))[0] for t in frame.tids], dtype=np.int64)
    users = frame.entities(np.arange(len(frame), dtype=np.int64))["user_id"]
    days = [str(np.datetime64(int(t), "s").astype("datetime64[D]")) for t in frame.ts]
    have = np.flatnonzero(lab >= 0)

    def figs(score: F64, idx: Any) -> dict[str, float | None]:
        return metrics(lab[idx], score[idx], [users[i] or "" for i in idx], [days[i] for i in idx])

    split = float(frame.ts[-1]) - reference
    last = have[frame.ts[have] >= split]
    ref_scores, ref_idx = offline_reference(frame, labels, p, reference)
    ref_full = np.zeros(len(frame))
    ref_full[ref_idx] = ref_scores
    out: dict[str, Any] = {
        "off": figs(frame.score, have),
        "on": figs(sim.on, have),
        "off_last": figs(frame.score, last),
        "on_last": figs(sim.on, last),
        "reference_last": figs(ref_full, last),
        "trainings": len(sim.trainings),
        "promotions": sum(1 for t in sim.trainings if t["promoted"]),
    }

    def row(name: str, m: dict[str, float | None]) -> str:
        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.4f}"

        ap, auc, card = m["average_precision"], m["roc_auc"], m["card_precision_at_100"]
        return f"  {name:<34} {f(ap):>8} {f(auc):>8} {f(card):>10}"

    lines = [
        f"scheduled training: retrain every {every / 3600:g} h of event time, "
        f"{out['trainings']} trainings, {out['promotions']} promoted",
        f"  {'':<34} {'AP':>8} {'ROC AUC':>8} {'card@100':>10}",
        row("all labelled: off (this replay)", out["off"]),
        row("all labelled: on (retrained)", out["on"]),
        row(f"last {reference / DAY:g} d: off", out["off_last"]),
        row(f"last {reference / DAY:g} d: on", out["on_last"]),
        row(f"last {reference / DAY:g} d: offline reference", out["reference_last"]),
    ]
    return "\n".join(lines), out

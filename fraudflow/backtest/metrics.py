"""Detection quality of a replay: pure numpy functions of scores, tiers and labels.

Every function takes plain arrays (``y`` of 0/1 labels, ``score`` of floats)
so it can be checked against scikit-learn and reused by other tools. Ties in
score are handled the way scikit-learn does (one threshold per distinct score)
for the curves; rankings for @K metrics break ties by input order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
TOP_K = (100, 500, 1000)
TIER_RANK = {"approve": 0, "review": 1, "block": 2}


def _arrays(y: Sequence[int] | npt.ArrayLike, score: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    ya = np.asarray(y, dtype=np.int64)
    sa = np.asarray(score, dtype=np.float64)
    if ya.shape != sa.shape or ya.ndim != 1:
        raise ValueError(f"labels and scores differ in shape: {ya.shape} vs {sa.shape}")
    return ya, sa


def _steps(y: IntArray, score: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(thresholds descending, true positives, false positives) at each distinct score."""
    order = np.argsort(-score, kind="stable")
    s, t = score[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # end of each run of equal scores
    tps = np.cumsum(t, dtype=np.float64)[last]
    fps = (last + 1 - tps).astype(np.float64)
    return s[last], tps, fps


def roc_curve(y: npt.ArrayLike, score: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(false-positive rate, true-positive rate), starting at (0, 0)."""
    ya, sa = _arrays(y, score)
    _thr, tps, fps = _steps(ya, sa)
    pos, neg = tps[-1] if tps.size else 0.0, fps[-1] if fps.size else 0.0
    tpr = np.r_[0.0, tps / pos] if pos else np.r_[0.0, np.zeros_like(tps)]
    fpr = np.r_[0.0, fps / neg] if neg else np.r_[0.0, np.zeros_like(fps)]
    return fpr, tpr


def roc_auc(y: npt.ArrayLike, score: npt.ArrayLike) -> float | None:
    """Area under the ROC curve (ties count half); None without both classes.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    ya, sa = _arrays(y, score)
    pos = int(ya.sum())
    neg = ya.size - pos
    if pos == 0 or neg == 0:
        return None
    fpr, tpr = roc_curve(ya, sa)
    return float(np.trapezoid(tpr, fpr))


def pr_curve(y: npt.ArrayLike, score: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(recall, precision) at each distinct score, from the highest score down."""
    ya, sa = _arrays(y, score)
    _thr, tps, fps = _steps(ya, sa)
    pos = tps[-1] if tps.size else 0.0
    precision = tps / np.maximum(tps + fps, 1.0)
    recall = tps / pos if pos else np.zeros_like(tps)
    return recall, precision


def average_precision(y: npt.ArrayLike, score: npt.ArrayLike) -> float | None:
    """Sum over thresholds of (recall step) x precision, as scikit-learn; None without frauds.

    >>> average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333333333333333
    """
    ya, _sa = _arrays(y, score)
    if not ya.any():
        return None
    recall, precision = pr_curve(y, score)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _ranked(score: FloatArray) -> IntArray:
    return np.argsort(-score, kind="stable").astype(np.int64)


def precision_at_k(y: npt.ArrayLike, score: npt.ArrayLike, k: int) -> float | None:
    """Share of frauds among the ``k`` highest scores (fewer if there are fewer rows)."""
    ya, sa = _arrays(y, score)
    top = _ranked(sa)[:k]
    return float(ya[top].mean()) if top.size else None


def recall_at_k(y: npt.ArrayLike, score: npt.ArrayLike, k: int) -> float | None:
    """Share of all frauds that are among the ``k`` highest scores."""
    ya, sa = _arrays(y, score)
    pos = int(ya.sum())
    return float(ya[_ranked(sa)[:k]].sum() / pos) if pos else None


@dataclass(frozen=True)
class Confusion:
    """Alerts at one threshold against labels."""

    flagged: int
    true_positives: int
    positives: int

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.flagged if self.flagged else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.positives if self.positives else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p is not None and r is not None and p + r > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "precision": _r(self.precision),
            "recall": _r(self.recall),
            "f1": _r(self.f1),
        }


def confusion(y: npt.ArrayLike, flagged: npt.ArrayLike) -> Confusion:
    """Counts for a boolean ``flagged`` mask."""
    ya = np.asarray(y, dtype=np.int64)
    fa = np.asarray(flagged, dtype=bool)
    return Confusion(int(fa.sum()), int(ya[fa].sum()), int(ya.sum()))


def tier_ranks(tiers: Sequence[str]) -> IntArray:
    """0 approve, 1 review, 2 block."""
    return np.fromiter((TIER_RANK[t] for t in tiers), dtype=np.int64, count=len(tiers))


@dataclass(frozen=True)
class RuleStats:
    """One rule over the replay: hits, of them fraud, and frauds no other rule hit."""

    hits: int
    fraud_hits: int
    only_this_rule: int

    @property
    def precision(self) -> float | None:
        return self.fraud_hits / self.hits if self.hits else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "precision": _r(self.precision)}


def rule_stats(y: npt.ArrayLike, rules: Sequence[Sequence[str]]) -> dict[str, RuleStats]:
    """Per rule id: hits, fraud hits, and frauds that this rule and no other rule hit.

    >>> s = rule_stats([1, 1, 0], [["a"], ["a", "b"], ["b"]])
    >>> s["a"].to_dict()
    {'hits': 2, 'fraud_hits': 2, 'only_this_rule': 1, 'precision': 1.0}
    """
    ya = np.asarray(y, dtype=np.int64)
    hits: dict[str, list[int]] = {}
    for i, ids in enumerate(rules):
        for rid in set(ids):
            hits.setdefault(rid, []).append(i)
    out: dict[str, RuleStats] = {}
    for rid in sorted(hits):
        idx = np.asarray(hits[rid], dtype=np.int64)
        only = sum(1 for i in hits[rid] if ya[i] == 1 and len(set(rules[i])) == 1)
        out[rid] = RuleStats(len(idx), int(ya[idx].sum()), only)
    return out


def card_precision_at_k(
    y: npt.ArrayLike, score: npt.ArrayLike, users: Sequence[str], days: Sequence[str], k: int = 100
) -> dict[str, float]:
    """Per day: share of frauded users among the ``k`` users with the highest score that day.

    A user's risk on a day is their highest transaction score that day; a user
    is frauded that day when any of their transactions that day is label 1.
    Days with fewer than ``k`` users rank all of them.
    """
    ya, sa = _arrays(y, score)
    risk: dict[str, dict[str, tuple[float, int]]] = {}
    for i, (u, d) in enumerate(zip(users, days, strict=True)):
        day = risk.setdefault(d, {})
        s, lab = day.get(u, (-np.inf, 0))
        day[u] = (max(s, float(sa[i])), max(lab, int(ya[i])))
    out: dict[str, float] = {}
    for d in sorted(risk):
        ranked = sorted(risk[d].items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
        out[d] = sum(lab for _u, (_s, lab) in ranked) / len(ranked)
    return out


def recall_at_share(y: npt.ArrayLike, score: npt.ArrayLike, share: float) -> float | None:
    """Share of all frauds among the top ``share`` of rows by score, ties shared out.

    The top ``share * n`` rows are taken; rows tied with the last one taken count
    in proportion (the expected recall when ties are broken at random), so a
    binary detector is not favoured or penalised by the order of its rows.
    None without frauds.

    >>> recall_at_share([1, 0, 1, 0], [0.9, 1.0, 0.5, 0.5], 0.75)
    0.75
    """
    ya, sa = _arrays(y, score)
    pos = int(ya.sum())
    if not pos:
        return None
    k = min(max(share, 0.0), 1.0) * ya.size
    _thr, tps, fps = _steps(ya, sa)
    counts = tps + fps  # rows with score >= each threshold
    i = int(np.searchsorted(counts, k, side="left"))  # first step reaching k rows
    if i >= counts.size:
        return 1.0
    before_n = counts[i - 1] if i else 0.0
    before_tp = tps[i - 1] if i else 0.0
    tied_n, tied_tp = counts[i] - before_n, tps[i] - before_tp
    return float((before_tp + tied_tp * (k - before_n) / tied_n) / pos)


@dataclass(frozen=True)
class CardRow:
    """One line of the detector report card.

    ``kind`` is ``ensemble`` (the decision's score), ``detector`` (an entry of
    ``detector_scores``) or ``rule`` (a rule's hits as a 0/1 score). ``flagged``
    counts the ensemble's alerts or a rule's hits (None for a detector, which
    does not alert on its own); the quality figures are None without labels.
    """

    name: str
    kind: str
    flagged: int | None
    average_precision: float | None
    roc_auc: float | None
    recall_at_review: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "flagged": self.flagged,
            "average_precision": _r(self.average_precision),
            "roc_auc": _r(self.roc_auc),
            "recall_at_review": _r(self.recall_at_review),
        }


def report_card(
    y: npt.ArrayLike | None,
    score: npt.ArrayLike,
    *,
    detectors: Mapping[str, npt.ArrayLike],
    rules: Sequence[Sequence[str]],
    alerted: npt.ArrayLike,
) -> list[CardRow]:
    """The ensemble, each detector and each rule graded the same way.

    ``y`` None (no labels): alert volume only. The review rate is the share of
    rows ``alerted`` (tier >= review); each line's recall is taken at that share
    of its own ranking (:func:`recall_at_share`).

    >>> rows = report_card([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3], detectors={"z": [0, 1, 0, 0]},
    ...                    rules=[["r"], [], [], []], alerted=[True, False, False, False])
    >>> [(r.name, r.flagged, r.roc_auc, r.recall_at_review) for r in rows]
    [('ensemble', 1, 1.0, 1.0), ('z', None, 0.333333..., 0.0), ('rule:r', 1, 1.0, 1.0)]
    """
    al = np.asarray(alerted, dtype=bool)
    share = float(al.mean()) if al.size else 0.0
    hits: dict[str, FloatArray] = {}
    for i, ids in enumerate(rules):
        for rid in ids:
            hits.setdefault(rid, np.zeros(al.size, dtype=np.float64))[i] = 1.0
    columns: list[tuple[str, str, int | None, npt.ArrayLike]] = [
        ("ensemble", "ensemble", int(al.sum()), score),
        *((name, "detector", None, detectors[name]) for name in sorted(detectors)),
        *((f"rule:{rid}", "rule", int(h.sum()), h) for rid, h in sorted(hits.items())),
    ]
    out: list[CardRow] = []
    for name, kind, flagged, col in columns:
        if y is None:
            out.append(CardRow(name, kind, flagged, None, None, None))
            continue
        ya, sa = _arrays(y, col)
        out.append(
            CardRow(
                name,
                kind,
                flagged,
                average_precision(ya, sa),
                roc_auc(ya, sa),
                recall_at_share(ya, sa, share),
            )
        )
    return out


@dataclass
class Metrics:
    """Every number of a backtest report."""

    transactions: int
    frauds: int
    alert_rate: float | None
    review: Confusion  # tier >= review (an alert)
    block: Confusion  # tier == block
    roc_auc: float | None
    average_precision: float | None
    precision_at: dict[int, float | None]
    recall_at: dict[int, float | None]
    rules: dict[str, RuleStats]
    card_precision_at_100: dict[str, float]
    alerts_per_day: dict[str, int] = field(default_factory=dict)
    card: list[CardRow] = field(default_factory=list)  # the detector report card
    card_labelled: bool = True  # False: the card shows alert volume only

    @property
    def mean_card_precision(self) -> float | None:
        v = list(self.card_precision_at_100.values())
        return sum(v) / len(v) if v else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "transactions": self.transactions,
            "frauds": self.frauds,
            "alert_rate": _r(self.alert_rate),
            "review": self.review.to_dict(),
            "block": self.block.to_dict(),
            "roc_auc": _r(self.roc_auc),
            "average_precision": _r(self.average_precision),
            "precision_at": {str(k): _r(v) for k, v in self.precision_at.items()},
            "recall_at": {str(k): _r(v) for k, v in self.recall_at.items()},
            "rules": {k: v.to_dict() for k, v in self.rules.items()},
            "card_precision_at_100": {k: _r(v) for k, v in self.card_precision_at_100.items()},
            "mean_card_precision_at_100": _r(self.mean_card_precision),
            "alerts_per_day": dict(self.alerts_per_day),
            "report_card": {
                "labelled": self.card_labelled,
                "rows": [r.to_dict() for r in self.card],
            },
        }


def compute(
    y: Sequence[int],
    score: Sequence[float],
    *,
    tiers: Sequence[str],
    rules: Sequence[Sequence[str]],
    users: Sequence[str],
    days: Sequence[str],
    detectors: Mapping[str, npt.ArrayLike] | None = None,
) -> Metrics:
    """All metrics over labelled rows (each argument has one entry per transaction).

    ``detectors``: each detector's score per row, for the report card.
    """
    ya, sa = _arrays(y, score)
    ranks = tier_ranks(tiers)
    alerted = ranks >= 1
    per_day: dict[str, int] = {}
    for d, a in zip(days, alerted.tolist(), strict=True):
        per_day[d] = per_day.get(d, 0) + int(a)
    return Metrics(
        transactions=int(ya.size),
        frauds=int(ya.sum()),
        alert_rate=float(alerted.mean()) if ya.size else None,
        review=confusion(ya, alerted),
        block=confusion(ya, ranks >= 2),
        roc_auc=roc_auc(ya, sa),
        average_precision=average_precision(ya, sa),
        precision_at={k: precision_at_k(ya, sa, k) for k in TOP_K},
        recall_at={k: recall_at_k(ya, sa, k) for k in TOP_K},
        rules=rule_stats(ya, rules),
        card_precision_at_100=card_precision_at_k(ya, sa, users, days, 100),
        alerts_per_day=dict(sorted(per_day.items())),
        card=report_card(ya, sa, detectors=detectors or {}, rules=rules, alerted=alerted),
    )


def _r(x: float | None) -> float | None:
    return round(x, 6) if x is not None else None

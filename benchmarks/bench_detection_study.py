"""Offline detection study for issue 16: calibration, combination, HST inputs, budget.

Replays each file once through the production flow (one shard, file order, the
default settings) and caches, per transaction, what the flow computed: the
ensemble score and tier, the detector and rule scores, the features, and the
Half-Space Trees inputs (``--cache`` DIR, one ``.npz`` per file). Everything
after that runs on the cache, online in file order, using no labels:

1. calibration: each detector's raw score -> tail probability
   ``p = (1 + #{recent >= s}) / (1 + n)`` over the last W scores (a sorted
   window, ``sortedcontainers.SortedList``); W in ``--windows``;
2. combination of the calibrated evidence: noisy-OR of the raw scores (what main
   does), Fisher, min-p with a Sidak correction, mean rank (mean p), Stouffer,
   and the same with the rule evidence calibrated or weighted by precision;
3. Half-Space Trees inputs every dataset has, with fixed or running-quantile
   scaling (raw HST re-run here with the flow's seed, trees and window);
4. an alert budget (rolling quantile of the combined score) at ``--rates``.

Labels (``_label`` in the file) only grade. Tuning files (``--tune``) pick the
window and the formula by the mean over them; ``--validate`` files are reported
with the same choices. Prints tables (Markdown) and writes ``--json``.

    python benchmarks/bench_detection_study.py \\
        --tune /work/data/retail-1m-s2.jsonl /work/data/sparse-1m-s2.jsonl \\
        --validate /work/data/retail-300k-s3.jsonl /work/data/sparse-300k-s3.jsonl \\
        --cache /work/data --json benchmarks/results/detection-study.json
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import platform
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from river import stats as river_stats
from scipy import special, stats
from sklearn.metrics import average_precision_score, roc_auc_score
from sortedcontainers import SortedList

from fraudflow.backtest.replay import CollectSink, DiscardSink, input_source
from fraudflow.config.settings import Settings, load_settings
from fraudflow.flows.detection import build_flow
from fraudflow.flows.io import FlowIO
from fraudflow.flows.wiring import run_flow
from fraudflow.operators.detectors.hst import HST_INPUTS, hst_inputs
from fraudflow.operators.detectors.hst_numpy import BatchHalfSpaceTrees
from fraudflow.records import TIER_RANK, Decision

Array = npt.NDArray[np.float64]

FEATURES = (
    "amount",
    "amount_z",
    "amount_iqr_excess",
    "secs_since_prev",
    "hour_share",
    "count_1m",
    "count_1h",
    "count_24h",
    "sum_1h",
    "sum_24h",
    "txn_count",
    "distinct_merchants_24h",
    "new_merchant",
    "new_device",
    "new_country",
    "travel_kmh",
    "hour",
    "amount_mean",
)
DETECTORS = ("hst", "zscore", "iqr", "rules")
CACHE_VERSION = 1


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- extraction


class _Compact(StatelessSinkPartition[Decision]):
    def __init__(self, into: list[tuple[Any, ...]]) -> None:
        self._into = into

    def write_batch(self, items: list[Decision]) -> None:
        for d in items:
            f = d.features
            hits = {str(h["id"]): (float(h["score"]), h["tier"]) for h in d.rule_hits}
            x = hst_inputs(f)
            self._into.append(
                (
                    d.txn.offset,
                    d.txn.transaction_id,
                    d.txn.user_id,
                    d.txn.ts,
                    d.score,
                    TIER_RANK[d.tier],
                    tuple(float(d.detector_scores.get(k, 0.0)) for k in DETECTORS),
                    tuple(float(f[k]) for k in FEATURES),
                    tuple(x[k] for k in sorted(HST_INPUTS)),
                    hits,
                )
            )


class CompactSink(DynamicSink[Decision]):
    """Keep a tuple per decision instead of the decision (1M decisions fit in memory)."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Compact:
        return _Compact(self.rows)


def extract(path: Path, cache: Path, settings: Settings) -> Path:
    """Replay ``path`` once and write its cache; returns the cache path."""
    out = cache / f"{path.stem}.study-v{CACHE_VERSION}.npz"
    if out.exists() and out.stat().st_mtime >= path.stat().st_mtime:
        return out
    log(f"replaying {path} (one shard, file order) ...")
    t0 = time.perf_counter()
    sink = CompactSink()
    io = FlowIO(
        source=input_source([path]),
        alerts=DiscardSink(),
        dead_letters=CollectSink(),
        decisions=[("scores", sink)],
        require_key=False,
        event_clock=True,
    )
    run_flow(build_flow(settings, io), settings)
    rows = sorted(sink.rows, key=lambda r: r[0])
    log(f"  {len(rows):,} decisions in {time.perf_counter() - t0:.0f}s; reading labels")
    labels: dict[str, tuple[int, str]] = {}
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                rec = orjson.loads(line)
                labels[rec["transaction_id"]] = (int(rec["_label"]), str(rec.get("_scenario", "")))
    rule_ids = sorted({k for r in rows for k in r[9]})
    n = len(rows)
    rule_score = np.zeros((n, len(rule_ids)))
    rule_forced = np.zeros(n, dtype=np.int8)
    for i, r in enumerate(rows):
        for k, (s, tier) in r[9].items():
            rule_score[i, rule_ids.index(k)] = s
            if tier:
                rule_forced[i] = max(rule_forced[i], TIER_RANK[tier])
    users = {u: i for i, u in enumerate(sorted({r[2] for r in rows}))}
    scen = sorted({labels[r[1]][1] for r in rows})
    np.savez_compressed(
        out,
        y=np.array([labels[r[1]][0] for r in rows], dtype=np.int8),
        scenario=np.array([scen.index(labels[r[1]][1]) for r in rows], dtype=np.int8),
        scenarios=np.array(scen),
        user=np.array([users[r[2]] for r in rows], dtype=np.int32),
        ts=np.array([r[3] for r in rows]),
        score=np.array([r[4] for r in rows]),
        tier=np.array([r[5] for r in rows], dtype=np.int8),
        det=np.array([r[6] for r in rows]),
        feat=np.array([r[7] for r in rows]),
        hst_in=np.array([r[8] for r in rows]),
        rule_score=rule_score,
        rule_forced=rule_forced,
        rule_ids=np.array(rule_ids),
        seed=np.array([settings.model.seed]),
    )
    log(f"  cached {out}")
    return out


@dataclass
class Data:
    name: str
    y: npt.NDArray[np.int8]
    score: Array
    tier: npt.NDArray[np.int8]
    det: dict[str, Array]
    feat: dict[str, Array]
    hst_in: Array
    rule_score: Array
    rule_forced: npt.NDArray[np.int8]
    rule_ids: list[str]
    user: npt.NDArray[np.int32]
    scenario: npt.NDArray[np.int8]
    scenarios: list[str]
    extra: dict[str, Array] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.y)


def load(path: Path, name: str) -> Data:
    z = dict(np.load(path))  # each array read once (an NpzFile decompresses on every get)
    return Data(
        name=name,
        y=z["y"],
        score=z["score"],
        tier=z["tier"],
        det={k: np.ascontiguousarray(z["det"][:, i]) for i, k in enumerate(DETECTORS)},
        feat={k: np.ascontiguousarray(z["feat"][:, i]) for i, k in enumerate(FEATURES)},
        hst_in=z["hst_in"],
        rule_score=z["rule_score"],
        rule_forced=z["rule_forced"],
        rule_ids=[str(s) for s in z["rule_ids"]],
        user=z["user"],
        scenario=z["scenario"],
        scenarios=[str(s) for s in z["scenarios"]],
    )


# ---------------------------------------------------------------- metrics


def recall_at(y: npt.NDArray[np.int8], stat: Array, share: float) -> float:
    """Recall among the top ``share`` of rows by ``stat``; ties at the cut count pro rata."""
    k = max(1, round(share * len(y)))
    order = np.sort(stat)[::-1]
    thr = order[k - 1]
    above = stat > thr
    at = stat == thr
    need = k - int(above.sum())
    hit = float(y[above].sum()) + float(y[at].sum()) * need / max(int(at.sum()), 1)
    return hit / max(int(y.sum()), 1)


def grade(y: npt.NDArray[np.int8], stat: Array, review_share: float) -> dict[str, float]:
    """AP, ROC AUC and recall at the flow's review share and at 1 / 1.5 / 2 %."""
    stat = np.nan_to_num(stat, nan=0.0, posinf=1e300, neginf=-1e300)
    return {
        "ap": float(average_precision_score(y, stat)),
        "auc": float(roc_auc_score(y, stat)),
        "r@review": recall_at(y, stat, review_share),
        "r@1%": recall_at(y, stat, 0.01),
        "r@1.5%": recall_at(y, stat, 0.015),
        "r@2%": recall_at(y, stat, 0.02),
    }


# ---------------------------------------------------------------- 1. calibration


def tail_p(s: Array, window: int) -> Array:
    """Online tail probability of each score among the previous ``window`` scores:
    ``(1 + #{recent >= s}) / (1 + n)``, scored before learned (exact, a sorted window).
    A score tied with most of the window (a detector at 0) gets p ~ 1."""
    sl: SortedList = SortedList()
    q: deque[float] = deque()
    out = np.empty(len(s))
    find, add, remove, push, pop = sl.bisect_left, sl.add, sl.remove, q.append, q.popleft
    n = 0
    for i, v in enumerate(s.tolist()):
        out[i] = (1 + n - find(v)) / (1 + n)
        add(v)
        push(v)
        if n == window:
            remove(pop())
        else:
            n += 1
    return out


def tail_p_blocked(s: Array, window: int, every: int = 1000) -> Array:
    """The cheap variant: the window's sorted copy is refreshed every ``every`` rows and
    each row is looked up in the last copy (one ``searchsorted`` per row online)."""
    out = np.ones(len(s))
    for start in range(every, len(s), every):
        ref = np.sort(s[max(0, start - window) : start])
        blk = s[start : start + every]
        ge = len(ref) - np.searchsorted(ref, blk, side="left")
        out[start : start + every] = (1 + ge) / (1 + len(ref))
    return out


def time_tail_p(s: Array, window: int, rows: int = 100_000) -> tuple[float, float]:
    """µs per row of the exact and the blocked online calibration (one detector)."""
    x = s[:rows]
    t0 = time.perf_counter()
    tail_p(x, window)
    t1 = time.perf_counter()
    # the blocked variant as a flow would run it: one bisect per row plus a sort per block
    ref: list[float] = []
    buf: deque[float] = deque(maxlen=window)
    res = 0.0
    for i, v in enumerate(x.tolist()):
        if i % 1000 == 0:
            ref = sorted(buf)
        res += (1 + len(ref) - bisect.bisect_left(ref, v)) / (1 + len(ref))
        buf.append(v)
    t2 = time.perf_counter()
    return (t1 - t0) / len(x) * 1e6, (t2 - t1) / len(x) * 1e6


# ---------------------------------------------------------------- 3. HST inputs


def run_hst(x: Array, seed: int, settings: Settings, names: Sequence[str]) -> Array:
    """Raw Half-Space Trees scores (score before learn), the flow's trees/height/window."""
    m = settings.model
    model = BatchHalfSpaceTrees(
        names, n_trees=m.hst_trees, height=m.hst_height, window_size=m.hst_window,
        seed=seed * 1009 + 0,
    )  # fmt: skip
    cols = [list(names).index(k) for k in model.features]  # the model sorts its names
    x = x[:, cols]
    out = np.empty(len(x))
    step = 50_000
    for a in range(0, len(x), step):
        out[a : a + step] = model.score_then_learn(np.ascontiguousarray(x[a : a + step]))
    return out


def generic_inputs(d: Data) -> dict[str, Array]:
    """Inputs every dataset has (amount, user, timestamp, merchant), before scaling."""
    f = d.feat
    gap = np.where(f["secs_since_prev"] >= 0, f["secs_since_prev"], 1e7)
    return {
        "log_amount": np.log1p(np.maximum(f["amount"], 0.0)),
        "amount_z": f["amount_z"],
        "log_gap": -np.log1p(np.minimum(gap, 1e7)),  # higher = sooner
        "rare_hour": -f["hour_share"],  # higher = a rarer hour for this user
        "count_1h": np.log1p(f["count_1h"]),
        "count_24h": np.log1p(f["count_24h"]),
        "merchants_24h": np.log1p(f["distinct_merchants_24h"]),
        "new_merchant": f["new_merchant"],
        # retail-only fields (0 where the data has no device, country or location)
        "new_device": f["new_device"],
        "new_country": f["new_country"],
        "travel": f["travel_kmh"],
    }


def fixed_scale(name: str, v: Array) -> Array:
    """Fixed transforms into [0, 1] (no state)."""
    if name == "log_amount":
        return np.minimum(1.0, v / 12.0)
    if name == "amount_z":
        return 0.5 + 0.5 * np.tanh(v / 3.0)
    if name == "log_gap":  # -log1p(secs): 0 s -> 1, 1 h -> ~0.5, a week -> 0
        return np.clip(1.0 + v / 16.0, 0.0, 1.0)
    if name == "rare_hour":
        return 1.0 - np.minimum(1.0, -v * 8.0)
    if name in ("count_1h", "count_24h", "merchants_24h"):
        return np.minimum(1.0, v / 5.0)
    if name == "travel":
        return np.minimum(1.0, v / 1000.0)
    return np.clip(v, 0.0, 1.0)


def robust_scale(v: Array, window: int = 20_000, every: int = 1000) -> Array:
    """Per-shard running median / IQR (of the previous ``window`` rows, refreshed every
    ``every`` rows) mapped into [0, 1] by ``0.5 + 0.5 tanh((x - med) / (2 IQR))``."""
    out = np.full(len(v), 0.5)
    for start in range(every, len(v), every):
        ref = v[max(0, start - window) : start]
        q1, med, q3 = np.quantile(ref, (0.25, 0.5, 0.75))
        iqr = q3 - q1
        if iqr <= 0:
            iqr = max(float(np.std(ref)), 1e-9)
        blk = v[start : start + every]
        out[start : start + every] = 0.5 + 0.5 * np.tanh((blk - med) / (2.0 * iqr))
    return out


def cdf_scale(v: Array, window: int = 20_000, every: int = 1000) -> Array:
    """Per-shard running empirical CDF (mid-rank in the previous ``window`` rows)."""
    out = np.full(len(v), 0.5)
    for start in range(every, len(v), every):
        ref = np.sort(v[max(0, start - window) : start])
        blk = v[start : start + every]
        lo = np.searchsorted(ref, blk, side="left")
        hi = np.searchsorted(ref, blk, side="right")
        out[start : start + every] = (lo + hi) / (2.0 * len(ref))
    return out


# ---------------------------------------------------------------- 2. combination


def _f(x: Any) -> Array:
    return np.asarray(x, dtype=np.float64)


def _neglog(p: Array) -> Array:
    return _f(-np.log(np.clip(p, 1e-300, 1.0)))


def fisher(ps: Sequence[Array]) -> Array:
    """-log of Fisher's combined p: chi2 tail of -2 sum log p with 2k degrees of freedom."""
    t = 2.0 * sum(_neglog(p) for p in ps)
    return _f(-stats.chi2.logsf(t, 2 * len(ps)))


def sidak(ps: Sequence[Array]) -> Array:
    """-log of min p with Sidak's correction, 1 - (1 - min p)^k."""
    pmin = np.minimum.reduce(list(ps))
    k = len(ps)
    return _f(-np.log(np.clip(-np.expm1(k * np.log1p(-np.clip(pmin, 0, 1 - 1e-16))), 1e-300, 1)))


def mean_rank(ps: Sequence[Array]) -> Array:
    return _f(-np.mean(ps, axis=0))


def stouffer_pos(ps: Sequence[Array]) -> Array:
    """Stouffer over the positive z only (a silent detector, p ~ 1, adds 0, not -inf)."""
    z = [np.maximum(0.0, special.ndtri(1.0 - np.clip(p, 1e-300, 1.0))) for p in ps]
    return _f(sum(z)) / math.sqrt(len(ps))


def sb_probability(p: Array, prior: float) -> Array:
    """A label-free p -> probability of fraud: the Sellke-Berger bound on the Bayes factor,
    ``BF <= 1 / (-e p ln p)`` for p < 1/e, applied to prior odds ``prior / (1 - prior)``."""
    p = np.clip(p, 1e-300, 1.0)
    with np.errstate(divide="ignore"):  # p = 1 divides by 0 in the branch not taken
        bf = np.where(p < 1.0 / math.e, 1.0 / (-math.e * p * np.log(p)), 1.0)
    odds = prior / (1.0 - prior) * bf
    return _f(odds / (1.0 + odds))


def rule_channel(rule_score: Array, precision: Array) -> Array:
    """Noisy-OR over the rules that hit of each rule's measured precision."""
    hit = rule_score > 0
    return _f(1.0 - np.prod(np.where(hit, 1.0 - precision[None, :], 1.0), axis=1))


def rule_precision(d: Data) -> dict[str, float]:
    """Each rule's precision on a labelled file (what a backtest reports)."""
    out = {}
    for j, r in enumerate(d.rule_ids):
        hit = d.rule_score[:, j] > 0
        out[r] = float(d.y[hit].mean()) if hit.any() else 0.0
    return out


COMBINERS: dict[str, Callable[[Sequence[Array]], Array]] = {
    "fisher": fisher,
    "sidak": sidak,
    "mean_rank": mean_rank,
    "stouffer+": stouffer_pos,
}


# ---------------------------------------------------------------- 4. budget


def budget_tiers(score: Array, rate: float, window: int = 20_000) -> npt.NDArray[np.bool_]:
    """The alert budget of fraudflow/operators/decide/budget.py on a score (every row a
    review candidate): review iff score > the rolling (1 - rate) quantile of the previous
    ``window`` scores, once min(window, 1000) have been seen."""
    rq = river_stats.RollingQuantile(q=1.0 - rate, window_size=window)
    out = np.zeros(len(score), dtype=bool)
    warm = min(window, 1000)
    for i, v in enumerate(score.tolist()):
        if i >= warm:
            out[i] = v > (rq.get() or 0.0)
        rq.update(v)
    return out


# ---------------------------------------------------------------- the study


HST_SETS: dict[str, tuple[str, ...]] = {
    "generic8": (
        "log_amount", "amount_z", "log_gap", "rare_hour", "count_1h", "count_24h",
        "merchants_24h", "new_merchant",
    ),
    "core5": ("log_amount", "amount_z", "log_gap", "rare_hour", "count_24h"),
    "union11": (
        "log_amount", "amount_z", "log_gap", "rare_hour", "count_1h", "count_24h",
        "merchants_24h", "new_merchant", "new_device", "new_country", "travel",
    ),
}  # fmt: skip
SCALINGS = ("fixed", "robust", "cdf")


def hst_variants(d: Data, seed: int, settings: Settings) -> dict[str, Array]:
    """Raw HST scores for the flow's inputs and each (input set, scaling)."""
    out = {"flow9/fixed": run_hst(d.hst_in, seed, settings, sorted(HST_INPUTS))}
    raw = generic_inputs(d)
    scaled: dict[tuple[str, str], Array] = {}
    for sc in SCALINGS:
        for k, v in raw.items():
            if sc == "fixed":
                scaled[k, sc] = fixed_scale(k, v)
            elif k.startswith("new_"):
                scaled[k, sc] = v  # already 0/1
            else:
                scaled[k, sc] = robust_scale(v) if sc == "robust" else cdf_scale(v)
    for set_name, names in HST_SETS.items():
        for sc in SCALINGS:
            x = np.column_stack([scaled[k, sc] for k in names])
            out[f"{set_name}/{sc}"] = run_hst(x, seed, settings, names)
    return out


class Calibrated:
    """Tail probabilities by (score name, window), each computed once."""

    def __init__(self) -> None:
        self.memo: dict[tuple[str, int], Array] = {}

    def __call__(self, name: str, s: Array, window: int, blocked: bool = False) -> Array:
        key = (name, window)
        if key not in self.memo:
            self.memo[key] = tail_p_blocked(s, window) if blocked else tail_p(s, window)
        return self.memo[key]


def evidence(
    d: Data, cal: Calibrated, hst: tuple[str, Array], window: int, rules: str
) -> list[Array]:
    """The calibrated p of each detector, plus the rules' (``rules``: none, combined
    -- the noisy-OR rule score as one detector -- or per-rule, each rule its own)."""
    ps = [
        cal(hst[0], hst[1], window),
        cal("zscore", d.det["zscore"], window),
        cal("iqr", d.det["iqr"], window),
    ]
    if rules == "combined":
        ps.append(cal("rules", d.det["rules"], window))
    elif rules == "per-rule":
        ps += [
            cal(f"rule:{r}", d.rule_score[:, j], window, blocked=True)
            for j, r in enumerate(d.rule_ids)
        ]
    return ps


def combinations(
    d: Data, memo: Calibrated, hsts: Sequence[tuple[str, str, Array]], windows: Sequence[int],
    precision: dict[str, float],
) -> Iterator[tuple[str, Array]]:  # fmt: skip
    """Every combined statistic of the study, by key (higher = more suspicious)."""
    for hst_name, hst_label, hraw in hsts:
        for w in windows:
            for rules in ("none", "combined", "per-rule"):
                ps = evidence(d, memo, (hst_label, hraw), w, rules)
                for cname, fn in COMBINERS.items():
                    key = f"{cname} | rules {rules} | W={w} | hst {hst_name}"
                    st = fn(ps)
                    yield key, st
            # the rules by measured precision, the detectors' Fisher p as a probability
            prec = np.array([precision.get(r, 0.0) for r in d.rule_ids])
            r_ch = rule_channel(d.rule_score, prec)
            p_h, p_z, p_i = evidence(d, memo, (hst_label, hraw), w, "none")
            p_amount = np.exp(-sidak([p_z, p_i]))  # z-score and IQR: one (amount) family
            for dname, pd in (
                ("fisher3", np.exp(-fisher([p_h, p_z, p_i]))),
                ("fisher2", np.exp(-fisher([p_h, p_amount]))),
                ("sidak3", np.exp(-sidak([p_h, p_z, p_i]))),
            ):  # fmt: skip
                key = f"{dname} (detectors only) | W={w} | hst {hst_name}"
                yield key, -np.log(pd)
                for prior in PRIORS:
                    dp = sb_probability(pd, prior)
                    for how, st in (
                        ("noisy-OR", 1.0 - (1.0 - dp) * (1.0 - r_ch)),
                        ("max", np.maximum(dp, r_ch)),
                    ):
                        key = (
                            f"{dname}->P(prior {prior}) {how} rule precision | W={w} "
                            f"| hst {hst_name}"
                        )
                        yield key, st
        # weighted evidence: T = sum (or max) of w_i * -ln p_i over hst, zscore, iqr, then T
        # calibrated again online (its own tail p, so dependence between detectors is priced)
        w = max(windows)
        prec = np.array([precision.get(r, 0.0) for r in d.rule_ids])
        r_ch = rule_channel(d.rule_score, prec)
        r_conf = d.det["rules"]  # noisy-OR of the hit rules' configured scores
        nl = [_neglog(p) for p in evidence(d, memo, (hst_label, hraw), w, "none")]
        # the direct form (no second calibration): p_D = min(p_hst, p_z^wz, p_iqr^wi), ties
        # at the window's floor broken by the raw HST score
        ph, pz, pi = evidence(d, memo, (hst_label, hraw), w, "none")
        for wz, wi in ((0.0, 0.0), (0.25, 0.25), (0.5, 0.5)):
            pdir = np.minimum.reduce([ph, pz**wz if wz else np.ones_like(pz), pi**wi if wi
                                      else np.ones_like(pi)])  # fmt: skip
            for prior in (0.03, 0.1):
                dp = sb_probability(pdir, prior)
                for rname, rc in (("precision", r_ch), ("configured score", r_conf)):
                    st = 1.0 - (1.0 - dp) * (1.0 - rc) + 1e-9 * np.tanh(hraw)
                    key = f"min(p_hst, p_z^{wz}, p_iqr^{wi})->P(prior {prior}) noisy-OR rule "
                    key += f"{rname} | W={w} | hst {hst_name}"
                    yield key, _f(st)
        for wz in WEIGHTS:
            for wi in WEIGHTS:
                for agg in ("sum", "max"):
                    if agg == "max" and wz == 0 and wi == 0:
                        continue
                    terms = [nl[0], wz * nl[1], wi * nl[2]]
                    t = sum(terms) if agg == "sum" else np.maximum.reduce(terms)
                    pd = tail_p_blocked(_f(t), w)
                    base = f"w-{agg}(hst 1, z {wz}, iqr {wi})"
                    key = f"{base} (detectors only) | W={w} | hst {hst_name}"
                    yield key, _f(t)
                    for prior in (0.01, 0.03):
                        dp = sb_probability(pd, prior)
                        # the rules by measured precision, or (no labels yet) by their
                        # configured scores; ties of pd broken by t (same order as t)
                        for rname, rc in (("precision", r_ch), ("configured score", r_conf)):
                            st = 1.0 - (1.0 - dp) * (1.0 - rc) + 1e-9 * np.tanh(t / 50.0)
                            key = f"{base}->P(prior {prior}) noisy-OR rule {rname} | W={w} "
                            key += f"| hst {hst_name}"
                            yield key, _f(st)


PRIORS = (0.003, 0.01, 0.03)
WEIGHTS = (0.0, 0.25, 0.5, 1.0)


def study_file(
    d: Data, hv: dict[str, Array], windows: Sequence[int], hst_choice: str,
    precision: dict[str, float],
) -> dict[str, Any]:  # fmt: skip
    y = d.y
    review_share = float((d.tier >= 1).mean())
    res: dict[str, Any] = {
        "rows": d.n, "fraud": int(y.sum()), "flow_review_share": review_share,
    }  # fmt: skip
    log(f"{d.name}: {d.n:,} rows, {int(y.sum()):,} fraud, flow alerts {review_share:.2%}")
    g = {"ensemble (main, noisy-OR)": grade(y, d.score, review_share)}
    for k in DETECTORS:
        g[f"{k} (flow score)"] = grade(y, d.det[k], review_share)
    g["raw amount"] = grade(y, d.feat["amount"], review_share)
    g["amount_z"] = grade(y, d.feat["amount_z"], review_share)
    res["baseline"] = g
    res["best_single_ap"] = max(v["ap"] for k, v in g.items() if "ensemble" not in k)
    res["hst"] = {k: grade(y, v, review_share) for k, v in hv.items()}
    hst_now = hv["flow9/fixed"]
    hst_new = hv[hst_choice]
    log("  calibration ...")
    memo = Calibrated()
    cal: dict[str, Any] = {}
    for w in windows:
        for name, s in (
            ("hst-flow", hst_now), (f"hst-{hst_choice}", hst_new), ("zscore", d.det["zscore"]),
            ("iqr", d.det["iqr"]), ("rules", d.det["rules"]),
        ):  # fmt: skip
            p = memo(name, s, w)
            row = grade(y, _neglog(p), review_share)
            row["p<=1%"] = float((p <= 0.01).mean())
            row["p<=0.1%"] = float((p <= 0.001).mean())
            cal[f"{name} W={w}"] = row
    res["calibration"] = cal
    log("  combinations ...")
    hsts = [("flow", "hst-flow", hst_now), ("new", f"hst-{hst_choice}", hst_new)]
    res["combination"] = {
        k: grade(y, st, review_share) for k, st in combinations(d, memo, hsts, windows, precision)
    }
    res["_again"] = (memo, hsts, precision)
    return res


def budget_study(y: npt.NDArray[np.int8], stat: Array, rates: Sequence[float]) -> dict[str, Any]:
    out = {}
    for r in rates:
        rev = budget_tiers(stat, r)
        tp = int((rev & (y == 1)).sum())
        out[f"{r:.1%}"] = {
            "share": float(rev.mean()),
            "recall": tp / max(int(y.sum()), 1),
            "precision": tp / max(int(rev.sum()), 1),
        }
    return out


def table(rows: dict[str, dict[str, float]], cols: Sequence[str]) -> list[str]:
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for k, v in rows.items():
        lines.append(f"| {k} | " + " | ".join(
            "-" if c not in v else f"{v[c]:.4f}" for c in cols) + " |")  # fmt: skip
    return lines


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings(None, {}, {}).replace(recovery_dir=None)
    seed = settings.model.seed
    files = [*args.tune, *args.validate]
    data = {p: load(extract(p, args.cache, settings), p.stem) for p in files}
    if args.extract_only:
        return {}
    out: dict[str, Any] = {"machine": machine(), "args": " ".join(sys.argv[1:]), "files": {}}
    # µs/row of the online calibration
    d0 = data[args.tune[0]]
    out["us_per_row"] = {
        w: dict(zip(("exact", "blocked"), time_tail_p(d0.feat["amount_z"], w), strict=True))
        for w in args.windows
    }  # fmt: skip
    log(f"calibration cost (µs/row, exact sorted window / blocked): {out['us_per_row']}")
    # 3. HST inputs: choose by the mean ROC AUC over the tuning files
    hvs: dict[Path, dict[str, Array]] = {}
    for p in files:
        log(f"{p.stem}: HST variants ...")
        hvs[p] = hst_variants(data[p], seed, settings)
    auc = {
        k: _mean([float(roc_auc_score(data[p].y, hvs[p][k])) for p in args.tune])
        for k in hvs[args.tune[0]]
    }
    hst_choice = args.hst or max((k for k in auc if k != "flow9/fixed"), key=lambda k: auc[k])
    out["hst_choice"] = hst_choice
    out["hst_mean_auc_tune"] = auc
    log(f"HST inputs chosen on the tuning files: {hst_choice} (mean AUC {auc[hst_choice]:.4f})")
    # rules' precision measured on the tuning file of the same world (a backtest's figure)
    world = {p: p.stem.split("-")[0] for p in files}
    precision = {world[p]: rule_precision(data[p]) for p in args.tune}
    out["rule_precision"] = precision
    for p in files:
        prec = precision.get(world[p], {})
        out["files"][p.stem] = study_file(data[p], hvs[p], args.windows, hst_choice, prec)
    # 2. combination: by the worst tuning file's AP / its best single detector's AP
    keys = list(out["files"][args.tune[0].stem]["combination"])
    ratio = {
        k: min([
            out["files"][p.stem]["combination"][k]["ap"] / out["files"][p.stem]["best_single_ap"]
            for p in args.tune
        ])
        for k in keys
    }  # fmt: skip
    choice = args.combination or max(keys, key=lambda k: ratio[k])
    out["combination_choice"] = choice
    out["combination_ratio_tune"] = ratio
    log(f"combination chosen on the tuning files: {choice} (worst AP ratio {ratio[choice]:.3f})")
    # 4. budget on the chosen statistic
    for p in files:
        f = out["files"][p.stem]
        log(f"{p.stem}: budget ...")
        memo, hsts, prec = f.pop("_again")
        windows = [int(choice.split("W=")[1].split(" ")[0])]
        stat = next(st for k, st in combinations(data[p], memo, hsts, windows, prec) if k == choice)
        f["budget"] = budget_study(data[p].y, stat, args.rates)
    return out


def hst_seed_study(args: argparse.Namespace) -> dict[str, Any]:
    """Half-Space Trees AP / ROC AUC over model seeds, per input set (fixed scaling): the
    flow's 9 inputs, those minus the ones constant over the shard's first 1,000 rows, and
    the generic 8 and union 11 sets."""
    settings = load_settings(None, {}, {}).replace(recovery_dir=None)
    if args.hst_trees:
        settings = settings.replace(hst_trees=args.hst_trees)
    names9 = sorted(HST_INPUTS)
    out: dict[str, Any] = {}
    for p in [*args.tune, *args.validate]:
        d = load(extract(p, args.cache, settings), p.stem)
        keep = [i for i in range(len(names9)) if d.hst_in[:1000, i].std() > 0]
        raw = generic_inputs(d)
        sets: dict[str, tuple[Array, Sequence[str]]] = {
            "flow9": (d.hst_in, names9),
            "flow9 minus constant": (d.hst_in[:, keep], [names9[i] for i in keep]),
        }
        for set_name in ("generic8", "union11"):
            inputs = HST_SETS[set_name]
            sets[set_name] = (np.column_stack([fixed_scale(k, raw[k]) for k in inputs]), inputs)
        res: dict[str, Any] = {}
        for set_name, (x, names) in sets.items():
            if args.hst_sets and set_name not in args.hst_sets:
                continue
            aps, aucs = [], []
            for seed in args.hst_seeds:
                log(f"{p.stem}: HST {set_name}, seed {seed}")
                r = run_hst(x, seed, settings, names)
                aps.append(float(average_precision_score(d.y, r)))
                aucs.append(float(roc_auc_score(d.y, r)))
            res[set_name] = {"ap": aps, "auc": aucs, "inputs": list(names)}
            print(
                f"{p.stem:16} {set_name:22} trees {settings.model.hst_trees:3}  "
                f"AP mean {np.mean(aps):.4f} (min {min(aps):.4f}, "
                f"max {max(aps):.4f})  ROC AUC mean {np.mean(aucs):.4f} (min {min(aucs):.4f}, "
                f"max {max(aucs):.4f})",
                flush=True,
            )
        out[p.stem] = res
    return out


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"


def report(out: dict[str, Any], tune: Sequence[Path]) -> str:
    cols = ("ap", "auc", "r@review", "r@1%", "r@1.5%", "r@2%")
    lines = [f"calibration cost, µs/row (window: exact, blocked): {out['us_per_row']}", ""]
    lines.append(f"HST choice {out['hst_choice']}; combination choice {out['combination_choice']}")
    for name, f in out["files"].items():
        role = "tune" if name in {p.stem for p in tune} else "validate"
        lines += ["", f"### {name} ({role}): {f['rows']:,} rows, {f['fraud']:,} fraud, "
                  f"flow review share {f['flow_review_share']:.2%}", ""]  # fmt: skip
        lines += [*table(f["baseline"], cols), ""]
        lines += [*table(f["hst"], cols), ""]
        lines += [*table(f["calibration"], (*cols, "p<=1%", "p<=0.1%")), ""]
        comb = dict(sorted(f["combination"].items(), key=lambda kv: -kv[1]["ap"]))
        lines += [*table(comb, cols), ""]
        b = f.get("budget", {})
        lines += table(b, ("share", "recall", "precision"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--tune",
        type=Path,
        nargs="+",
        required=True,
        metavar="FILE",
        help="files (with _label) the choices are tuned on: every world",
    )
    ap.add_argument(
        "--validate",
        type=Path,
        nargs="*",
        default=[],
        metavar="FILE",
        help="files reported with the tuned choices",
    )
    ap.add_argument("--cache", type=Path, default=Path("/work/data"), help="where the .npz go")
    ap.add_argument("--extract-only", action="store_true", help="replay and cache, then stop")
    ap.add_argument(
        "--windows",
        type=int,
        nargs="+",
        default=[5000, 20000, 50000, 100000],
        help="calibration windows (rows per shard)",
    )
    ap.add_argument(
        "--rates", type=float, nargs="+", default=[0.01, 0.015, 0.02], help="alert budget rates"
    )
    ap.add_argument("--hst", help="HST input set/scaling instead of the tuned choice")
    ap.add_argument("--combination", help="combination key instead of the tuned choice")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument(
        "--hst-seeds",
        type=int,
        nargs="+",
        metavar="SEED",
        help="only the HST seed study: each input set with these model seeds",
    )
    ap.add_argument("--hst-trees", type=int, help="trees per model in the HST seed study")
    ap.add_argument("--hst-sets", nargs="+", help="input sets of the HST seed study (all)")
    args = ap.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.hst_seeds:
        seeds = hst_seed_study(args)
        if args.json:
            args.json.write_text(json.dumps({"machine": machine(), "hst_seeds": seeds}, indent=1))
        return 0
    out = run(args)
    if not out:
        return 0
    print(report(out, args.tune))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Learn from confirmed labels: entity fraud rates and an online supervised model.

Two pure steps on :class:`~fraudflow.state.feedback.FeedbackState`:

- :func:`enrich` (a scored row): add the entity risk features (the smoothed
  confirmed-fraud rate and fraud count of the row's merchant, device,
  country... over each entity window) and the supervised model's probability,
  *before* anything is learned from this transaction; then count it at its
  entities and keep what the model saw until its label arrives. A row whose
  label has not come within the label horizon counts as legit: the model
  learns it as such and it leaves.
- :func:`apply_label` (a label): find the kept row, move the entity fraud
  counts (a later label replaces an earlier one, counts included) and let
  the model learn the row with its label. A label for a transaction that is
  not kept is returned as a dead letter: ``label_expired`` when it left
  recently, ``label_unknown_transaction`` otherwise, unless
  ``early_label_horizon`` is set: then it waits (:func:`feedback_batch`) and
  is applied right after its transaction is scored, or dead-lettered
  ``label_unmatched`` when the transaction has not come within the horizon
  (or ``max_early_labels`` newer ones push it out, or the input ends).

A smoothed rate is ``(frauds + m * p0) / (transactions + m)`` over the
window, where ``p0`` is the overall confirmed-fraud rate in the same window
and ``m`` is ``entity_prior_strength``: an entity with few transactions
stays near the overall rate until its own evidence outweighs it.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from river import linear_model, optim, preprocessing

from fraudflow.config.settings import FeedbackSettings
from fraudflow.operators.features.catalogue import (
    FeatureSpec,
    entity_feature_names,
    entity_prefix,
    window_label,
)
from fraudflow.records import DeadLetter, FeatureRow, Label
from fraudflow.state.feedback import (
    DAY,
    DAY_OF,
    ENTITIES,
    LABEL,
    REPORTED_AT,
    TS,
    FeedbackState,
    Pending,
    X,
    new_pending,
)

TOTAL = ""  # the entity key of the totals over every transaction
SWEEP_ROWS = 50_000  # rows between sweeps of idle entities
# model inputs with heavy tails enter as log1p(max(x, 0)); the rest are clipped
_LOG_INPUTS = (
    "amount",
    "amount_mean",
    "secs_since_prev",
    "txn_count",
    "travel_kmh",
    "device_age_h",
    "country_age_h",
    "distinct_merchants_24h",
    "distinct_countries_24h",
)
_NOT_INPUTS = ("hour", "late", "supervised_score")
_CLIP = 50.0


@dataclass(frozen=True)
class FeedbackParams:
    """Feedback settings, pre-computed once."""

    fields: tuple[tuple[str, str], ...]  # (transaction attribute, feature prefix)
    windows: tuple[tuple[str, int], ...]  # (label, days), shortest first
    horizon: float
    max_pending: int
    prior_strength: float
    learning_rate: float
    warmup: int
    inputs: tuple[tuple[str, int], ...]  # (feature, 0 raw | 1 log1p), the model's input order
    early_horizon: float = 0.0  # seconds a label may wait for its transaction (0: none)
    max_early: int = 100_000  # labels waiting at most
    # derived: feature names per field and window, input names by transform
    names: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    log_inputs: tuple[str, ...] = ()
    raw_inputs: tuple[str, ...] = ()
    packer: struct.Struct = field(init=False, repr=False, compare=False)  # kept inputs, float32

    def __post_init__(self) -> None:
        names = tuple(
            (attr, tuple(entity_feature_names(attr, lab) for lab, _ in self.windows))
            for attr, _prefix in self.fields
        )
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "log_inputs", tuple(n for n, log in self.inputs if log))
        object.__setattr__(self, "raw_inputs", tuple(n for n, log in self.inputs if not log))
        object.__setattr__(self, "packer", struct.Struct(f"<{len(self.inputs)}f"))

    def named(self, values: tuple[float, ...]) -> dict[str, float]:
        """Model input values (in :attr:`input_names` order) by name, as river takes them."""
        return dict(zip(self.input_names, values, strict=True))

    def kept_inputs(self, row: Pending) -> dict[str, float]:
        """A kept transaction's model inputs by name."""
        return self.named(self.packer.unpack(row[X]))

    @property
    def keep_days(self) -> int:
        return max(d for _, d in self.windows)

    @property
    def spans(self) -> tuple[int, ...]:
        return tuple(d for _, d in self.windows)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The order of :func:`model_values`."""
        return self.log_inputs + self.raw_inputs

    @classmethod
    def from_settings(
        cls, f: FeedbackSettings, catalogue: Mapping[str, FeatureSpec]
    ) -> FeedbackParams:
        inputs = tuple(
            (n, int(n in _LOG_INPUTS or n.startswith(("count_", "sum_")) or "_frauds_" in n))
            for n, spec in catalogue.items()
            if spec.type in (int, float, bool) and n not in _NOT_INPUTS
        )
        windows = sorted((int(w.total_seconds() // DAY), window_label(w)) for w in f.entity_windows)
        return cls(
            fields=tuple((x, entity_prefix(x)) for x in f.entity_fields),
            windows=tuple((lab, days) for days, lab in windows),
            horizon=f.label_horizon.total_seconds(),
            max_pending=f.max_pending,
            prior_strength=f.entity_prior_strength,
            learning_rate=f.supervised_learning_rate,
            warmup=f.supervised_warmup,
            inputs=inputs,
            early_horizon=f.early_label_horizon.total_seconds(),
            max_early=f.max_early_labels,
        )

    def new_state(self) -> FeedbackState:
        return FeedbackState(self.keep_days)


def new_model(learning_rate: float) -> Any:
    """Standardised inputs into an online logistic regression (deterministic, no seed needed)."""
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(learning_rate)
    )


def _clip(v: float) -> float:
    if math.isfinite(v):
        return _CLIP if v > 0 else -_CLIP
    return 0.0


def model_values(features: Mapping[str, Any], p: FeedbackParams) -> tuple[float, ...]:
    """The model's view of a feature row, in ``p.input_names`` order: heavy tails as
    log1p of the positive part, the rest clipped to +-50 (non-finite: 0); missing: 0."""
    get = features.get
    logged = [math.log1p(v) if (v := float(get(n, 0.0))) > 0.0 else 0.0 for n in p.log_inputs]
    raw = [v if -_CLIP <= (v := float(get(n, 0.0))) <= _CLIP else _clip(v) for n in p.raw_inputs]
    return (*logged, *raw)


def model_inputs(features: Mapping[str, Any], p: FeedbackParams) -> dict[str, float]:
    """:func:`model_values` by name, as river takes them."""
    return p.named(model_values(features, p))


def _entity_key(attr: str, value: Any) -> str | None:
    # interned: kept transactions share one string per entity (and a snapshot pickles it once)
    return None if value is None else sys.intern(f"{attr}\x1f{value}")


def enrich(st: FeedbackState, row: FeatureRow, p: FeedbackParams) -> None:
    """Add the feedback features to ``row`` (score), then count and keep it (learn later)."""
    txn = row.txn
    f = row.features
    today = int(txn.ts // DAY)
    counts = st.entities
    m = p.prior_strength
    spans = p.spans
    keys: list[str] = []
    risk = 0.0
    priors = [f0 / n0 if n0 else 0.0 for n0, f0 in counts.windows(TOTAL, today, spans)]
    for attr, names in p.names:
        key = _entity_key(attr, getattr(txn, attr))
        if key is None:
            got = [(0, 0)] * len(spans)
        else:
            keys.append(key)
            got = counts.windows(key, today, spans)
        for (rate_name, frauds_name), p0, (n, frauds) in zip(names, priors, got, strict=True):
            rate = (frauds + m * p0) / (n + m)
            f[rate_name] = rate
            f[frauds_name] = frauds
            risk = max(risk, rate - p0)
    f["entity_risk"] = risk
    values = model_values(f, p)
    if st.model is None:
        st.model = new_model(p.learning_rate)
    f["supervised_score"] = (
        float(st.model.predict_proba_one(p.named(values)).get(True, 0.0))
        if min(st.frauds_learned, st.legit_learned) >= p.warmup
        else 0.0
    )
    # learn: this transaction counts at its entities and waits for its label
    counts.add(TOTAL, today, 1, 0)
    for key in keys:
        counts.add(key, today, 1, 0)
    tid = txn.transaction_id
    if tid not in st.pending:
        st.order.append(tid)
    st.pending[tid] = new_pending(txn.ts, tuple(keys), p.packer.pack(*values))
    st.watermark = max(st.watermark, txn.ts)
    st.rows_seen += 1
    _expire(st, p)
    if st.rows_seen % SWEEP_ROWS == 0:
        counts.sweep(int(st.watermark // DAY))


def _expire(st: FeedbackState, p: FeedbackParams) -> None:
    """Rows past the horizon or over the cap leave; unlabelled ones are learned as legit."""
    cutoff = st.watermark - p.horizon
    pending, order = st.pending, st.order
    while order:
        tid = order[0]  # order holds exactly the pending ids, oldest first
        row = pending[tid]
        if row[TS] >= cutoff and len(pending) <= p.max_pending:
            break
        order.popleft()
        del pending[tid]
        if row[LABEL] < 0:
            st.model.learn_one(p.kept_inputs(row), False)
            st.legit_learned += 1
        st.remember_expired(tid, p.max_pending)


def apply_label(
    st: FeedbackState, label: Label, p: FeedbackParams, now: float
) -> DeadLetter | None:
    """Learn from one label; a dead letter when its transaction is not kept, or
    :data:`HELD` when it may still come (``early_horizon``: the caller keeps the label)."""
    row = st.pending.get(label.transaction_id)
    if row is None:
        if st.was_expired(label.transaction_id):
            return label.dead(
                "label_expired",
                "the transaction left the feedback state (label horizon or max_pending); "
                "without a label by then it was learned as legit",
                now,
            )
        if p.early_horizon > 0:
            return HELD
        return label.dead(
            "label_unknown_transaction", "no scored transaction with this transaction_id", now
        )
    if label.reported_at < row[REPORTED_AT]:
        return None  # an older verdict than the one applied: superseded
    row[REPORTED_AT] = label.reported_at
    if label.label == row[LABEL]:
        return None
    delta = (label.label == 1) - (row[LABEL] == 1)
    if delta:
        day = row[DAY_OF]
        st.entities.add(TOTAL, day, 0, delta)
        for key in row[ENTITIES]:
            st.entities.add(key, day, 0, delta)
    row[LABEL] = label.label
    st.model.learn_one(p.kept_inputs(row), bool(label.label))
    st.frauds_learned += label.label
    st.legit_learned += 1 - label.label
    return None


# apply_label's answer for a label whose transaction may still come (never emitted)
HELD = DeadLetter("label_held", "", None, None, "", -1, -1, 0.0, "feedback")

UNMATCHED = (
    "label_unmatched",
    "its transaction did not arrive within feedback.early_label_horizon of the label",
)


def feedback_batch(
    st: FeedbackState, items: list[FeatureRow | Label], p: FeedbackParams, now: float
) -> tuple[list[FeatureRow | DeadLetter], int, int]:
    """One batch of the feedback step, in arrival order: (rows and dead letters, labels
    applied, frauds among them). A label read before its transaction waits in ``st.early``
    and is applied right after the transaction is scored (score before learn); one that
    waited ``early_horizon`` (the clock ``now``) is dead-lettered ``label_unmatched``.
    Every label is counted once: applied, dead-lettered, or waiting (``len(st.early)``)."""
    out: list[FeatureRow | DeadLetter] = []
    applied = frauds = 0
    for item in items:
        if isinstance(item, FeatureRow):
            enrich(st, item, p)
            out.append(item)
            waiting = st.early.pop(item.txn.transaction_id, None) if st.early else None
            labels = [] if waiting is None else waiting[1]
        else:
            labels = [item]
        for label in labels:
            dead = apply_label(st, label, p, now)
            if dead is None:
                applied += 1
                frauds += label.label
            elif dead is HELD:
                _hold(st, label, p, now, out)
            else:
                out.append(dead)
    _unmatched(st, now, out)
    return out, applied, frauds


def _hold(st: FeedbackState, label: Label, p: FeedbackParams, now: float, out: list[Any]) -> None:
    got = st.early.get(label.transaction_id)
    if got is not None:
        got[1].append(label)
        return
    if len(st.early) >= p.max_early:  # the oldest waiting transaction's labels go
        tid = next(iter(st.early))
        for old in st.early.pop(tid)[1]:
            out.append(old.dead(UNMATCHED[0], "over feedback.max_early_labels waiting", now))
    st.early[label.transaction_id] = (now + p.early_horizon, [label])


def _unmatched(st: FeedbackState, now: float, out: list[Any]) -> None:
    early = st.early
    while early:
        tid = next(iter(early))
        deadline, labels = early[tid]
        if deadline > now:
            break
        del early[tid]
        out.extend(label.dead(*UNMATCHED, now) for label in labels)


def flush_early(st: FeedbackState, now: float) -> list[DeadLetter]:
    """At the end of the input: every waiting label, dead-lettered ``label_unmatched``."""
    out = [
        label.dead(UNMATCHED[0], "the input ended before its transaction arrived", now)
        for _deadline, labels in st.early.values()
        for label in labels
    ]
    st.early.clear()
    return out

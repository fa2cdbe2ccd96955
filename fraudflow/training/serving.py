"""The hook that puts a trained model into the decision (one call per batch).

:func:`score_batch` sets ``features["model_score"]`` on each row of a batch:
the calibrated probability of the serving model, from the same inputs the
feature log records (the row's numeric features, the detector scores, the
rule score) and the model's risk tables. The ensemble uses that score, when
present, in place of the unsupervised detectors (which are its inputs): see
``fraudflow.operators.ensemble.decide``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from fraudflow.records import FeatureRow
from fraudflow.rules import RuleHit
from fraudflow.training.model import MODEL_SCORE, TrainedModel


class ModelSource(Protocol):
    """What the flow asks for the serving model (a :class:`~.watcher.ModelWatcher`)."""

    def current(self) -> TrainedModel | None: ...


def rules_score(hits: Sequence[RuleHit]) -> float:
    """The rule hits' noisy-OR, as the ensemble combines them."""
    keep = 1.0
    for h in hits:
        keep *= 1.0 - h.score
    return 1.0 - keep


def score_batch(
    model: TrainedModel, rows: Sequence[FeatureRow], hits: Sequence[Sequence[RuleHit]]
) -> None:
    """Set ``model_score`` on every row (one batch prediction)."""
    if not rows:
        return
    given = {"rules_score": np.array([rules_score(h) for h in hits], dtype=np.float64)}
    entities = {f: [getattr(r.txn, f) for r in rows] for f in model.risk.params.fields}
    probs = model.score_features([r.features for r in rows], given, entities)
    for r, prob in zip(rows, probs.tolist(), strict=True):
        r.features[MODEL_SCORE] = prob

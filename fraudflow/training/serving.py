"""The hook that puts a trained model into the decision (one call per batch).

:func:`score_batch` gives the calibrated probability of the serving model for
each row of a batch, from the same inputs the feature log records (the row's
numeric features, the detector scores, the rule score) and the model's risk
tables. The ensemble uses that score, when
present, in place of the unsupervised detectors (which are its inputs), and
puts it in the decision's features as ``model_score``: see
``fraudflow.operators.decide.ensemble.decide``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from fraudflow.records import FeatureRow
from fraudflow.rules import RuleHit
from fraudflow.training.model import TrainedModel


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
    model: TrainedModel,
    rows: Sequence[FeatureRow],
    views: Sequence[Mapping[str, Any]],
    hits: Sequence[Sequence[RuleHit]],
) -> list[float]:
    """The serving model's probability for every row (one batch prediction).

    ``views``: each row's features with its detector scores (``FeatureRow.view``).
    """
    if not rows:
        return []
    given = {"rules_score": np.array([rules_score(h) for h in hits], dtype=np.float64)}
    entities = {f: [getattr(r.txn, f) for r in rows] for f in model.risk.params.fields}
    probs: list[float] = model.score_features(views, given, entities).tolist()
    return probs

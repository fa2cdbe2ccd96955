"""Half-Space Trees over scaled features, sharded so the model scales out.

Each shard (an input partition, see flows/detection.py) has one
Half-Space Trees model (river's trees, scored a batch at a time, see
hst_numpy.py) seeded from the global seed and the shard number, kept in
the shard's keyed, snapshotted state. The number of workers changes neither
which shard a record goes to nor the order it sees records in. Every record
is scored before it is learned from.

The detector gives the trees' raw score (0 until the shard has learned
``hst_warmup`` records); calibrate.py turns it into a tail probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from fraudflow.config.settings import ModelSettings
from fraudflow.operators.detectors.hst_numpy import BatchHalfSpaceTrees
from fraudflow.records import FeatureRow

# the inputs, each scaled into [0, 1] as HalfSpaceTrees expects
HST_INPUTS = (
    "amount",
    "amount_z",
    "burst",
    "gap",
    "new_device",
    "new_country",
    "new_merchant",
    "hour",
    "travel",
)


def hst_inputs(f: dict[str, Any]) -> dict[str, float]:
    """Scale a feature record into the [0, 1] inputs of the model."""
    count_min = f.get("count_1m", 1)
    return {
        "amount": min(1.0, math.log1p(f["amount"]) / 12.0),
        "amount_z": 0.5 + 0.5 * math.tanh(f["amount_z"] / 3.0),
        "burst": (count_min - 1) / (count_min + 2),
        "gap": math.exp(-f["secs_since_prev"] / 3600.0),
        "new_device": 1.0 if f["new_device"] else 0.0,
        "new_country": 1.0 if f["new_country"] else 0.0,
        "new_merchant": 1.0 if f["new_merchant"] else 0.0,
        "hour": 1.0 - min(1.0, f["hour_share"] * 8.0),
        "travel": min(1.0, f["travel_kmh"] / 1000.0),
    }


class HstDetector:
    """One shard's Half-Space Trees.

    The model is :class:`BatchHalfSpaceTrees`, which scores a whole batch
    with numpy and equals river's ``HalfSpaceTrees`` record for record.
    """

    name: ClassVar[str] = "hst"
    reason: ClassVar[str] = "HST_ANOMALY"
    detail: ClassVar[tuple[str, ...]] = (
        "amount",
        "count_1m",
        "new_device",
        "new_country",
        "travel_kmh",
        "hour",
    )

    def __init__(self, shard: int, m: ModelSettings) -> None:
        self.model = BatchHalfSpaceTrees(
            HST_INPUTS,
            n_trees=m.hst_trees,
            height=m.hst_height,
            window_size=m.hst_window,
            seed=m.seed * 1009 + shard,
        )
        self.warmup = m.hst_warmup
        self.seen = 0

    def score_then_learn(self, rows: Sequence[FeatureRow]) -> list[float]:
        """The trees' raw score of each row (each scored before it is learned); 0 in warm-up."""
        names = self.model.features
        x = np.array([[d[k] for k in names] for d in (hst_inputs(r.features) for r in rows)])
        raws: list[float] = self.model.score_then_learn(x).tolist()
        cold = max(0, min(len(raws), self.warmup - self.seen))
        self.seen += len(raws)
        return [0.0] * cold + raws[cold:]


HstShard = HstDetector  # the name snapshots taken before the detector registry hold

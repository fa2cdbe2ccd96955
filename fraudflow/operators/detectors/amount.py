"""The per-user amount detectors: z-score and IQR of the log amount.

The per-user statistics they read (``amount_z``, ``amount_iqr_excess``) are
features, computed by the feature step from the user's history before the
transaction (operators/features/user.py); these detectors map them into
[0, 1] and hold no state of their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from fraudflow.config.settings import ModelSettings
from fraudflow.records import FeatureRow


def zscore_score(z: float) -> float:
    """Map a (positive) amount z-score to [0, 1]; nothing below z = 2.

    >>> zscore_score(1.0), round(zscore_score(3.0), 3), round(zscore_score(6.0), 3)
    (0.0, 0.487, 0.931)
    """
    return 1.0 - math.exp(-(z - 2.0) / 1.5) if z > 2.0 else 0.0


def iqr_score(excess: float) -> float:
    """Map (x - Q3) / IQR to [0, 1]; nothing within Tukey's 1.5 fence.

    >>> iqr_score(1.0), round(iqr_score(3.0), 3)
    (0.0, 0.632)
    """
    return 1.0 - math.exp(-(excess - 1.5) / 1.5) if excess > 1.5 else 0.0


class ZScoreDetector:
    """The amount's z-score against the user's history (log amounts, floored std)."""

    name: ClassVar[str] = "zscore"
    reason: ClassVar[str] = "AMOUNT_ZSCORE"
    detail: ClassVar[tuple[str, ...]] = ("amount", "amount_mean", "amount_z", "txn_count")

    def __init__(self, shard: int, m: ModelSettings) -> None:
        pass

    def score_then_learn(self, rows: Sequence[FeatureRow]) -> list[float]:
        return [zscore_score(r.features["amount_z"]) for r in rows]


class IqrDetector:
    """The amount above the user's recent interquartile range (Tukey's fence)."""

    name: ClassVar[str] = "iqr"
    reason: ClassVar[str] = "AMOUNT_IQR"
    detail: ClassVar[tuple[str, ...]] = ("amount", "amount_iqr_excess", "txn_count")

    def __init__(self, shard: int, m: ModelSettings) -> None:
        pass

    def score_then_learn(self, rows: Sequence[FeatureRow]) -> list[float]:
        return [iqr_score(r.features["amount_iqr_excess"]) for r in rows]

"""The one list of detectors: every shard runs these, in this order.

The order is the order of ``FeatureRow.scores`` and of the reasons' ties. A
new detector is a class keeping :class:`~fraudflow.operators.detectors.base.Detector`,
added here, with an ``ensemble.weight_<name>`` setting and a ``<name>_score``
catalogue entry (tests/unit/operators/test_detector_contract.py checks all three).
"""

from __future__ import annotations

from fraudflow.config.settings import ModelSettings
from fraudflow.operators.detectors.amount import IqrDetector, ZScoreDetector
from fraudflow.operators.detectors.base import Detector
from fraudflow.operators.detectors.calibrate import Calibrated
from fraudflow.operators.detectors.hst import HstDetector

DETECTORS: tuple[type[Detector], ...] = (HstDetector, ZScoreDetector, IqrDetector)
BY_NAME: dict[str, type[Detector]] = {d.name: d for d in DETECTORS}


def new_detectors(shard: int, m: ModelSettings) -> dict[str, Calibrated]:
    """A fresh set of the shard's detectors (seeded from ``m.seed`` and the shard number),
    each with its calibrator (``m.calibration_window`` recent scores)."""
    return {d.name: Calibrated(d(shard, m), m.calibration_window) for d in DETECTORS}

"""What a detector is: the interface every detector of a shard keeps.

A detector scores a batch of feature rows, then learns from it: the score of
a row never depends on the row itself or on any later row (score-then-learn).
Its state is its attributes, saved and restored by the one snapshot mechanism
(``fraudflow.state.snapshot``: pickle), so a detector keeps only picklable,
bounded state; a restored detector continues exactly as the one that never
stopped. The contract is checked for every registered detector by
tests/unit/operators/test_detector_contract.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

from fraudflow.config.settings import ModelSettings
from fraudflow.records import FeatureRow


class Detector(Protocol):
    """One detector of one shard.

    ``name``: the key of its score in ``FeatureRow.scores``, of its ensemble weight
    (``ensemble.weight_<name>``) and of the rule feature ``<name>_score``.
    ``reason``: the reason code of its contribution. ``detail``: the features shown
    with that reason.
    """

    name: ClassVar[str]
    reason: ClassVar[str]
    detail: ClassVar[tuple[str, ...]]

    def __init__(self, shard: int, m: ModelSettings) -> None: ...

    def score_then_learn(self, rows: Sequence[FeatureRow]) -> list[float]:
        """One raw score per row, in order (finite; higher is more anomalous; any scale:
        calibrate.py turns it into a tail probability); then learn from the rows."""
        ...

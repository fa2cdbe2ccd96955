"""Calibration: a detector's raw score becomes how rare it is in the shard's recent traffic.

``p = (1 + #{last W raw scores >= s}) / (1 + n)``: the tail probability of the
score among the shard's last ``W`` scores of that detector (``n`` of them so
far), measured before the score joins them (score-then-learn). It needs no
labels and makes detectors comparable on any data: a detector that is noise
on some population still fires at its nominal rate (``p <= 1%`` on about 1%
of rows), never more. A score tied with most of the window (a detector that
does not fire: 0) gets ``p`` near 1. The flow carries ``1 - p`` (higher is
rarer) as the detector's score; the ensemble turns ``p`` into evidence
(operators/decide/ensemble.py). Issue 16's study: docs/benchmarks.md.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from sortedcontainers import SortedList

from fraudflow.operators.detectors.base import Detector
from fraudflow.records import FeatureRow


class TailCalibrator:
    """The last ``window`` raw scores of one detector of one shard, in arrival and in sorted
    order (sortedcontainers: O(log n) insert, remove and rank). Exact zeros, most of a
    detector that rarely fires, are counted rather than sorted."""

    __slots__ = ("ranked", "recent", "window", "zeros")

    def __init__(self, window: int) -> None:
        self.window = window
        self.recent: deque[float] = deque()
        self.ranked = SortedList()  # the non-zero scores
        self.zeros = 0

    def tail_then_learn(self, raws: Sequence[float]) -> list[float]:
        """The tail probability of each raw score against the scores before it.

        >>> c = TailCalibrator(3)
        >>> c.tail_then_learn([0.0, 0.0, 5.0, 1.0, 0.0])  # (1 + #>=s) / (1 + n)
        [1.0, 1.0, 0.3333333333333333, 0.5, 1.0]
        """
        out = []
        recent, ranked, window = self.recent, self.ranked, self.window
        zeros = self.zeros
        for s in raws:
            n = len(recent)
            below = ranked.bisect_left(s)  # non-zero scores < s
            if s > 0.0:
                below += zeros
            out.append((1 + n - below) / (1 + n))
            recent.append(s)
            if s == 0.0:
                zeros += 1
            else:
                ranked.add(s)
            if n >= window:
                old = recent.popleft()
                if old == 0.0:
                    zeros -= 1
                else:
                    ranked.remove(old)
        self.zeros = zeros
        return out

    # the snapshot holds the scores once; the sorted copy is rebuilt on restore
    def __getstate__(self) -> dict[str, Any]:
        return {"window": self.window, "recent": list(self.recent)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.window = state["window"]
        self.recent = deque(state["recent"])
        self.ranked = SortedList(s for s in self.recent if s != 0.0)
        self.zeros = len(self.recent) - len(self.ranked)


class Calibrated:
    """A registered detector with its calibrator: scores ``1 - p`` in [0, 1]."""

    def __init__(self, detector: Detector, window: int) -> None:
        self.detector = detector
        self.calibrator = TailCalibrator(window)

    def score_then_learn(self, rows: Sequence[FeatureRow]) -> list[float]:
        tails = self.calibrator.tail_then_learn(self.detector.score_then_learn(rows))
        return [1.0 - p for p in tails]

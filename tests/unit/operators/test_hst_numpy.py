"""The batch Half-Space Trees give river's scores exactly, for the same trees and stream."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
from river.anomaly import HalfSpaceTrees

from fraudflow.operators.detectors.hst_numpy import BatchHalfSpaceTrees

FEATURES = ["b", "a", "c", "d"]


def stream(n: int, seed: int) -> np.ndarray:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 97 == 0:
            rows.append([rng.random() for _ in FEATURES])  # scattered anomalies
        else:
            rows.append(
                [min(1.0, max(0.0, rng.gauss(0.3 + 0.1 * j, 0.05))) for j in range(len(FEATURES))]
            )
    return np.array(rows)


@pytest.mark.parametrize(
    ("n_trees", "height", "window", "batch", "seed"),
    [
        (10, 8, 250, 1, 42),
        (10, 8, 250, 64, 42),
        (15, 6, 100, 333, 7),
        (3, 3, 7, 5, 1),
        (25, 8, 250, 1000, 3),
    ],
)
def test_equal_to_river(n_trees: int, height: int, window: int, batch: int, seed: int) -> None:
    x = stream(2500, seed)
    sorted_names = sorted(FEATURES)
    river = HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window, seed=seed)
    expected = []
    for row in x:
        d = {name: float(row[FEATURES.index(name)]) for name in FEATURES}
        expected.append(river.score_one(d))
        river.learn_one(d)
    ours = BatchHalfSpaceTrees(FEATURES, n_trees, height, window, seed)
    cols = [FEATURES.index(name) for name in sorted_names]
    got = np.concatenate(
        [ours.score_then_learn(x[i : i + batch][:, cols]) for i in range(0, len(x), batch)]
    )
    assert got.tolist() == expected  # bit for bit


def test_pickle_round_trip_continues_identically() -> None:
    x = stream(1200, 5)
    a = BatchHalfSpaceTrees(FEATURES, 10, 6, 100, 5)
    a.score_then_learn(x[:650])
    b = pickle.loads(pickle.dumps(a))
    assert a.score_then_learn(x[650:]).tolist() == b.score_then_learn(x[650:]).tolist()
    assert len(pickle.dumps(a)) < 64_000


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    x = stream(800, 2)
    s1 = BatchHalfSpaceTrees(FEATURES, 10, 6, 100, 1).score_then_learn(x)
    s2 = BatchHalfSpaceTrees(FEATURES, 10, 6, 100, 1).score_then_learn(x)
    s3 = BatchHalfSpaceTrees(FEATURES, 10, 6, 100, 2).score_then_learn(x)
    assert s1.tolist() == s2.tolist()
    assert s1.tolist() != s3.tolist()

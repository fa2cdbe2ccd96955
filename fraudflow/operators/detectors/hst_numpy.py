"""Half-Space Trees for a batch at a time, equal to river's ``HalfSpaceTrees``.

The trees are river's own (built with ``river.tree.padded.make_padded_tree``
from the same seeded ``random.Random`` in the same order), laid out as flat
arrays of a complete binary tree: node ``i`` has children ``2i+1`` and
``2i+2``. Scores are the same as river's ``score_one`` then ``learn_one``,
record after record, because of one fact about the algorithm: a score reads
only the reference masses ``r_mass``, which change only when a window ends.
So a batch is cut at window ends; within a piece every record is scored
against the same ``r_mass`` and the learned masses are added afterwards with
one ``np.add.at``. All features are always present, so river's missing-feature
branch (which reads ``l_mass``) never applies. Masses are integers, so the
sums are exact and the scores equal river's bit for bit (tested).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from river.tree.padded import PaddedBranch, make_padded_tree

PADDING = 0.15  # river's


class BatchHalfSpaceTrees:
    """``score_then_learn(X)`` on an (n, features) array in [0, 1]."""

    def __init__(
        self, features: Sequence[str], n_trees: int, height: int, window_size: int, seed: int
    ) -> None:
        self.features = tuple(sorted(features))  # river sorts feature names
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        n_nodes = 2 ** (height + 1) - 1
        n_inner = 2**height - 1
        self.feature = np.zeros((n_trees, n_inner), dtype=np.intp)
        self.threshold = np.zeros((n_trees, n_inner), dtype=np.float64)
        rng = random.Random(seed)  # noqa: S311 - a seeded model, as river does, not cryptography
        col = {name: i for i, name in enumerate(self.features)}
        for t in range(n_trees):
            limits = dict.fromkeys(self.features, (0.0, 1.0))
            root = make_padded_tree(
                limits=limits, height=height, padding=PADDING, rng=rng, r_mass=0, l_mass=0
            )
            self._flatten(root, t, col)
        self.r_mass = np.zeros((n_trees, n_nodes), dtype=np.int64)
        self.l_mass = np.zeros((n_trees, n_nodes), dtype=np.int64)
        self.counter = 0
        self.first_window = True
        self.size_limit = 0.1 * window_size
        self.max_score = float(n_trees * window_size * (2 ** (height + 1) - 1))
        self._pow = (2 ** np.arange(height + 1)).astype(np.int64)

    def _flatten(self, root: PaddedBranch, t: int, col: dict[str, int]) -> None:
        stack = [(root, 0)]
        while stack:
            node, i = stack.pop()
            if isinstance(node, PaddedBranch):
                self.feature[t, i] = col[node.feature]
                self.threshold[t, i] = node.threshold
                stack.append((node.children[0], 2 * i + 1))
                stack.append((node.children[1], 2 * i + 2))

    def _paths(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """Node index at each depth, shape (trees, n, height + 1)."""
        n = x.shape[0]
        rows = np.arange(n)
        node = np.zeros((self.n_trees, n), dtype=np.intp)
        paths = np.empty((self.n_trees, n, self.height + 1), dtype=np.intp)
        paths[:, :, 0] = 0
        trees = np.arange(self.n_trees)[:, None]
        for d in range(self.height):
            feat = self.feature[trees, node]
            thr = self.threshold[trees, node]
            right = x[rows[None, :], feat] >= thr
            node = 2 * node + 1 + right
            paths[:, :, d + 1] = node
        return paths

    def score_then_learn(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Each row's score before it is learned, as river would give, in order."""
        n = x.shape[0]
        out = np.zeros(n, dtype=np.float64)
        if n == 0:
            return out
        paths = self._paths(x)
        start = 0
        while start < n:
            stop = min(n, start + self.window_size - self.counter)
            seg = paths[:, start:stop, :]
            if not self.first_window:
                masses = np.take_along_axis(self.r_mass[:, None, :], seg, axis=2)
                ok = masses >= self.size_limit
                # a level counts if every level above it had enough mass (river stops early)
                include = np.ones_like(ok)
                include[:, :, 1:] = np.cumprod(ok[:, :, :-1], axis=2)
                total = (masses * self._pow * include).sum(axis=(0, 2))
                out[start:stop] = 1.0 - total / self.max_score
            for t in range(self.n_trees):
                np.add.at(self.l_mass[t], seg[t].ravel(), 1)
            self.counter += stop - start
            if self.counter == self.window_size:
                self.r_mass, self.l_mass = self.l_mass, np.zeros_like(self.l_mass)
                self.first_window = False
                self.counter = 0
            start = stop
        return out

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["r_mass"] = self.r_mass.astype(np.int32)
        state["l_mass"] = self.l_mass.astype(np.int32)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.r_mass = self.r_mass.astype(np.int64)
        self.l_mass = self.l_mass.astype(np.int64)

"""TailCalibrator: the tail probability of each score among the last W before it."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from fraudflow.operators.detectors.calibrate import TailCalibrator

SCORES = st.lists(
    st.one_of(st.just(0.0), st.sampled_from([-1.0, 0.5, 1.0]), st.floats(-2.0, 2.0)),
    max_size=300,
)


def brute(xs: list[float], window: int) -> list[float]:
    out = []
    for i, s in enumerate(xs):
        recent = xs[max(0, i - window) : i]
        out.append((1 + sum(v >= s for v in recent)) / (1 + len(recent)))
    return out


@settings(max_examples=200, deadline=None)
@given(SCORES, st.integers(1, 40), st.integers(1, 50))
def test_equals_the_definition_for_any_batching(xs: list[float], window: int, batch: int) -> None:
    c = TailCalibrator(window)
    got: list[float] = []
    for i in range(0, len(xs), batch):
        got.extend(c.tail_then_learn(xs[i : i + batch]))
    assert got == brute(xs, window)
    assert len(c.recent) == min(len(xs), window)  # bounded


@settings(max_examples=100, deadline=None)
@given(SCORES, SCORES)
def test_a_pickle_round_trip_continues_identically(first: list[float], rest: list[float]) -> None:
    c = TailCalibrator(25)
    c.tail_then_learn(first)
    back = pickle.loads(pickle.dumps(c, pickle.HIGHEST_PROTOCOL))
    assert back.tail_then_learn(rest) == c.tail_then_learn(rest)


def test_a_detector_that_does_not_fire_gives_no_evidence() -> None:
    c = TailCalibrator(1000)
    ps = c.tail_then_learn([0.0] * 990 + [3.0] * 10 + [0.0])
    assert ps[-1] == 1.0  # ties with the window
    assert ps[990] == 1 / 991  # the first rare score: nothing before it as high

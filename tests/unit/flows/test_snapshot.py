"""state.snapshot: one dump/restore for every stateful step, reading pre-move snapshots
and refusing, with a clear message, the state of the retired feedback step."""

from __future__ import annotations

import copyreg
import io
import pickle
from typing import Any

import pytest

from fraudflow.config.settings import load_settings
from fraudflow.operators.decide.budget import AlertBudget
from fraudflow.operators.detectors.hst import HstDetector
from fraudflow.state import snapshot
from fraudflow.state.shard import ShardState


def _old_paths(blob: bytes) -> bytes:
    """A protocol-2 pickle as the code before issue 14 wrote it (classes under old modules)."""
    return (
        blob.replace(b"cfraudflow.state.shard\n", b"cfraudflow.flows.detection\n")
        .replace(b"cfraudflow.operators.detectors.hst\n", b"cfraudflow.operators.hst\n")
        .replace(b"cfraudflow.operators.decide.budget\n", b"cfraudflow.operators.budget\n")
    )


def test_round_trip() -> None:
    st = ShardState()
    st.seen["u1"] = 5.0
    back = snapshot.restore(snapshot.dump(st))
    assert isinstance(back, ShardState)
    assert back.seen == {"u1": 5.0}
    assert snapshot.restore(None) is None


def _old_pickle(st: ShardState, budget: AlertBudget) -> bytes:
    """A protocol-2 pickle as the code before the detector registry wrote a ShardState: the
    trees as ``model``, under the class name ``HstShard``."""

    class OldPickler(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is ShardState:
                assert obj.detectors is not None
                state = {"users": obj.users, "seen": obj.seen, "model": obj.detectors["hst"]}
                return (copyreg.__newobj__, (ShardState,), (None, state))  # type: ignore[attr-defined]
            return NotImplemented

    out = io.BytesIO()
    OldPickler(out, 2).dump((st, budget))
    return out.getvalue().replace(b"\nHstDetector\n", b"\nHstShard\n")


def test_restores_snapshots_taken_before_the_move() -> None:
    st = ShardState()
    st.seen["u1"] = 5.0
    st.detectors = {"hst": HstDetector(0, load_settings(environ={}).model)}
    old = _old_paths(_old_pickle(st, AlertBudget(0.01, 100)))
    assert b"fraudflow.flows.detection" in old
    assert b"fraudflow.operators.hst\n" in old
    assert b"fraudflow.operators.budget\n" in old
    assert b"\nHstShard\n" in old
    back_st, back_budget = snapshot.restore(old)
    assert type(back_st) is ShardState
    assert back_st.seen == {"u1": 5.0}
    assert back_st.detectors is not None
    assert type(back_st.detectors["hst"]) is HstDetector  # the rest are added at the first row
    assert type(back_budget) is AlertBudget


@pytest.mark.parametrize(
    "module",
    [
        "fraudflow.state.feedback",
        "fraudflow.operators.feedback",
        "fraudflow.operators.detectors.feedback",
    ],
)
def test_a_snapshot_of_the_retired_feedback_step_says_to_discard_it(module: str) -> None:
    """Its state went with the step (issue 17): restoring it fails and names what to do."""
    blob = f"c{module}\nFeedbackState\n)\x81.".encode()  # GLOBAL, (), NEWOBJ: as pickle wrote it
    with pytest.raises(pickle.UnpicklingError, match=r"retired feedback step.*docs/recovery\.md"):
        snapshot.restore(blob)


def test_a_shard_snapshot_still_restores_beside_the_retired_modules() -> None:
    st = ShardState()
    st.detectors = {"hst": HstDetector(3, load_settings(environ={}).model)}
    back = snapshot.restore(snapshot.dump(st))
    assert type(back) is ShardState
    assert back.detectors is not None
    assert type(back.detectors["hst"]) is HstDetector

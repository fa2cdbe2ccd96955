"""The one snapshot mechanism of every stateful step: pickle dump and restore.

A step's ``snapshot`` returns :func:`dump` of its state (bytes, so the
snapshot is immutable once taken) and its builder calls :func:`restore` on
what Bytewax hands back. :func:`restore` reads snapshots written before the
state classes moved (issue 14): a class is looked up under its new module.

The feedback step's state (``FeedbackState``, its entity counts and online model) went
with the step (issue 17): a snapshot that holds one does not restore, and the recovery
state of a flow run with feedback on must be discarded (docs/recovery.md).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

# module a class was pickled under -> where it lives now (snapshots taken before issue 14)
MOVED: dict[tuple[str, str], str] = {
    ("fraudflow.flows.detection", "ShardState"): "fraudflow.state.shard",
}
MOVED_MODULES = {
    "fraudflow.operators.hst": "fraudflow.operators.detectors.hst",
    "fraudflow.operators.hst_numpy": "fraudflow.operators.detectors.hst_numpy",
    "fraudflow.operators.features": "fraudflow.operators.features.user",
    "fraudflow.operators.budget": "fraudflow.operators.decide.budget",
    "fraudflow.operators.ensemble": "fraudflow.operators.decide.ensemble",
}


# modules of retired steps (issue 17): their state cannot be restored
RETIRED_MODULES = (
    "fraudflow.state.feedback",
    "fraudflow.operators.feedback",
    "fraudflow.operators.detectors.feedback",
)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in RETIRED_MODULES:
            raise pickle.UnpicklingError(
                f"snapshot holds {name} of the retired feedback step: discard the recovery "
                "state of a flow run with feedback on (docs/recovery.md)"
            )
        module = MOVED.get((module, name)) or MOVED_MODULES.get(module, module)
        return super().find_class(module, name)


def dump(state: object) -> bytes:
    """The snapshot of ``state``: its pickle, highest protocol."""
    return pickle.dumps(state, pickle.HIGHEST_PROTOCOL)


def restore(blob: bytes | None) -> Any:
    """The state a :func:`dump` snapshot holds (``None`` for no snapshot)."""
    if blob is None:
        return None
    return _Unpickler(io.BytesIO(blob)).load()

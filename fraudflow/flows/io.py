"""What a flow reads from and writes to; everything between is the same flow."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bytewax.inputs import Source
from bytewax.outputs import Sink

from fraudflow.observability.stats import RunStats
from fraudflow.records import DeadLetter, Decision

Clock = Callable[[], float]


@dataclass
class FlowIO:
    """The sources, the sinks, the clock used for validation, and the run counters."""

    source: Source[Any]
    alerts: Sink[Decision]
    dead_letters: Sink[DeadLetter]
    decisions: Sequence[tuple[str, Sink[Decision]]] = ()
    require_key: bool = True  # Kafka keys must equal user_id; files have no keys
    clock: Clock = time.time
    stats: RunStats = field(default_factory=RunStats)
    labels: Source[Any] | None = None  # the labels topic (read when label_store is on)
    # the clock that bounds event time (features.max_event_ahead): False, ``clock``
    # (live runs); True, each shard's own event time (replays of recorded data)
    event_clock: bool = False
    # the trained model's source (training.watcher.ModelWatcher) and the labels store sink
    models: Any = None
    label_store: Sink[Any] | None = None

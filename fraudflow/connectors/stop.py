"""Graceful stop: SIGTERM or SIGINT ends the input, and the flow drains as at end of input.

Bytewax 0.21 checks Python's signal handlers from its run loop (``py.check_signals``): the
default SIGINT handler raises ``KeyboardInterrupt`` inside a worker, which Bytewax turns into
a Rust panic and a traceback; SIGTERM's default kills the process at once. While
``graceful_stop()`` is active, both signals only set ``STOP``. Every source wrapped by
``stoppable()`` then reports end of input at its next batch, so the batch in hand is
finished, every step and sink sees the end of the stream (sinks flush and close), the last
epoch closes and, with recovery on, its snapshot holds each partition's next offset: a
restart resumes exactly there (nothing lost, nothing repeated). A second signal exits at
once (status 128 + signal), for a stop that hangs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import FrameType
from typing import Any

from bytewax.inputs import (
    DynamicSource,
    FixedPartitionedSource,
    Source,
    StatefulSourcePartition,
    StatelessSourcePartition,
)

from fraudflow.observability import health

log = logging.getLogger(__name__)

STOP = threading.Event()
"""Set by SIGTERM/SIGINT while ``graceful_stop()`` is active (or by tests)."""

_received: list[str] = []


def stop_reason() -> str | None:
    """The name of the signal that stopped the run, or None."""
    return _received[0] if _received else None


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if STOP.is_set():
        print(f"fraudflow: {name} again: stopping at once", file=sys.stderr, flush=True)
        os._exit(128 + signum)
    _received.append(name)
    STOP.set()
    print(
        f"\nfraudflow: {name} received: stop reading, finish the batch in hand, flush the "
        "sinks (send it again to stop at once)",
        file=sys.stderr,
        flush=True,
    )


@contextmanager
def graceful_stop() -> Iterator[None]:
    """SIGTERM and SIGINT stop the input (see the module docstring) while the body runs;
    the previous handlers are restored after it. Only from the main thread."""
    STOP.clear()
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def install_stop_handlers() -> bool:
    """SIGTERM and SIGINT stop the input from now on, for the rest of the process (the
    ``python -m bytewax.run ...:get_flow()`` entry point, which has no ``with`` around the
    run). Only from the main thread; returns whether the handlers were installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    STOP.clear()
    _received.clear()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, _on_signal)
    return True


class _StoppableStateful(StatefulSourcePartition[Any, Any]):
    def __init__(self, inner: StatefulSourcePartition[Any, Any]) -> None:
        self._inner = inner

    def next_batch(self) -> Any:
        if STOP.is_set():
            raise StopIteration
        health.beat()
        batch = self._inner.next_batch()
        health.observe_positions(batch)
        return batch

    def next_awake(self) -> datetime | None:
        return None if STOP.is_set() else self._inner.next_awake()

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class _StoppableStateless(StatelessSourcePartition[Any]):
    def __init__(self, inner: StatelessSourcePartition[Any]) -> None:
        self._inner = inner

    def next_batch(self) -> Any:
        if STOP.is_set():
            raise StopIteration
        health.beat()
        batch = self._inner.next_batch()
        health.observe_positions(batch)
        return batch

    def next_awake(self) -> datetime | None:
        return None if STOP.is_set() else self._inner.next_awake()

    def close(self) -> None:
        self._inner.close()


class StoppableFixed(FixedPartitionedSource[Any, Any]):
    """A partitioned source that ends at ``STOP``; its snapshots are the inner source's."""

    def __init__(self, inner: FixedPartitionedSource[Any, Any]) -> None:
        self.inner = inner

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(
        self, step_id: str, for_part: str, resume_state: Any | None
    ) -> _StoppableStateful:
        return _StoppableStateful(self.inner.build_part(step_id, for_part, resume_state))


class StoppableDynamic(DynamicSource[Any]):
    """A dynamic source that ends at ``STOP``."""

    def __init__(self, inner: DynamicSource[Any]) -> None:
        self.inner = inner

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StoppableStateless:
        return _StoppableStateless(self.inner.build(step_id, worker_index, worker_count))


def stoppable(source: Source[Any]) -> Source[Any]:
    """``source`` ending at ``STOP`` (any other kind of source is returned unchanged)."""
    if isinstance(source, FixedPartitionedSource):
        return StoppableFixed(source)
    if isinstance(source, DynamicSource):
        return StoppableDynamic(source)
    return source

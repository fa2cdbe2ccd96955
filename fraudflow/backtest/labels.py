"""Labels and when they become known: chargebacks arrive days after the payment.

A replay that learns from labels must not see a label before the moment it
became known, or it grades itself on the future. :func:`label_known_at` gives
that moment and :func:`merge_labels` releases labels into an event-time
stream only once the stream's event time has reached it. The current flow
does not learn from labels yet; these are the tested pieces a feedback loop
will use (docs/backtest.md).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from fraudflow.operators.ingest.labels import label_value
from fraudflow.operators.ingest.timestamps import parse_timestamp

T = TypeVar("T")


def label_known_at(txn_time: float, label_time: float | None, delay: timedelta) -> float:
    """Epoch seconds at which a transaction's label is known.

    ``label_time`` when given (never before the transaction itself), else the
    transaction time plus ``delay``.

    >>> label_known_at(100.0, None, timedelta(seconds=50))
    150.0
    >>> label_known_at(100.0, 120.0, timedelta(days=7))
    120.0
    >>> label_known_at(100.0, 90.0, timedelta(days=7))
    100.0
    """
    if label_time is not None:
        return max(txn_time, label_time)
    return txn_time + delay.total_seconds()


@dataclass(frozen=True, order=True)
class Label:
    """A label released into the stream at ``known_at``."""

    known_at: float
    transaction_id: str
    label: int


@dataclass(frozen=True)
class Event(Generic[T]):
    """An event at event time ``ts``."""

    ts: float
    value: T


def merge_labels(
    events: Iterable[Event[T]], labels: Iterable[Label], *, flush: bool = False
) -> Iterator[Event[T] | Label]:
    """Events in their order, each label placed before the first event at or after its time.

    The stream's clock is the highest event time seen so far (out-of-order
    events do not move it back). A label is released once that clock reaches
    its ``known_at``; ``flush`` releases the rest after the last event.
    """
    pending = list(labels)
    heapq.heapify(pending)
    clock = float("-inf")
    for ev in events:
        clock = max(clock, ev.ts)
        while pending and pending[0].known_at <= clock:
            yield heapq.heappop(pending)
        yield ev
    if flush:
        while pending:
            yield heapq.heappop(pending)


def parse_time(value: Any, name: str = "label_time") -> float | None:
    """Epoch seconds from a time (the one rule: :mod:`fraudflow.operators.ingest.timestamps`,
    RFC 3339 with a zone or epoch milliseconds); None when absent or empty.

    Raises ``Invalid`` (a ``ValueError``) naming the field for anything else.
    """
    if value is None or value == "":
        return None
    return parse_timestamp(value, name)


# the values the labels topic carries (operators/ingest/parse.py), plus CSV text


def label_of(rec: Mapping[str, Any]) -> int | None:
    """0/1 from ``label`` or ``_label`` in the labels format of the topic
    (:func:`~fraudflow.operators.ingest.labels.label_value`: 0, 1, "0", "1", "fraud",
    "legit"); None when absent or invalid."""
    return label_value(rec.get("label", rec.get("_label")))

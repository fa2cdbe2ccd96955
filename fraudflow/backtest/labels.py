"""Labels and when they become known: chargebacks arrive days after the payment.

A backtest must not use a label before the moment it became known, or it grades
itself on the future: :func:`label_known_at` gives that moment, which grading
(labels not yet known at the last event) and ``--retrain`` (each training sees only
the labels known at its cutoff, docs/training.md) respect.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from fraudflow.operators.ingest.labels import label_value
from fraudflow.operators.ingest.timestamps import parse_timestamp


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

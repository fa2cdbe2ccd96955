"""Labels: the one format for the labels topic and labels files.

A label says whether a transaction was fraud: ``0``, ``1``, ``"0"``, ``"1"``, ``"fraud"``
or ``"legit"`` (:func:`label_value`), the same in a Kafka message, a JSON line and a CSV
cell. Its time (``reported_at`` on the topic, ``label_time`` in a file) follows the one
timestamp rule (:mod:`fraudflow.operators.ingest.timestamps`).
"""

from __future__ import annotations

from typing import Any

from fraudflow.config.settings import ValidationSettings
from fraudflow.operators.ingest.parse import (
    RawMessage,
    dead_letter,
    decode_object,
    origin,
    required_str,
    time_field,
)
from fraudflow.operators.ingest.timestamps import Invalid
from fraudflow.records import DeadLetter, Label

LABEL_VALUES: dict[Any, int] = {0: 0, 1: 1, "fraud": 1, "legit": 0, "0": 0, "1": 1}


def label_value(raw: Any) -> int | None:
    """0 or 1 from a label as written (see :data:`LABEL_VALUES`); None if it is not one.

    >>> [label_value(x) for x in (1, "0", "fraud", "legit", True, 2, " 1", None)]
    [1, 0, 1, 0, None, None, None, None]
    """
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return None
    return LABEL_VALUES.get(raw)


def parse_label(msg: RawMessage, settings: ValidationSettings, now: float) -> Label | DeadLetter:
    """One raw labels-topic message to a Label, or to a DeadLetter with the reason.

    The value is ``{"transaction_id": str, "label": 0|1|"fraud"|"legit",
    "reported_at": RFC 3339 or epoch ms}``; the key is not checked.

    >>> from types import SimpleNamespace as M
    >>> v = b'{"transaction_id": "t1", "label": "fraud", "reported_at": "2026-01-02T00:00:00Z"}'
    >>> msg = M(key=None, value=v, topic="labels", partition=0, offset=3)
    >>> parse_label(msg, ValidationSettings(), 1767312000.0).label
    1
    """
    try:
        obj = decode_object(msg.value, settings)
        transaction_id = required_str(obj, "transaction_id")
        if "label" not in obj or obj["label"] is None:
            raise Invalid("missing_field", "required field 'label' is missing")
        label = label_value(obj["label"])
        if label is None:
            raise Invalid("bad_value", "field 'label' must be 0, 1, 'fraud' or 'legit'")
        reported_at = time_field(obj, "reported_at", settings, now)
    except Invalid as err:
        return dead_letter(msg, err, now)
    topic, partition, offset = origin(msg)
    return Label(
        transaction_id=transaction_id,
        label=label,
        reported_at=reported_at,
        value=msg.value or b"",
        key=msg.key,
        topic=topic,
        partition=partition,
        offset=offset,
    )

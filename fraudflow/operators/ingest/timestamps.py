"""The one timestamp rule, shared by the flow, the backtest and the commands.

A time is either an RFC 3339 string **with a zone** (``2026-01-02T03:04:05Z``,
``...+01:00``) or a JSON number of **epoch milliseconds**. A number below
:data:`MIN_EPOCH_MS` (1e11 ms, i.e. before 1973-03-03) is refused as ambiguous: it is
almost certainly epoch seconds (today's epoch seconds are about 1.8e9), and reading it as
milliseconds would silently put the event in January 1970. A string of digits is not a
number (it is neither RFC 3339 nor JSON number), and a string without a zone is refused
(naive local time is ambiguous too). Every refusal names the field.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

# the smallest accepted epoch-milliseconds value: 1973-03-03T09:46:40Z
MIN_EPOCH_MS = 1e11


class Invalid(ValueError):
    """A validation failure: machine code plus a message that names the field."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def kind(v: Any) -> str:
    """The JSON-ish name of a value's type, for messages."""
    return "null" if v is None else type(v).__name__


def parse_timestamp(v: Any, name: str = "timestamp") -> float:
    """RFC 3339 with a zone, or epoch milliseconds, to epoch seconds.

    >>> parse_timestamp("2026-01-02T03:04:05Z"), parse_timestamp(1767322045000)
    (1767323045.0, 1767322045.0)
    >>> parse_timestamp(1767322045, "reported_at")
    Traceback (most recent call last):
    ...
    fraudflow.operators.ingest.timestamps.Invalid: field 'reported_at' is 1767322045, \
which looks like epoch seconds: give epoch milliseconds or RFC 3339 with a zone
    """
    if isinstance(v, bool):
        raise Invalid(
            "bad_type", f"field {name!r} must be an RFC 3339 string or epoch ms, got bool"
        )
    if isinstance(v, int | float):
        if not math.isfinite(v):
            raise Invalid("bad_timestamp", f"field {name!r} is not finite")
        if abs(v) < MIN_EPOCH_MS:
            raise Invalid(
                "bad_timestamp",
                f"field {name!r} is {v!r}, which looks like epoch seconds: "
                "give epoch milliseconds or RFC 3339 with a zone",
            )
        return float(v) / 1000.0
    if not isinstance(v, str):
        raise Invalid(
            "bad_type", f"field {name!r} must be an RFC 3339 string or epoch ms, got {kind(v)}"
        )
    if len(v) > 64:
        raise Invalid("bad_timestamp", f"field {name!r} is too long")
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise Invalid("bad_timestamp", f"field {name!r} is not RFC 3339") from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise Invalid("naive_timestamp", f"field {name!r} has no time zone")
    return dt.timestamp()

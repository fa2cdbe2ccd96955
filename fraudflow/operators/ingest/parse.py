"""Parse and validate raw input messages into Transactions or DeadLetters.

A pure function of (message, settings, now): no IO, no clock of its own.
Every message becomes exactly one of the two, which is what lets the flow
account for every record: received = valid + dead-lettered.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Protocol

import orjson

from fraudflow.config.settings import ValidationSettings
from fraudflow.operators.ingest.timestamps import Invalid, kind, parse_timestamp
from fraudflow.records import DeadLetter, Transaction


class RawMessage(Protocol):
    """What a source hands the flow (bytewax's KafkaSourceMessage fits)."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def topic(self) -> str | None: ...
    @property
    def partition(self) -> int | None: ...
    @property
    def offset(self) -> int | None: ...


# machine codes of the dead-letter reasons, documented in docs/dead-letters.md
ERROR_CODES = (
    "oversize",
    "empty_value",
    "not_utf8",
    "bad_json",
    "not_object",
    "missing_field",
    "bad_type",
    "bad_value",
    "bad_amount",
    "bad_timestamp",
    "naive_timestamp",
    "timestamp_out_of_range",
    "empty_key",
    "key_mismatch",
    "duplicate",
    "duplicate_key",
)

_ID_MAX = 128
_OPT_MAX = 256
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRY = re.compile(r"[A-Z]{2}")
# C0 controls (NUL included), DEL and C1 controls: PostgreSQL text refuses NUL, and
# none of them has a use in an id; rejected in every string field
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# JSON strings cannot hold raw C0 controls (parsers refuse them): a decoded string
# has one only through an escape (a backslash), DEL raw, or a C1 control raw
# (UTF-8 C2 80..C2 9F). A message without these needs no per-field check.
_RAW_C1 = re.compile(rb"\xc2[\x80-\x9f]")


def _may_hold_control(value: bytes) -> bool:
    """False when no decoded string of this JSON can hold a control character.

    Three byte searches (fast) and a regex only when a ``C2`` byte is there.
    """
    return (
        b"\\" in value
        or b"\x7f" in value
        or (b"\xc2" in value and _RAW_C1.search(value) is not None)
    )


_OPTIONAL_STR = ("merchant_id", "merchant_category", "payment_method", "device_id", "channel", "ip")


def required_str(obj: dict[str, Any], name: str, controls: bool = True) -> str:
    if name not in obj or obj[name] is None:
        raise Invalid("missing_field", f"required field {name!r} is missing")
    v = obj[name]
    if not isinstance(v, str):
        raise Invalid("bad_type", f"field {name!r} must be a string, got {kind(v)}")
    if not 1 <= len(v) <= _ID_MAX:
        raise Invalid(
            "bad_value", f"field {name!r} must have 1..{_ID_MAX} characters, got {len(v)}"
        )
    if controls:
        _no_control(v, name)
    return v


def _no_control(v: str, name: str) -> None:
    m = _CONTROL.search(v)
    if m is not None:
        raise Invalid(
            "bad_value",
            f"field {name!r} contains control character U+{ord(m.group()):04X} "
            f"at position {m.start()}",
        )


def _optional_str(obj: dict[str, Any], name: str, controls: bool = True) -> str | None:
    v = obj.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise Invalid("bad_type", f"field {name!r} must be a string, got {kind(v)}")
    if len(v) > _OPT_MAX:
        raise Invalid("bad_value", f"field {name!r} is longer than {_OPT_MAX} characters")
    if controls:
        _no_control(v, name)
    return v or None


def _number(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise Invalid("bad_type", f"field {name!r} must be a number, got {kind(v)}")
    f = float(v) + 0.0  # -0.0 becomes 0.0
    if not math.isfinite(f):
        raise Invalid(
            "bad_amount" if name == "amount" else "bad_value", f"field {name!r} is not finite"
        )
    return f


def time_field(obj: dict[str, Any], name: str, settings: ValidationSettings, now: float) -> float:
    if name not in obj or obj[name] is None:
        raise Invalid("missing_field", f"required field {name!r} is missing")
    ts = parse_timestamp(obj[name], name)
    if (
        ts < now - settings.max_event_age.total_seconds()
        or ts > now + settings.max_future_skew.total_seconds()
    ):
        raise Invalid(
            "timestamp_out_of_range",
            f"field {name!r} is outside the accepted range "
            f"(now - {settings.max_event_age.days}d .. now + {settings.max_future_skew})",
        )
    return ts


def validate_object(
    obj: dict[str, Any], settings: ValidationSettings, now: float, *, controls: bool = True
) -> Transaction:
    """Check one decoded JSON object; raises Invalid naming the field on failure.

    ``controls=False`` skips the control-character checks, for a caller that
    knows the raw message cannot hold one (see ``_may_hold_control``).
    """
    transaction_id = required_str(obj, "transaction_id", controls)
    user_id = required_str(obj, "user_id", controls)
    if "amount" not in obj or obj["amount"] is None:
        raise Invalid("missing_field", "required field 'amount' is missing")
    amount = _number(obj["amount"], "amount")
    if amount < 0:
        raise Invalid("bad_amount", "field 'amount' is negative")
    ts = time_field(obj, "timestamp", settings, now)
    currency = _optional_str(obj, "currency", controls) or settings.default_currency
    if not _CURRENCY.fullmatch(currency):
        raise Invalid("bad_value", "field 'currency' must be an ISO 4217 code like 'USD'")
    country = _optional_str(obj, "country", controls)
    if country is not None and not _COUNTRY.fullmatch(country):
        raise Invalid("bad_value", "field 'country' must be an ISO 3166 alpha-2 code like 'DE'")
    lat, lon = obj.get("lat"), obj.get("lon")
    if (lat is None) != (lon is None):
        raise Invalid("bad_value", "fields 'lat' and 'lon' must come together")
    if lat is not None:
        lat, lon = _number(lat, "lat"), _number(lon, "lon")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise Invalid("bad_value", "fields 'lat'/'lon' are out of range")
    opt = [_optional_str(obj, n, controls) for n in _OPTIONAL_STR]
    return Transaction(
        transaction_id=transaction_id,
        user_id=user_id,
        amount=amount,
        ts=ts,
        currency=currency,
        merchant_id=opt[0],
        merchant_category=opt[1],
        country=country,
        payment_method=opt[2],
        device_id=opt[3],
        channel=opt[4],
        ip=opt[5],
        lat=lat,
        lon=lon,
    )


def decode_object(value: bytes | None, settings: ValidationSettings) -> dict[str, Any]:
    """The message's JSON object, or Invalid saying why it is not one."""
    if value is None or len(value) == 0:
        raise Invalid("empty_value", "message has no value")
    if len(value) > settings.max_message_bytes:
        raise Invalid(
            "oversize", f"message is {len(value)} bytes, limit {settings.max_message_bytes}"
        )
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("not_utf8", f"value is not UTF-8 (byte {exc.start})") from None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Invalid("bad_json", f"value is not JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(obj, dict):
        raise Invalid("not_object", f"value must be a JSON object, got {kind(obj)}")
    if _may_have_duplicate_keys(value, obj):
        _check_duplicate_keys(value)
    return obj


def _may_have_duplicate_keys(value: bytes, obj: dict[str, Any]) -> bool:
    """False when the message certainly has no repeated key, at any depth (the fast path).

    Every key/value pair has one ``:`` outside strings, so without escapes the
    colons in the raw bytes are the pairs plus the colons inside strings. A flat
    object whose only colons in strings are those of ``timestamp`` and ``ip``
    has exactly ``len(obj)`` + those colons; any repeated key (which orjson
    silently drops) adds one. Anything else goes to the exact check.
    """
    extra = value.count(b":") - len(obj)
    if extra == 0:
        return False
    if b"\\" in value:
        return True
    ts = obj.get("timestamp", obj.get("reported_at"))
    if type(ts) is str:
        extra -= ts.count(":")
        if extra == 0:
            return False
    ip = obj.get("ip")
    if type(ip) is str:
        extra -= ip.count(":")
    return extra != 0


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise Invalid("duplicate_key", f"key {name[:64]!r} appears more than once")
            seen.add(name)
    return d


def _check_duplicate_keys(value: bytes) -> None:
    """The exact check (slow path): the standard parser, refusing a repeated key."""
    try:
        json.loads(value, object_pairs_hook=_no_repeats)
    except RecursionError:
        raise Invalid("bad_json", "value is nested too deeply") from None


def origin(msg: RawMessage) -> tuple[str, int, int]:
    """Where a message came from: topic, partition, offset (-1 when unknown)."""
    return (
        msg.topic or "",
        -1 if msg.partition is None else msg.partition,
        -1 if msg.offset is None else msg.offset,
    )


def dead_letter(msg: RawMessage, err: Invalid, now: float) -> DeadLetter:
    topic, partition, offset = origin(msg)
    return DeadLetter(
        code=err.code,
        message=err.message,
        value=msg.value,
        key=msg.key,
        topic=topic,
        partition=partition,
        offset=offset,
        dead_at=now,
    )


def parse_message(
    msg: RawMessage, settings: ValidationSettings, now: float, *, require_key: bool
) -> Transaction | DeadLetter:
    """One raw message to a Transaction, or to a DeadLetter with the reason.

    ``require_key``: the message must carry a non-empty key equal to its
    user_id (true for Kafka, where the key decides the partition).
    """
    try:
        obj = decode_object(msg.value, settings)
        controls = msg.value is None or _may_hold_control(msg.value)
        txn = validate_object(obj, settings, now, controls=controls)
        if require_key:
            if not msg.key:
                raise Invalid("empty_key", "message has no key (the key must be the user_id)")
            if msg.key != txn.user_id.encode("utf-8"):
                raise Invalid("key_mismatch", "message key differs from field 'user_id'")
    except Invalid as err:
        return dead_letter(msg, err, now)
    txn.topic, txn.partition, txn.offset = origin(msg)
    return txn

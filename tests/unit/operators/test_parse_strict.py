"""parse/validate, issue 13: control characters in string fields, repeated JSON keys,
negative zero."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudflow.config.settings import ValidationSettings
from fraudflow.operators.ingest.labels import parse_label
from fraudflow.operators.ingest.parse import (
    Invalid,
    _check_duplicate_keys,
    _may_have_duplicate_keys,
    _may_hold_control,
    parse_message,
)
from fraudflow.records import DeadLetter, Transaction

NOW = 1_767_225_600.0
V = ValidationSettings()
GOOD: dict[str, Any] = {
    "transaction_id": "t1",
    "user_id": "u1",
    "amount": 12.5,
    "timestamp": "2025-12-31T23:00:00+00:00",
    "merchant_id": "m1",
    "merchant_category": "grocery",
    "payment_method": "card",
    "device_id": "d1",
    "channel": "web",
    "ip": "2001:db8::1",
}
STRING_FIELDS = [k for k, v in GOOD.items() if isinstance(v, str) and k != "timestamp"]
CONTROL = [chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]]


def msg(value: bytes, key: bytes = b"u1") -> SimpleNamespace:
    return SimpleNamespace(key=key, value=value, topic="tx", partition=0, offset=1)


def parse(value: bytes, key: bytes = b"u1") -> Transaction | DeadLetter:
    return parse_message(msg(value, key), V, NOW, require_key=True)


def test_good_record_passes() -> None:
    assert isinstance(parse(orjson.dumps(GOOD)), Transaction)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(STRING_FIELDS),
    bad=st.sampled_from(CONTROL),
    before=st.text(max_size=5).filter(lambda s: not any(c in CONTROL for c in s)),
    after=st.text(max_size=5),
)
def test_a_control_character_in_any_string_field_is_bad_value_naming_it(
    field: str, bad: str, before: str, after: str
) -> None:
    text = before + bad + after
    obj = {**GOOD, field: text}
    out = parse(orjson.dumps(obj), key=text.encode() if field == "user_id" else b"u1")
    assert isinstance(out, DeadLetter)
    assert out.code == "bad_value"
    assert repr(field) in out.message
    assert f"U+{ord(bad):04X}" in out.message


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(STRING_FIELDS),
    text=st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=40),
)
def test_any_text_without_control_characters_is_accepted(field: str, text: str) -> None:
    obj = {**GOOD, field: text}
    out = parse(orjson.dumps(obj), key=text.encode() if field == "user_id" else b"u1")
    assert isinstance(out, Transaction), out


def test_nul_in_a_label_transaction_id_is_bad_value() -> None:
    v = orjson.dumps({"transaction_id": "t\x001", "label": 1, "reported_at": NOW * 1000})
    out = parse_label(msg(v), V, NOW)
    assert isinstance(out, DeadLetter)
    assert (out.code, "'transaction_id'" in out.message) == ("bad_value", True)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"transaction_id":"t1","user_id":"u1","amount":-5,"amount":5,'
        b'"timestamp":"2025-12-31T23:00:00Z"}',
        b'{"transaction_id":"t1","user_id":"u1","amount":5,"timestamp":"2025-12-31T23:00:00Z",'
        b'"\\u0061mount":-5}',
        b'{"transaction_id":"t1","user_id":"u1","amount":5,"timestamp":"2025-12-31T23:00:00Z",'
        b'"extra":{"a":1,"a":2}}',
        b'{"transaction_id":"t1","user_id":"u1","amount":5,"timestamp":"2025-12-31T23:00:00Z",'
        b'"user_id":"u1"}',
        # an escaped colon must not hide the repeat from the fast path
        b'{"transaction_id":"t1","user_id":"u1","amount":5,"amount":5,'
        b'"timestamp":"2025-12-31T23\\u003a00:00Z"}',
    ],
)
def test_repeated_keys_are_dead_lettered(raw: bytes) -> None:
    out = parse(raw)
    assert isinstance(out, DeadLetter)
    assert out.code == "duplicate_key"


def test_negative_zero_is_normalised() -> None:
    out = parse(orjson.dumps({**GOOD, "amount": -0.0, "lat": -0.0, "lon": -0.0}))
    assert isinstance(out, Transaction)
    assert (str(out.amount), str(out.lat), str(out.lon)) == ("0.0", "0.0", "0.0")


def _has_repeat(raw: bytes) -> bool:
    found = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        found = found or len({k for k, _ in pairs}) != len(pairs)
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)
    return found


_keys = st.sampled_from(["a", "b", "amount", "ip", "timestamp", "a:b", "\u00e9", '"'])
_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from(["12:00:00", "::1", 'x":"y', "\\"])
)
_json = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(_keys, inner), max_size=4),
    max_leaves=12,
)


def _render(v: Any, escape: bool) -> str:
    """JSON text of a value whose objects are lists of pairs (keys may repeat)."""
    if isinstance(v, list) and v and all(isinstance(p, tuple) for p in v):
        body = ",".join(f"{_render(k, escape)}:{_render(x, escape)}" for k, x in v)
        return "{" + body + "}"
    if isinstance(v, tuple):
        return _render(list(v), escape)
    if isinstance(v, list):
        return "[" + ",".join(_render(x, escape) for x in v) + "]"
    text = json.dumps(v, ensure_ascii=escape)
    return re.sub(":", r"\\u003a", text) if escape and isinstance(v, str) else text


@settings(max_examples=500, deadline=None)
@given(pairs=st.lists(st.tuples(_keys, _json), min_size=1, max_size=8), escape=st.booleans())
def test_the_fast_path_never_misses_a_repeated_key(
    pairs: list[tuple[str, Any]], escape: bool
) -> None:
    raw = _render(pairs, escape).encode()
    obj = orjson.loads(raw)
    repeated = _has_repeat(raw)
    if repeated:
        assert _may_have_duplicate_keys(raw, obj)
    if repeated:
        with pytest.raises(Invalid, match="appears more than once"):
            _check_duplicate_keys(raw)
    else:
        _check_duplicate_keys(raw)


def _strings(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, dict):
        return [s for k, x in v.items() for s in (k, *_strings(x))]
    if isinstance(v, list):
        return [s for x in v for s in _strings(x)]
    return []


@settings(max_examples=500, deadline=None)
@given(
    obj=st.dictionaries(
        st.text(max_size=6),
        st.text(max_size=12) | st.lists(st.text(max_size=6), max_size=3),
        max_size=6,
    )
)
def test_the_control_scan_never_misses_a_control_character(obj: dict[str, Any]) -> None:
    raw = orjson.dumps(obj)
    has = any(_CONTROL_RE.search(s) for s in _strings(orjson.loads(raw)))
    if has:
        assert _may_hold_control(raw)


_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")

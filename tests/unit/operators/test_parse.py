"""parse/validate: a table of bad inputs, and properties over generated ones."""

from __future__ import annotations

import base64
import math
from types import SimpleNamespace

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudflow.config.settings import ValidationSettings
from fraudflow.operators.ingest.parse import ERROR_CODES, parse_message, parse_timestamp
from fraudflow.records import DeadLetter, Transaction

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
V = ValidationSettings()
GOOD = {
    "transaction_id": "t1",
    "user_id": "u1",
    "amount": 12.5,
    "timestamp": "2025-12-31T23:00:00Z",
    "currency": "EUR",
    "country": "DE",
    "lat": 52.5,
    "lon": 13.4,
    "merchant_id": "m1",
    "unknown_field": {"is": "ignored"},
}


def msg(value: bytes | None, key: bytes | None = b"u1") -> SimpleNamespace:
    return SimpleNamespace(key=key, value=value, topic="tx", partition=2, offset=41)


def with_(**kw: object) -> bytes:
    obj = {**GOOD, **kw}
    return orjson.dumps({k: v for k, v in obj.items() if v is not ...})


def test_good_record_becomes_transaction() -> None:
    t = parse_message(msg(with_()), V, NOW, require_key=True)
    assert isinstance(t, Transaction)
    assert (t.transaction_id, t.user_id, t.amount, t.currency) == ("t1", "u1", 12.5, "EUR")
    assert t.ts == NOW - 3600
    assert (t.topic, t.partition, t.offset) == ("tx", 2, 41)


def test_epoch_millis_and_default_currency() -> None:
    t = parse_message(
        msg(with_(timestamp=int((NOW - 10) * 1000), currency=None)), V, NOW, require_key=True
    )
    assert isinstance(t, Transaction)
    assert t.ts == NOW - 10
    assert t.currency == "USD"


@pytest.mark.parametrize(
    ("value", "key", "code"),
    [
        (b"{not json", b"u1", "bad_json"),
        (b"\xff\xfe\x00garbage", b"u1", "not_utf8"),
        (b"[1, 2]", b"u1", "not_object"),
        (b"", b"u1", "empty_value"),
        (None, b"u1", "empty_value"),
        (with_(amount="12.5"), b"u1", "bad_type"),
        (with_(user_id=123), b"u1", "bad_type"),
        (with_(amount=True), b"u1", "bad_type"),
        (with_(transaction_id=...), b"u1", "missing_field"),
        (with_(timestamp=...), b"u1", "missing_field"),
        (with_(amount=...), b"u1", "missing_field"),
        (
            b'{"transaction_id":"t","user_id":"u1","amount":NaN,"timestamp":"2025-12-31T23:00:00Z"}',
            b"u1",
            "bad_json",
        ),
        (
            b'{"transaction_id":"t","user_id":"u1","amount":1e999,"timestamp":"2025-12-31T23:00:00Z"}',
            b"u1",
            "bad_json",
        ),
        (with_(amount=-0.01), b"u1", "bad_amount"),
        (with_(timestamp="2025-12-31T23:00:00"), b"u1", "naive_timestamp"),
        (with_(timestamp="yesterday"), b"u1", "bad_timestamp"),
        (with_(timestamp="1990-01-01T00:00:00Z"), b"u1", "timestamp_out_of_range"),
        (with_(timestamp="2090-01-01T00:00:00Z"), b"u1", "timestamp_out_of_range"),
        (with_(pad="x" * 20000), b"u1", "oversize"),
        (with_(), b"", "empty_key"),
        (with_(), None, "empty_key"),
        (with_(), b"u2", "key_mismatch"),
        (with_(transaction_id=""), b"u1", "bad_value"),
        (with_(transaction_id="x" * 129), b"u1", "bad_value"),
        (with_(currency="euro"), b"u1", "bad_value"),
        (with_(country="Germany"), b"u1", "bad_value"),
        (with_(lon=...), b"u1", "bad_value"),
        (with_(lat=123.0), b"u1", "bad_value"),
        (with_(merchant_id=7), b"u1", "bad_type"),
    ],
)
def test_bad_records_are_dead_lettered_with_reason(
    value: bytes | None, key: bytes | None, code: str
) -> None:
    d = parse_message(msg(value, key), V, NOW, require_key=True)
    assert isinstance(d, DeadLetter), d
    assert d.code == code
    assert d.code in ERROR_CODES
    assert d.value == value  # original bytes kept
    assert (d.topic, d.partition, d.offset) == ("tx", 2, 41)
    out = orjson.loads(d.to_json())
    assert out["error"]["code"] == code
    assert out["error"]["message"]


def test_dead_letter_keeps_non_utf8_bytes_as_base64() -> None:
    d = parse_message(msg(b"\xff\x00"), V, NOW, require_key=True)
    assert isinstance(d, DeadLetter)
    out = d.to_dict()
    assert out["value_encoding"] == "base64"
    assert base64.b64decode(out["value"]) == b"\xff\x00"


def test_files_need_no_key() -> None:
    assert isinstance(parse_message(msg(with_(), None), V, NOW, require_key=False), Transaction)


def test_timestamp_forms() -> None:
    assert parse_timestamp("2026-01-01T01:00:00+01:00") == NOW
    assert parse_timestamp(NOW * 1000) == NOW


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_exactly_one_outcome(raw: bytes) -> None:
    out = parse_message(msg(raw), V, NOW, require_key=True)
    assert isinstance(out, Transaction | DeadLetter)
    if isinstance(out, DeadLetter):
        assert out.code in ERROR_CODES


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "transaction_id": json_values | st.text(min_size=1, max_size=10),
            "user_id": st.just("u1") | json_values,
            "amount": json_values | st.floats(min_value=0, max_value=1e6),
            "timestamp": json_values
            | st.integers(min_value=int((NOW - 1e6) * 1000), max_value=int(NOW * 1000)),
            "currency": json_values | st.sampled_from(["USD", "EUR"]),
            "lat": json_values,
            "lon": json_values,
        },
    )
)
def test_valid_output_satisfies_the_contract(obj: dict[str, object]) -> None:
    out = parse_message(msg(orjson.dumps(obj)), V, NOW, require_key=True)
    if isinstance(out, Transaction):
        assert isinstance(out.transaction_id, str)
        assert 1 <= len(out.transaction_id) <= 128
        assert out.user_id == "u1"
        assert math.isfinite(out.amount)
        assert out.amount >= 0
        assert (
            NOW - V.max_event_age.total_seconds()
            <= out.ts
            <= NOW + V.max_future_skew.total_seconds()
        )
        assert (out.lat is None) == (out.lon is None)
    else:
        assert out.code in ERROR_CODES

"""parse_label: a table of inputs, and properties over generated ones."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudflow.config.settings import ValidationSettings
from fraudflow.operators.ingest.labels import LABEL_VALUES, parse_label
from fraudflow.operators.ingest.parse import ERROR_CODES
from fraudflow.records import DeadLetter, Label

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
V = ValidationSettings()
GOOD: dict[str, Any] = {
    "transaction_id": "t1",
    "label": 1,
    "reported_at": "2025-12-31T23:00:00Z",
}


def msg(value: bytes | None, key: bytes | None = b"t1") -> SimpleNamespace:
    return SimpleNamespace(key=key, value=value, topic="labels", partition=3, offset=17)


def with_(**kw: Any) -> bytes:
    """GOOD with fields replaced; ``...`` removes a field."""
    obj = {**GOOD, **kw}
    return orjson.dumps({k: v for k, v in obj.items() if v is not ...})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(0, 0), (1, 1), ("fraud", 1), ("legit", 0), ("0", 0), ("1", 1)],
)
def test_good_label_values(raw: Any, expected: int) -> None:
    lab = parse_label(msg(with_(label=raw)), V, NOW)
    assert isinstance(lab, Label)
    assert lab.label == expected
    assert lab.transaction_id == "t1"
    assert lab.reported_at == NOW - 3600


def test_label_keeps_its_source_and_raw_value() -> None:
    value = with_(reported_at=int((NOW - 10) * 1000))
    lab = parse_label(msg(value, key=None), V, NOW)
    assert isinstance(lab, Label)
    assert lab.reported_at == NOW - 10  # epoch milliseconds
    assert (lab.value, lab.key, lab.topic, lab.partition, lab.offset) == (
        value,
        None,
        "labels",
        3,
        17,
    )


def test_key_is_not_checked() -> None:
    assert isinstance(parse_label(msg(with_(), key=b"someone-else"), V, NOW), Label)


def test_missing_source_fields_get_defaults() -> None:
    m = SimpleNamespace(key=None, value=with_(), topic=None, partition=None, offset=None)
    lab = parse_label(m, V, NOW)
    assert isinstance(lab, Label)
    assert (lab.topic, lab.partition, lab.offset) == ("", -1, -1)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        # the label itself
        (with_(label=True), "bad_value"),
        (with_(label=False), "bad_value"),
        (with_(label=2), "bad_value"),
        (with_(label=-1), "bad_value"),
        (with_(label=1.0), "bad_value"),
        (with_(label=0.5), "bad_value"),
        (with_(label="FRAUD"), "bad_value"),
        (with_(label="true"), "bad_value"),
        (with_(label=""), "bad_value"),
        (with_(label=[1]), "bad_value"),
        (with_(label={"v": 1}), "bad_value"),
        (with_(label=None), "missing_field"),
        (with_(label=...), "missing_field"),
        # the transaction id
        (with_(transaction_id=...), "missing_field"),
        (with_(transaction_id=None), "missing_field"),
        (with_(transaction_id=17), "bad_type"),
        (with_(transaction_id=""), "bad_value"),
        (with_(transaction_id="x" * 129), "bad_value"),
        # when it was reported
        (with_(reported_at=...), "missing_field"),
        (with_(reported_at=None), "missing_field"),
        (with_(reported_at="2025-12-31T23:00:00"), "naive_timestamp"),
        (with_(reported_at="yesterday"), "bad_timestamp"),
        (with_(reported_at=True), "bad_type"),
        (with_(reported_at=[2025]), "bad_type"),
        (with_(reported_at=0), "bad_timestamp"),  # below 1e11: epoch seconds? (one time rule)
        (with_(reported_at=int(NOW)), "bad_timestamp"),  # today in epoch seconds
        (with_(reported_at=100_000_000_000), "timestamp_out_of_range"),  # 1973 in epoch ms
        (with_(reported_at="1990-01-01T00:00:00Z"), "timestamp_out_of_range"),
        (with_(reported_at="2026-01-03T00:00:00Z"), "timestamp_out_of_range"),  # 2 days ahead
        (with_(reported_at=int((NOW + 2 * 86400) * 1000)), "timestamp_out_of_range"),
        # the message
        (b"{not json", "bad_json"),
        (b'{"transaction_id": "t1", "label": 1, "reported_at": NaN}', "bad_json"),
        (b"\xff\xfe{}", "not_utf8"),
        (b"[1, 2]", "not_object"),
        (b'"fraud"', "not_object"),
        (b"1", "not_object"),
        (b"null", "not_object"),
        (b"", "empty_value"),
        (None, "empty_value"),
        (b" " * (V.max_message_bytes + 1), "oversize"),
    ],
)
def test_bad_label_becomes_dead_letter_with_its_code(value: bytes | None, code: str) -> None:
    out = parse_label(msg(value), V, NOW)
    assert isinstance(out, DeadLetter), out
    assert out.code == code, out.message
    assert code in ERROR_CODES
    assert (out.value, out.key, out.topic, out.partition, out.offset) == (
        value,
        b"t1",
        "labels",
        3,
        17,
    )
    assert out.dead_at == NOW
    assert out.step == "validate"


def test_dead_letter_message_names_the_field() -> None:
    out = parse_label(msg(with_(label=2)), V, NOW)
    assert isinstance(out, DeadLetter)
    assert "'label'" in out.message
    out = parse_label(msg(with_(reported_at="2025-12-31T23:00:00")), V, NOW)
    assert isinstance(out, DeadLetter)
    assert "'reported_at'" in out.message


def test_label_values_table_is_binary() -> None:
    assert set(LABEL_VALUES.values()) == {0, 1}
    assert all(not isinstance(k, bool) for k in LABEL_VALUES)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def _check_one(value: bytes | None) -> None:
    out = parse_label(msg(value), V, NOW)
    assert type(out) in (Label, DeadLetter)
    if isinstance(out, DeadLetter):
        assert out.code in ERROR_CODES
        assert out.value == value
    else:
        assert out.label in (0, 1)
        assert isinstance(out.transaction_id, str)
        assert 1 <= len(out.transaction_id) <= 128
        assert math.isfinite(out.reported_at)
        assert NOW - V.max_event_age.total_seconds() <= out.reported_at
        assert out.reported_at <= NOW + V.max_future_skew.total_seconds()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.none())
def test_any_bytes_give_exactly_one_label_or_dead_letter(value: bytes | None) -> None:
    _check_one(value)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "transaction_id": json_values | st.text(min_size=1, max_size=10),
            "label": json_values | st.sampled_from([0, 1, "fraud", "legit", "0", "1"]),
            "reported_at": json_values
            | st.integers(int((NOW - 4000 * 86400) * 1000), int((NOW + 3 * 86400) * 1000))
            | st.sampled_from(["2025-12-31T23:00:00Z", "2025-12-31T23:00:00+05:00"]),
        },
    )
)
def test_any_object_gives_exactly_one_label_or_dead_letter(obj: dict[str, Any]) -> None:
    _check_one(orjson.dumps(obj))

"""The one timestamp rule (operators/ingest/timestamps.py), as the flow, the backtest and the
commands see it: RFC 3339 with a zone, or epoch milliseconds; epoch seconds refused."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraudflow.backtest.labels import parse_time
from fraudflow.operators.ingest.timestamps import MIN_EPOCH_MS, Invalid, parse_timestamp

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (NOW, "bad_timestamp"),  # epoch seconds: ambiguous, refused
        (int(NOW), "bad_timestamp"),
        (0, "bad_timestamp"),
        (-5, "bad_timestamp"),
        (MIN_EPOCH_MS - 1, "bad_timestamp"),
        (math.inf, "bad_timestamp"),
        (math.nan, "bad_timestamp"),
        ("1767225600000", "bad_timestamp"),  # digits in a string are not a number
        ("2026-01-01T00:00:00", "naive_timestamp"),
        ("yesterday", "bad_timestamp"),
        ("2" * 65, "bad_timestamp"),
        (True, "bad_type"),
        (None, "bad_type"),
        ([NOW], "bad_type"),
    ],
)
def test_refusals_name_the_field(value: Any, code: str) -> None:
    with pytest.raises(Invalid) as info:
        parse_timestamp(value, "when")
    assert info.value.code == code
    assert "'when'" in info.value.message


def test_epoch_seconds_are_refused_with_a_hint() -> None:
    with pytest.raises(Invalid, match="looks like epoch seconds: give epoch milliseconds"):
        parse_timestamp(NOW, "reported_at")


@given(st.integers(int(MIN_EPOCH_MS), 2**53))
def test_epoch_ms_from_the_threshold_on_are_accepted(ms: int) -> None:
    assert parse_timestamp(ms) == ms / 1000.0


@given(st.integers(int(MIN_EPOCH_MS), 7_258_118_400_000), st.integers(-14 * 60, 14 * 60))
def test_rfc3339_and_epoch_ms_agree(ms: int, offset_min: int) -> None:
    local = datetime.fromtimestamp(ms / 1000, UTC).astimezone(
        timezone(timedelta(minutes=offset_min))
    )
    assert parse_timestamp(local.isoformat()) == pytest.approx(parse_timestamp(ms), abs=1e-6)


def test_the_backtest_reads_times_by_the_same_rule() -> None:
    assert parse_time(None) is None
    assert parse_time("") is None
    assert parse_time(NOW * 1000) == NOW
    assert parse_time("2026-01-01T00:00:00Z") == NOW
    with pytest.raises(Invalid, match="'label_time'"):
        parse_time(NOW)

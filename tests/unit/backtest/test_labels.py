"""Label timing: a label is never known before its transaction, nor used before it is known."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraudflow.backtest.labels import label_known_at, label_of, parse_time
from fraudflow.operators.ingest.timestamps import Invalid


def test_known_at_uses_label_time_or_delay() -> None:
    assert label_known_at(1000.0, None, timedelta(days=7)) == 1000.0 + 7 * 86400
    assert label_known_at(1000.0, 5000.0, timedelta(days=7)) == 5000.0
    assert label_known_at(1000.0, 10.0, timedelta(days=7)) == 1000.0


times = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(times, st.none() | times, st.integers(min_value=0, max_value=200_000))
def test_label_never_known_before_its_transaction(
    txn_time: float, label_time: float | None, delay_s: int
) -> None:
    delay = timedelta(seconds=delay_s)
    known = label_known_at(txn_time, label_time, delay)
    assert known >= txn_time
    if label_time is None:
        assert known == txn_time + delay_s
    else:
        assert known == max(txn_time, label_time)


def test_label_parsing() -> None:
    assert label_of({"label": 1}) == 1
    assert label_of({"_label": "0"}) == 0
    assert label_of({"label": "fraud"}) == 1  # the topic's format, also in files
    assert label_of({"label": "legit"}) == 0
    assert label_of({"label": True}) is None
    assert label_of({"label": 2}) is None
    assert parse_time("1970-01-01T00:01:00Z") == 60.0
    assert parse_time(None) is None
    assert parse_time(1_767_225_600_000) == 1_767_225_600.0  # epoch ms, as on the topic


def test_label_time_refuses_ambiguous_input_naming_the_field() -> None:
    with pytest.raises(Invalid, match="'label_time' is 1767225600, which looks like epoch sec"):
        parse_time(1_767_225_600)  # epoch seconds
    with pytest.raises(Invalid, match="'label_time' has no time zone"):
        parse_time("2026-01-01T00:01:00")

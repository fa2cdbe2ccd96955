"""Label timing: a label is never seen before it is known."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraudflow.backtest.labels import (
    Event,
    Label,
    label_known_at,
    label_of,
    merge_labels,
    parse_time,
)
from fraudflow.operators.ingest.timestamps import Invalid


def test_known_at_uses_label_time_or_delay() -> None:
    assert label_known_at(1000.0, None, timedelta(days=7)) == 1000.0 + 7 * 86400
    assert label_known_at(1000.0, 5000.0, timedelta(days=7)) == 5000.0
    assert label_known_at(1000.0, 10.0, timedelta(days=7)) == 1000.0


times = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(
    st.lists(times, max_size=40),
    st.lists(st.tuples(times, st.none() | times), max_size=20),
    st.integers(min_value=0, max_value=200_000),
    st.booleans(),
)
def test_label_never_before_its_time(
    event_times: list[float],
    label_specs: list[tuple[float, float | None]],
    delay_s: int,
    flush: bool,
) -> None:
    delay = timedelta(seconds=delay_s)
    events = [Event(t, i) for i, t in enumerate(event_times)]
    labels = [
        Label(label_known_at(t, lt, delay), f"t{i}", i % 2) for i, (t, lt) in enumerate(label_specs)
    ]
    out = list(merge_labels(events, labels, flush=flush))
    assert [x for x in out if isinstance(x, Event)] == events  # events untouched, in order
    # a label sits just before the event that moves the stream's time to (or past) it:
    # every event before that one is earlier than the label's time
    clock = float("-inf")
    for i, x in enumerate(out):
        if isinstance(x, Event):
            clock = max(clock, x.ts)
            continue
        nxt = next((y for y in out[i:] if isinstance(y, Event)), None)
        if nxt is None:
            assert flush or x.known_at <= clock
        else:
            assert x.known_at <= max(clock, nxt.ts)
    end = max(event_times, default=float("-inf"))
    released = sum(isinstance(x, Label) for x in out)
    expected = len(labels) if flush else sum(lab.known_at <= end for lab in labels)
    assert released == expected


def test_merge_places_label_before_first_event_at_its_time() -> None:
    events = [Event(1.0, "a"), Event(5.0, "b"), Event(9.0, "c")]
    lab = Label(5.0, "t", 1)
    assert list(merge_labels(events, [lab])) == [events[0], lab, events[1], events[2]]
    assert list(merge_labels(events, [Label(10.0, "t", 1)])) == events


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

"""interleave_labels: each label placed where it becomes known, records untouched."""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudflow.backtest.replay import LabelInfo, interleave_labels, replay
from fraudflow.config.settings import Settings, ValidationSettings
from fraudflow.connectors.files import JsonLinesSource
from fraudflow.operators.ingest.labels import looks_like_label, parse_label
from fraudflow.records import Label

# a past date, so the replay's wall clock accepts the records for years to come
T0 = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
HOUR = 3600
V = ValidationSettings()


def rec(i: int, ts: float, *, iso_time: bool = False) -> dict[str, Any]:
    return {
        "transaction_id": f"t{i}",
        "user_id": f"u{i % 3}",
        "amount": 10.0 + i,
        "timestamp": datetime.fromtimestamp(ts, UTC).isoformat() if iso_time else int(ts * 1000),
        "merchant_id": f"m{i % 2}",
    }


def write_jsonl(path: Path, records: Sequence[dict[str, Any] | bytes]) -> list[bytes]:
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def is_label(line: bytes) -> bool:
    return looks_like_label(SimpleNamespace(value=line))


def event_time(line: bytes) -> float | None:
    try:
        ts = orjson.loads(line)["timestamp"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if isinstance(ts, int | float):
        return ts / 1000.0
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


def known_time(line: bytes) -> float:
    return datetime.fromisoformat(orjson.loads(line)["reported_at"]).timestamp()


def check_placement(out: list[bytes]) -> None:
    """Every label sits before the first record whose event time reaches its known time."""
    clock = float("-inf")  # newest event time of the records before this line
    for k, line in enumerate(out):
        if not is_label(line):
            ts = event_time(line)
            clock = clock if ts is None else max(clock, ts)
            continue
        known = known_time(line)
        assert clock < known, (k, line)  # not earlier than needed
        nxt = next((x for x in out[k + 1 :] if not is_label(x)), None)
        assert nxt is not None, "a label after the last record"
        ts = event_time(nxt)
        assert max(clock, float("-inf") if ts is None else ts) >= known, (k, line)  # not later


def interleave(
    tmp: Path, lines_by_file: dict[str, Sequence[dict[str, Any] | bytes]], **kw: Any
) -> tuple[list[list[bytes]], list[list[bytes]]]:
    """(original lines, output lines) per file."""
    labels: dict[str, LabelInfo] = kw.pop("labels")
    delay: timedelta = kw.pop("delay", timedelta(hours=1))
    paths, originals = [], []
    for name, records in lines_by_file.items():
        p = tmp / name
        originals.append(write_jsonl(p, records))
        paths.append(p)
    out_dir = tmp / "out"
    out_dir.mkdir()
    outs = interleave_labels(paths, labels, delay, out_dir)
    assert [o.parent for o in outs] == [out_dir] * len(paths)
    return originals, [o.read_bytes().splitlines() for o in outs]


def test_labels_placed_when_known(tmp_path: Path) -> None:
    records = [rec(i, T0 + i * HOUR) for i in range(10)]
    labels = {
        "t1": LabelInfo(1, None),  # known 1h later: before t2
        "t3": LabelInfo(0, T0 + 6.5 * HOUR),  # label_time: before t7
        "t4": LabelInfo(1, T0 + 4.5 * HOUR),  # label_time: before t5
        "t8": LabelInfo(1, None),  # known at t9's time: before t9
        "t9": LabelInfo(1, None),  # known after the last record: left out
        "nowhere": LabelInfo(1, None),
    }
    (orig,), (out,) = interleave(tmp_path, {"a.jsonl": records}, labels=labels)
    tags = " ".join(("L" if is_label(x) else "") + orjson.loads(x)["transaction_id"] for x in out)
    assert tags == "t0 t1 Lt1 t2 t3 t4 Lt4 t5 t6 Lt3 t7 t8 Lt8 t9"
    check_placement(out)
    assert [x for x in out if not is_label(x)] == orig
    assert orjson.loads(out[2]) == {
        "transaction_id": "t1",
        "label": 1,
        "reported_at": "2026-06-01T02:00:00.000Z",
    }


def test_every_label_line_parses_as_a_label(tmp_path: Path) -> None:
    records = [rec(i, T0 + i * HOUR) for i in range(6)]
    labels = {f"t{i}": LabelInfo(i % 2, None) for i in range(6)}
    (_,), (out,) = interleave(tmp_path, {"a.jsonl": records}, labels=labels)
    now = T0 + 100 * HOUR
    got = [
        parse_label(SimpleNamespace(key=None, value=x, topic="a", partition=0, offset=0), V, now)
        for x in out
        if is_label(x)
    ]
    assert all(isinstance(g, Label) for g in got)
    assert [(g.transaction_id, g.label) for g in got if isinstance(g, Label)] == [
        (f"t{i}", i % 2) for i in range(5)
    ]


def test_records_keep_their_order_and_bytes(tmp_path: Path) -> None:
    records: list[dict[str, Any] | bytes] = [
        rec(0, T0),
        b"{broken",
        rec(1, T0 + HOUR, iso_time=True),
        b'{"transaction_id": "t2",   "amount": 3, "timestamp": "nonsense"}',
        rec(3, T0 + 2 * HOUR),
        rec(4, T0 + 3 * HOUR),
    ]
    labels = {"t0": LabelInfo(1, None), "t1": LabelInfo(1, None), "t2": LabelInfo(1, None)}
    (orig,), (out,) = interleave(tmp_path, {"a.jsonl": records}, labels=labels)
    assert [x for x in out if not is_label(x)] == orig
    # t2 has no usable event time: its label has no known time and is left out
    assert sorted(orjson.loads(x)["transaction_id"] for x in out if is_label(x)) == ["t0", "t1"]
    check_placement(out)


def test_blank_lines_are_dropped(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    lines = [orjson.dumps(rec(i, T0 + i * HOUR)) for i in range(3)]
    p.write_bytes(lines[0] + b"\n\n  \n" + lines[1] + b"\r\n" + lines[2])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (o,) = interleave_labels([p], {}, timedelta(hours=1), out_dir)
    assert o.read_bytes() == b"".join(x + b"\n" for x in lines)


def test_each_file_gets_its_own_labels(tmp_path: Path) -> None:
    a = [rec(i, T0 + i * HOUR) for i in range(4)]
    b = [rec(i, T0 + i * HOUR) for i in range(10, 14)]
    labels = {"t0": LabelInfo(1, None), "t11": LabelInfo(0, None)}
    (oa, ob), (xa, xb) = interleave(tmp_path, {"a.jsonl": a, "b.jsonl": b}, labels=labels)
    assert [orjson.loads(x)["transaction_id"] for x in xa if is_label(x)] == ["t0"]
    assert [orjson.loads(x)["transaction_id"] for x in xb if is_label(x)] == ["t11"]
    assert [x for x in xa if not is_label(x)] == oa
    assert [x for x in xb if not is_label(x)] == ob


def test_csv_becomes_json_lines(tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["transaction_id", "user_id", "amount", "timestamp", "merchant_id", "_label"])
        for i in range(4):
            ts = datetime.fromtimestamp(T0 + i * HOUR, UTC).isoformat()
            w.writerow([f"t{i}", f"u{i}", f"{10 + i}.5", ts, "" if i == 2 else f"m{i}", i % 2])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (o,) = interleave_labels([p], {"t0": LabelInfo(1, None)}, timedelta(hours=1), out_dir)
    assert o.name == "in.jsonl"
    objs = [orjson.loads(x) for x in o.read_bytes().splitlines()]
    assert [x["transaction_id"] for x in objs] == ["t0", "t0", "t1", "t2", "t3"]
    assert objs[1] == {
        "transaction_id": "t0",
        "label": 1,
        "reported_at": "2026-06-01T01:00:00.000Z",
    }
    assert objs[0] == {
        "transaction_id": "t0",
        "user_id": "u0",
        "amount": 10.5,  # a number, as the CSV source reads it
        "timestamp": "2026-06-01T00:00:00+00:00",
        "merchant_id": "m0",
        "_label": "0",
    }
    assert "merchant_id" not in objs[3]  # empty cells are dropped
    check_placement(o.read_bytes().splitlines())


def known_at(ts: float, info: LabelInfo, delay_h: int) -> float:
    return max(ts, info.label_time) if info.label_time is not None else ts + delay_h * HOUR


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=30),
    st.data(),
    st.integers(0, 6),
)
def test_placement_property(hours: list[int], data: st.DataObject, delay_h: int) -> None:
    records = [rec(i, T0 + h * HOUR) for i, h in enumerate(hours)]
    labelled = data.draw(st.sets(st.integers(0, len(hours) - 1)))
    label_times = data.draw(
        st.lists(st.none() | st.integers(-5, 50), min_size=len(hours), max_size=len(hours))
    )
    labels = {
        f"t{i}": LabelInfo(i % 2, None if lt is None else T0 + lt * HOUR)
        for i, lt in enumerate(label_times)
        if i in labelled
    }
    # labels known by the time their own transaction is read (delay 0, an earlier
    # label_time, a late record) are left to the tests below
    reached = [T0 + max(hours[: i + 1]) * HOUR for i in range(len(hours))]
    labels = {
        tid: info
        for tid, info in labels.items()
        if known_at(T0 + hours[int(tid[1:])] * HOUR, info, delay_h) > reached[int(tid[1:])]
    }
    with tempfile.TemporaryDirectory() as d:
        (orig,), (out,) = interleave(
            Path(d), {"a.jsonl": records}, labels=labels, delay=timedelta(hours=delay_h)
        )
    assert [x for x in out if not is_label(x)] == orig
    check_placement(out)
    # exactly the labels known by the last record's time, once each
    end = T0 + max(hours) * HOUR
    expected = set()
    for tid, info in labels.items():
        if known_at(T0 + hours[int(tid[1:])] * HOUR, info, delay_h) <= end:
            expected.add(tid)
    got = [orjson.loads(x)["transaction_id"] for x in out if is_label(x)]
    assert sorted(got) == sorted(expected)


def _label_before_own_transaction(out: list[bytes]) -> list[str]:
    seen: set[str] = set()
    early = []
    for x in out:
        tid = orjson.loads(x)["transaction_id"]
        if is_label(x):
            if tid not in seen:
                early.append(tid)
        else:
            seen.add(tid)
    return early


@pytest.mark.parametrize(
    ("info", "delay"),
    [
        (LabelInfo(1, None), timedelta(0)),  # the default --label-delay: known at its own time
        (LabelInfo(1, T0), timedelta(hours=1)),  # a label_time before the transaction
    ],
)
def test_a_label_never_precedes_its_own_transaction(
    tmp_path: Path, info: LabelInfo, delay: timedelta
) -> None:
    """The flow dead-letters a label it gets before the transaction (label_unknown_transaction)."""
    records = [rec(i, T0 + i * HOUR) for i in range(5)]
    (_,), (out,) = interleave(tmp_path, {"a.jsonl": records}, labels={"t1": info}, delay=delay)
    assert _label_before_own_transaction(out) == []


def test_a_late_record_gets_its_label_after_it(tmp_path: Path) -> None:
    # t2 arrives late (event time before t1's): known 1h after t2, i.e. before t1's time
    records = [rec(0, T0), rec(1, T0 + 5 * HOUR), rec(2, T0 + HOUR), rec(3, T0 + 6 * HOUR)]
    (_,), (out,) = interleave(tmp_path, {"a.jsonl": records}, labels={"t2": LabelInfo(1, None)})
    assert _label_before_own_transaction(out) == []


def test_replay_learns_every_interleaved_label(tmp_path: Path) -> None:
    """End to end: the interleaved copy replayed with feedback on applies its labels."""
    records = [rec(i, T0 + i * 60) for i in range(300)]
    labels = {f"t{i}": LabelInfo(int(i % 5 == 0), None) for i in range(0, 300, 2)}
    src = tmp_path / "in.jsonl"
    write_jsonl(src, records)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    fed = interleave_labels([src], labels, timedelta(minutes=30), out_dir)
    placed = sum(is_label(x) for x in fed[0].read_bytes().splitlines())
    assert placed == len([i for i in range(0, 300, 2) if i * 60 + 1800 <= 299 * 60])
    s = Settings().replace(feedback=True, hst_warmup=50, hst_window=50)
    r = replay(s, JsonLinesSource(fed), interleaved_labels=True)
    snap = r.stats.snapshot()
    assert len(r.decisions) == 300
    assert r.dead_letters == []
    assert snap["labels"] == placed
    assert snap["received"] == snap["valid"] + snap["labels"] + snap["dead_lettered"]


def test_replay_with_label_delay_zero_learns_its_labels(tmp_path: Path) -> None:
    """``fraudflow backtest --feedback on`` with the default --label-delay (0)."""
    records = [rec(i, T0 + i * 60) for i in range(100)]
    labels = {f"t{i}": LabelInfo(int(i % 5 == 0), None) for i in range(100)}
    src = tmp_path / "in.jsonl"
    write_jsonl(src, records)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    fed = interleave_labels([src], labels, timedelta(0), out_dir)
    s = Settings().replace(feedback=True, hst_warmup=50, hst_window=50)
    r = replay(s, JsonLinesSource(fed), interleaved_labels=True)
    assert [d.code for d in r.dead_letters] == []
    # every label, save perhaps the last transaction's (known after the last record)
    assert r.stats.snapshot()["labels"] in (99, 100)

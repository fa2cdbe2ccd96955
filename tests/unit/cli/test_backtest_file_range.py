"""``backtest --input FILE --from/--to``: only the records whose event time is in range."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
import pytest

from fraudflow.backtest.labels import parse_time
from fraudflow.cli import main as cli_main


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("range") / "history.jsonl"
    assert cli_main(["produce", "--out", str(out), "--count", "600", "--users", "40"]) == 0
    return out


def _rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def _bounds(history: Path) -> tuple[str, str, list[int]]:
    """--from/--to around the middle of the file, and the line numbers inside them."""
    rows = _rows(history)
    times = sorted(parse_time(r["timestamp"], "timestamp") or 0.0 for r in rows)
    lo, hi = times[150], times[450]
    inside = [
        i for i, r in enumerate(rows) if lo <= (parse_time(r["timestamp"], "timestamp") or 0) < hi
    ]
    return str(round(lo * 1000)), str(round(hi * 1000)), inside


def _scores(path: Path) -> list[dict[str, Any]]:
    return _rows(path)


def test_only_records_in_range_are_scored_and_the_rest_counted(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start, end, inside = _bounds(history)
    assert 0 < len(inside) < 600
    out = tmp_path / "scores.jsonl"
    argv = ["backtest", "--quiet", "--input", str(history), "--scores-out", str(out)]
    assert cli_main([*argv, "--from", start, "--to", end]) == 0
    rows = _rows(history)
    scored = _scores(out)
    # the offsets still name the input's lines
    assert [s["source"]["offset"] for s in scored] == inside
    assert [s["transaction_id"] for s in scored] == [rows[i]["transaction_id"] for i in inside]
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.strip().startswith("outside range"))
    assert f"{600 - len(inside):,} records with an event time outside [{start}, {end})" in line


def test_a_range_scores_like_the_file_cut_beforehand(history: Path, tmp_path: Path) -> None:
    start, end, inside = _bounds(history)
    lines = history.read_bytes().splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[i] + b"\n" for i in inside))
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    common = ["backtest", "--quiet", "--scores-out"]
    assert cli_main([*common, str(a), "--input", str(history), "--from", start, "--to", end]) == 0
    assert cli_main([*common, str(b), "--input", str(cut)]) == 0

    def key(p: Path) -> list[tuple[str, float, str]]:
        return [(s["transaction_id"], s["score"], s["tier"]) for s in _scores(p)]

    assert key(a) == key(b)


def test_open_ended_range_and_csv(history: Path, tmp_path: Path) -> None:
    start, _end, _inside = _bounds(history)
    rows = _rows(history)
    src = tmp_path / "in.csv"
    cols = sorted({k for r in rows for k in r})
    with src.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "scores.jsonl"
    argv = ["backtest", "--quiet", "--input", str(src), "--from", start, "--scores-out", str(out)]
    assert cli_main(argv) == 0
    lo = int(start) / 1000
    want = [r["transaction_id"] for r in rows if (parse_time(r["timestamp"]) or 0) >= lo]
    assert [s["transaction_id"] for s in _scores(out)] == want


def test_a_record_without_a_readable_time_is_dead_lettered_not_outside(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start, end, inside = _bounds(history)
    src = tmp_path / "bad.jsonl"
    bad = {"transaction_id": "bad-1", "user_id": "u1", "amount": 3.0, "timestamp": "yesterday"}
    src.write_bytes(history.read_bytes() + orjson.dumps(bad) + b"\n")
    capsys.readouterr()
    argv = ["backtest", "--quiet", "--input", str(src), "--from", start, "--to", end]
    assert cli_main(argv) == 0
    text = capsys.readouterr().out
    assert f"{600 - len(inside):,} records with an event time outside" in text
    decisions = next(x for x in text.splitlines() if x.strip().startswith("decisions"))
    assert f"{len(inside):,} (dead-lettered 1" in decisions


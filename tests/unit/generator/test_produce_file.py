"""``fraudflow produce --out``: the file holds the generated records, bad lines and truth."""

from __future__ import annotations

import argparse
import io
from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraudflow.cli import evaluate as evaluate_cmd
from fraudflow.cli import produce as produce_cmd
from fraudflow.generator import MALFORMED_KINDS, generate
from fraudflow.generator.stream import FILE_KINDS, VALID, bad_positions, messages, produce_to_file


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="fraudflow")
    sub = parser.add_subparsers(dest="command", required=True)
    produce_cmd.register(sub)
    evaluate_cmd.register(sub)
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


@given(count=st.integers(0, 500), bad=st.integers(0, 100))
def test_bad_positions_are_spread_and_in_range(count: int, bad: int) -> None:
    pos = bad_positions(count, bad)
    assert len(pos) == bad
    assert pos == sorted(pos)
    if count:
        assert all(1 <= p <= count for p in pos)
    if bad and count >= 2 * bad:
        assert pos[0] <= count // bad  # the first is not pushed to the end


def test_messages_interleave_valid_and_bad() -> None:
    msgs = list(messages(300, users=20, seed=4, bad=2 * len(MALFORMED_KINDS)))
    kinds = Counter(kind for _, _, kind, _ in msgs)
    assert kinds[VALID] == 300
    assert all(kinds[k] == 2 for k in MALFORMED_KINDS)
    assert msgs[0][2] == VALID  # bad records copy valid ones, so a valid one comes first
    valid = [rec for _, _, kind, rec in msgs if kind == VALID]
    assert valid == list(generate(300, users=20, seed=4))
    for key, value, kind, rec in msgs:
        if kind == VALID:
            assert rec is not None
            assert key == rec["user_id"].encode()
            assert value == orjson.dumps(rec)


def test_messages_need_a_valid_record_to_copy() -> None:
    with pytest.raises(ValueError, match="count"):
        list(messages(0, bad=1))


def test_file_round_trip(tmp_path: Path) -> None:
    out, truth = tmp_path / "t.jsonl", tmp_path / "truth.jsonl"
    summary = produce_to_file(
        out, 2000, users=40, seed=3, anomaly_rate=0.03, malformed=39, truth=truth
    )
    lines = out.read_bytes().splitlines()
    expected = list(generate(2000, users=40, seed=3, anomaly_rate=0.03))
    objs = []
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "_label" in obj and "_malformed" not in obj:
            objs.append(obj)
    # duplicates are exact copies of earlier records: drop repeats to recover the stream
    unique, seen = [], set()
    for o in objs:
        if o["transaction_id"] not in seen:
            seen.add(o["transaction_id"])
            unique.append(o)
    assert unique == expected
    assert len(lines) == 2000 + 39
    assert summary.count == 2000
    assert sum(summary.malformed.values()) == 39
    assert set(summary.malformed) == set(FILE_KINDS)  # a file has no key: no empty_key
    assert summary.anomalies == dict(Counter(r["_scenario"] for r in expected if r["_label"]))
    assert summary.first_event == expected[0]["timestamp"]
    assert summary.last_event == expected[-1]["timestamp"]
    truth_rows = [orjson.loads(x) for x in truth.read_bytes().splitlines()]
    assert truth_rows == [
        {
            "transaction_id": r["transaction_id"],
            "user_id": r["user_id"],
            "label": r["_label"],
            "scenario": r["_scenario"],
            "timestamp": r["timestamp"],
        }
        for r in expected
    ]


def test_file_to_a_stream() -> None:
    buf = io.BytesIO()
    summary = produce_to_file(buf, 50, users=5, seed=1)
    assert buf.getvalue() == b"".join(
        orjson.dumps(r) + b"\n" for r in generate(50, users=5, seed=1)
    )
    assert summary.destination == "file <stream>"


def test_cli_produce_then_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, truth = tmp_path / "t.jsonl", tmp_path / "truth.jsonl"
    code = run_cli(
        "produce", "--out", str(out), "--truth", str(truth), "--count", "3000", "--users", "50",
        "--anomaly-rate", "0.02", "--malformed", "26", "--seed", "9", "--json",
    )  # fmt: skip
    assert code == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["transactions"] == 3000
    assert summary["malformed"] == 26
    assert summary["delivery_errors"] == 0
    # alert on every labelled transaction: recall 1, precision 1, same result from either truth
    alerts = tmp_path / "alerts.jsonl"
    rows = [orjson.loads(x) for x in truth.read_bytes().splitlines()]
    alerts.write_bytes(
        b"".join(
            orjson.dumps(
                {
                    "alert_id": r["transaction_id"],
                    "transaction_id": r["transaction_id"],
                    "tier": "block",
                }
            )
            + b"\n"
            for r in rows
            if r["label"]
        )
    )
    for flag, path in (("--truth", truth), ("--input", out)):
        assert (
            run_cli(
                "evaluate", "--alerts", str(alerts), flag, str(path), "--json", "--min-recall", "1"
            )
            == 0
        )
        result = orjson.loads(capsys.readouterr().out)
        assert result["transactions"] == 3000
        assert result["anomalies"] == summary["anomalies"]
        assert result["recall"] == 1.0
        assert result["precision"] == 1.0


def test_cli_text_summary_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.jsonl"
    assert run_cli("produce", "--out", str(out), "--count", "100", "--users", "10", "--quiet") == 0
    text = capsys.readouterr().out
    assert "fraudflow produce summary" in text
    assert "transactions           100" in text


def test_cli_stdout_keeps_the_summary_off_the_data(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    assert run_cli("produce", "--out", "-", "--count", "20", "--users", "3", "--quiet") == 0
    captured = capsysbinary.readouterr()
    assert captured.out.splitlines() == [orjson.dumps(r) for r in generate(20, users=3)]
    assert b"fraudflow produce summary" in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["--count", "10"],  # no destination
        ["--count", "10", "--out", "x.jsonl", "--brokers", "h:1"],  # two destinations
        ["--count", "10", "--out", "x.jsonl", "--anomaly-rate", "0.7"],
        ["--count", "0", "--out", "x.jsonl", "--malformed", "3"],
    ],
)
def test_cli_usage_errors(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FRAUDFLOW_BROKERS", raising=False)
    assert run_cli("produce", *argv) == 2


def test_cli_rejects_bad_numbers() -> None:
    with pytest.raises(SystemExit):
        run_cli("produce", "--out", "x", "--count", "-1")
    with pytest.raises(SystemExit):
        run_cli("produce", "--out", "x", "--count", "1", "--rate", "0")
    with pytest.raises(SystemExit):
        run_cli("produce", "--out", "x", "--count", "1", "--start", "2025-01-01T00:00:00")

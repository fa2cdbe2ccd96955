"""Issue 18 item 5 (part): the backtest refuses input it would misread."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from fraudflow.backtest.replay import read_label_file
from fraudflow.cli import main as cli_main


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bt") / "history.jsonl"
    assert cli_main(["produce", "--out", str(out), "--count", "400", "--users", "40"]) == 0
    return out


def ids(history: Path) -> list[str]:
    return [orjson.loads(x)["transaction_id"] for x in history.read_bytes().splitlines()[:30]]


def test_the_live_label_format_is_read(history: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    rows = [
        {"transaction_id": t, "label": "fraud" if i % 3 == 0 else "legit",
         "reported_at": "2025-01-05T00:00:00Z"}
        for i, t in enumerate(ids(history))
    ]  # fmt: skip
    labels.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    read = read_label_file(labels)
    assert len(read) == len(rows)
    assert sum(i.label for i in read.values()) == len(rows[::3])
    assert all(i.label_time is not None for i in read.values())


@pytest.mark.parametrize(
    ("content", "line", "why"),
    [
        (b'{"transaction_id": "a", "label": 1}\nnot json\n', 2, "not JSON"),
        (b'{"transaction_id": "a", "label": "maybe"}\n', 1, "'maybe'"),
        (b'{"label": 1}\n', 1, "no transaction_id"),
        (b"[1, 2]\n", 1, "not a JSON object"),
    ],
)
def test_a_garbage_labels_file_is_refused_with_its_line(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    content: bytes, line: int, why: str,
) -> None:  # fmt: skip
    labels = tmp_path / "labels.jsonl"
    labels.write_bytes(content)
    code = cli_main(["backtest", "--input", str(history), "--labels", str(labels), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"line {line}" in err
    assert why in err


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        ("2025-01-02T00:00:00", None, "no time zone"),
        ("2025-01-03T00:00:00Z", "2025-01-02T00:00:00Z", "not before"),
    ],
)
@pytest.mark.parametrize("source", ["topic", "file"])
def test_from_and_to_are_validated(
    history: Path, capsys: pytest.CaptureFixture[str],
    start: str, end: str | None, why: str, source: str,
) -> None:  # fmt: skip
    given = ["--brokers", "127.0.0.1:1", "--topic", "t"] if source == "topic" else []
    given = given or ["--input", str(history), "--quiet"]
    argv = ["backtest", *given, "--from", start]
    if end is not None:
        argv += ["--to", end]
    assert cli_main(argv) == 2
    assert why in capsys.readouterr().err


def test_alert_volume_is_reported_without_labels(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare.jsonl"
    rows = [orjson.loads(x) for x in history.read_bytes().splitlines()]
    for r in rows:
        r.pop("_label", None)
        r.pop("_scenario", None)
    bare.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    scores = tmp_path / "scores.jsonl"
    capsys.readouterr()
    code = cli_main(["backtest", "--input", str(bare), "--scores-out", str(scores), "--quiet"])
    assert code == 0
    tiers = [orjson.loads(x)["tier"] for x in scores.read_bytes().splitlines()]
    review, block = tiers.count("review"), tiers.count("block")
    assert review + block > 0, "no alerts in the sample: the check would be empty"
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("alerts "))
    assert f"{review + block:,} ({review:,} review, {block:,} block;" in line


def test_a_csv_without_a_required_column_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "in.csv"
    f.write_text("transaction_id,user_ident,amount,timestamp\nt1,u1,12.5,2025-01-01T00:00:00Z\n")
    assert cli_main(["backtest", "--input", str(f), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "user_id" in err
    assert "amount" not in err.split("column", 1)[1]

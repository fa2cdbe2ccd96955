"""``fraudflow backtest`` end to end on a small generated file (the real flow, in process)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import orjson
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudflow.backtest.evaluation import read_jsonl
from fraudflow.cli import main
from fraudflow.config.settings import DEFAULT_RULES_DIR
from fraudflow.generator.stream import produce_to_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bt")
    produce_to_file(d / "in.jsonl", 3000, users=200, seed=3, truth=d / "truth.jsonl")
    return d


def _run(*argv: str | Path) -> None:
    assert main(["backtest", "--quiet", *map(str, argv)]) == 0


def test_scores_are_byte_identical_and_graded_like_sklearn(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = data / "a.jsonl", data / "b.jsonl"
    _run("--input", data / "in.jsonl", "--scores-out", a, "--report", data / "rep")
    _run("--input", data / "in.jsonl", "--scores-out", b, "--labels", data / "truth.jsonl")
    assert a.read_bytes() == b.read_bytes()
    rows = [orjson.loads(line) for line in a.read_bytes().splitlines()]
    assert len(rows) == 3000
    assert [r["source"]["offset"] for r in rows] == list(range(3000))
    assert {"transaction_id", "user_id", "timestamp", "score", "tier", "rules"} <= rows[0].keys()
    assert "processed_at" not in rows[0]

    truth = {r["transaction_id"]: r["label"] for r in read_jsonl(data / "truth.jsonl")}
    y = [truth[r["transaction_id"]] for r in rows]
    s = [r["score"] for r in rows]
    m = orjson.loads((data / "rep" / "metrics.json").read_bytes())
    assert m["transactions"] == 3000
    assert m["frauds"] == sum(y) > 0
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-5)
    assert m["average_precision"] == pytest.approx(average_precision_score(y, s), abs=1e-5)
    alerts = sum(r["tier"] != "approve" for r in rows)
    assert m["review"]["flagged"] == alerts
    for name in ("report.md", "report.html", "pr_curve.png", "roc_curve.png"):
        assert (data / "rep" / name).stat().st_size > 0
    html = (data / "rep" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "](pr_curve.png)" in (data / "rep" / "report.md").read_text()
    assert "ROC AUC" in capsys.readouterr().out


def test_csv_input_scores_like_jsonl(data: Path) -> None:
    recs = list(read_jsonl(data / "in.jsonl"))[:500]
    cols = sorted({k for r in recs for k in r})
    src = data / "in.csv"
    with src.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(recs)
    jl = data / "head.jsonl"
    jl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    _run("--input", src, "--scores-out", data / "csv-scores.jsonl")
    _run("--input", jl, "--scores-out", data / "jl-scores.jsonl")

    def key(p: Path) -> list[tuple[str, float, str]]:
        rows = [orjson.loads(line) for line in p.read_bytes().splitlines()]
        return [(r["transaction_id"], r["score"], r["tier"]) for r in rows]

    assert key(data / "csv-scores.jsonl") == key(data / "jl-scores.jsonl")


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    assert main(["backtest", "--input", str(tmp_path / "nope.jsonl")]) == 2


def test_compare_reports_dropped_alerts_of_a_removed_rule_file(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # without the alert budget: with it the queue keeps its size, so fewer rules also add alerts
    monkeypatch.setenv("FRAUDFLOW_ALERT_BUDGET", "0")
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    (rules / "amounts.yaml").unlink()
    capsys.readouterr()
    _run("--input", data / "in.jsonl", "--compare", rules)
    out = capsys.readouterr().out
    assert "the candidate would add 0 alerts, 0 of them fraud, and drop " in out
    assert f"baseline this run (rules {DEFAULT_RULES_DIR})" in out
    assert f"candidate --compare {rules}" in out
    assert "large_amount_vs_history" in out.split("compare:")[1]


def test_retrain_prints_off_vs_on_and_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--retrain 1d`` (the successor of the retired ``--feedback compare``): scheduled
    training is simulated on the labels known by each cutoff, off vs on is printed, and the
    report carries the same table."""
    src = tmp_path / "cm.jsonl"
    produce_to_file(src, 20_000, users=150, seed=6, compromised_merchants=2, compromise_days=4)
    rep = tmp_path / "rep"
    _run("--input", src, "--label-delay", "1d", "--retrain", "1d", "--report", rep)
    out = capsys.readouterr().out
    head = out.split("fraudflow backtest")[0]
    assert "scheduled training: retrain every 24 h of event time" in head
    printed = {
        line.split("  ")[1].strip(): line.split()[-3:]
        for line in head.splitlines()
        if line.startswith("  all labelled:") or line.startswith("  last 7 d:")
    }
    assert set(printed) == {
        "all labelled: off (this replay)", "all labelled: on (retrained)", "last 7 d: off",
        "last 7 d: on", "last 7 d: offline reference",
    }  # fmt: skip
    md = (rep / "report.md").read_text()
    assert "## Scheduled training: off vs on" in md
    assert "| scheduled training | every 1d |" in md
    for name, (ap, auc, card) in printed.items():
        assert f"| {name} | {ap} | {auc} | {card} |" in md  # the printed figures, as printed


def test_feedback_is_retired_for_retrain(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    for mode in ("on", "compare", "off"):
        assert (
            main(["backtest", "--quiet", "--input", str(data / "in.jsonl"), "--feedback", mode])
            == 2
        )
        err = capsys.readouterr().err
        assert f"--feedback {mode}: retired with the in-flow feedback step: use --retrain 1d" in err
        assert "docs/training.md" in err

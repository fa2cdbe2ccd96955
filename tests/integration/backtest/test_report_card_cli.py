"""The detector report card of ``fraudflow backtest`` on the sparse world (the real flow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudflow.backtest.metrics import recall_at_share
from fraudflow.cli import main
from fraudflow.tools.produce import produce_to_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("card")
    produce_to_file(d / "in.jsonl", 8000, users=150, seed=2, anomaly_rate=0.03, world="sparse")
    return d


def test_report_card_in_stdout_markdown_html_and_json(
    sparse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rep, scores = sparse / "rep", sparse / "scores.jsonl"
    argv = ["backtest", "--quiet", "--input", str(sparse / "in.jsonl")]
    assert main([*argv, "--report", str(rep), "--scores-out", str(scores)]) == 0
    out = capsys.readouterr().out
    rows = [orjson.loads(line) for line in scores.read_bytes().splitlines()]
    truth = {
        r["transaction_id"]: r["_label"]
        for r in map(orjson.loads, (sparse / "in.jsonl").read_bytes().splitlines())
    }
    y = np.array([truth[r["transaction_id"]] for r in rows])
    assert 0 < y.sum() < y.size
    alerted = np.array([r["tier"] != "approve" for r in rows])
    detectors = sorted({k for r in rows for k in r["detector_scores"]})
    assert detectors  # the flow reports its detectors

    card = orjson.loads((rep / "metrics.json").read_bytes())["report_card"]
    assert card["labelled"] is True
    by_name = {r["name"]: r for r in card["rows"]}
    rules = sorted({rid for r in rows for rid in r["rules"]})
    assert list(by_name) == ["ensemble", *detectors, *(f"rule:{rid}" for rid in rules)]
    columns = {"ensemble": np.array([r["score"] for r in rows])}
    for name in detectors:
        columns[name] = np.array([r["detector_scores"].get(name, 0.0) for r in rows])
    for rid in rules:
        columns[f"rule:{rid}"] = np.array([float(rid in r["rules"]) for r in rows])
    for name, col in columns.items():
        row = by_name[name]
        # scores-out rounds to 6 places: the card's figures are of the unrounded scores
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y, col), abs=2e-3), name
        assert row["average_precision"] == pytest.approx(
            average_precision_score(y, col), abs=2e-3
        ), name
        assert row["recall_at_review"] == pytest.approx(
            recall_at_share(y, col, float(alerted.mean())), abs=2e-3
        ), name
    assert by_name["ensemble"]["flagged"] == int(alerted.sum())

    md, page = (rep / "report.md").read_text(), (rep / "report.html").read_text()
    assert "## Report card" in md
    assert "<h2>Report card</h2>" in page
    for name in by_name:
        assert f"| {name} |" in md
        assert f"<td>{name}</td>" in page
    assert "report card" in out
    assert all(name in out for name in by_name)


def test_without_labels_the_card_shows_alert_volume_only(
    sparse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare.jsonl"
    with bare.open("wb") as f:
        for line in (sparse / "in.jsonl").read_bytes().splitlines():
            rec = orjson.loads(line)
            del rec["_label"], rec["_scenario"]
            f.write(orjson.dumps(rec) + b"\n")
    rep = tmp_path / "rep"
    capsys.readouterr()
    assert main(["backtest", "--quiet", "--input", str(bare), "--report", str(rep)]) == 0
    out = capsys.readouterr().out
    assert "no labels: alert volume only" in out
    card = orjson.loads((rep / "metrics.json").read_bytes())["report_card"]
    assert card["labelled"] is False
    assert card["rows"][0]["name"] == "ensemble"
    assert card["rows"][0]["flagged"] > 0
    assert all(r["average_precision"] is None for r in card["rows"])
    assert "no labels: alert volume only" in (rep / "report.md").read_text()

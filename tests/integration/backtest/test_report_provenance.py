"""``backtest --report``: the report says what ran, with what, and what ``--compare`` found."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from fraudflow.backtest.evaluation import read_jsonl
from fraudflow.cli import main
from fraudflow.config.settings import DEFAULT_RULES_DIR
from fraudflow.generator.stream import produce_to_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("prov")
    produce_to_file(d / "in.jsonl", 2500, users=150, seed=5)
    return d


def test_report_has_compare_provenance_settings_and_top_table(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    (rules / "amounts.yaml").unlink()
    monkeypatch.setenv("FRAUDFLOW_TOP_REASONS", "2")  # not a default: listed with its source
    monkeypatch.setenv("FRAUDFLOW_POSTGRES_DSN", "postgresql://ff:hunter2@db.example/ff")
    rep, scores = tmp_path / "rep", tmp_path / "scores.jsonl"
    argv = ["backtest", "--quiet", "--input", str(data / "in.jsonl"), "--compare", str(rules)]
    assert main([*argv, "--report", str(rep), "--scores-out", str(scores)]) == 0
    out = capsys.readouterr().out
    md, page = (rep / "report.md").read_text(), (rep / "report.html").read_text()
    assert "hunter2" not in md + page + out

    # (a) the --compare result, named plainly, as on stdout
    compare_line = next(line for line in out.splitlines() if line.startswith("compare: "))
    baseline = compare_line.removeprefix("compare: baseline ").split(" -> candidate ")[0]
    sentence = next(line for line in out.splitlines() if "going from the baseline" in line)
    assert "## Compare: baseline vs candidate" in md
    assert f"Baseline: {baseline}." in md
    assert f"Candidate: --compare {rules} (rules" in md
    assert sentence.strip().capitalize().rstrip() in md.replace("\n", " ")
    rules_part = md.split("## Compare: rules whose hits change")[1].split("\n## ")[0]
    assert "| large_amount_vs_history |" in rules_part
    assert "| average precision |" in md.split("## Compare: baseline vs candidate")[1]

    # (b) provenance: input, the event time covered, versions, settings with sources
    rows = [orjson.loads(line) for line in scores.read_bytes().splitlines()]
    times = sorted(r["timestamp"] for r in read_jsonl(data / "in.jsonl"))
    prov = md.split("## Provenance")[1].split("\n## ")[0]
    assert f"| input | file {(data / 'in.jsonl').resolve()} |" in prov
    first = min(r["timestamp"] for r in rows)
    last = max(r["timestamp"] for r in rows)
    assert f"| event time covered | {first} to {last} |" in prov
    assert first[:19] == times[0][:19]
    assert last[:19] == times[-1][:19]
    versions = next(line for line in out.splitlines() if line.strip().startswith("versions"))
    rules_version = versions.split("rules ")[1].split(" |")[0]
    assert f"| rules version(s) | {rules_version} |" in prov
    assert "| model version(s) | " in prov
    settings = md.split("## Settings")[1].split("\n## ")[0]
    assert "| ensemble.top_reasons | 2 | env FRAUDFLOW_TOP_REASONS |" in settings
    assert "| ensemble.review_threshold | " in settings  # shapes scores, shown at default too
    assert "| sinks.postgres_dsn | *** | env FRAUDFLOW_POSTGRES_DSN |" in settings

    # (d) the top 20 by score, the highest first
    top = md.split("## Top-scored transactions")[1].split("\n## ")[0]
    lines = [line for line in top.splitlines() if line.startswith("| ") and "---" not in line]
    assert lines[0].startswith("| transaction_id | user | time | amount | score | tier |")
    assert len(lines) == 21
    best = max(rows, key=lambda r: r["score"])
    assert lines[1].startswith(f"| {best['transaction_id']} | {best['user_id']} | ")
    shown = [float(line.split(" | ")[4]) for line in lines[1:]]
    assert shown == sorted(shown, reverse=True)
    assert all(line.rstrip(" |").split(" | ")[-1] in ("fraud", "legit") for line in lines[1:])

    for heading in ("Compare: baseline vs candidate", "Provenance", "Top-scored transactions"):
        assert f"<h2>{heading}</h2>" in page

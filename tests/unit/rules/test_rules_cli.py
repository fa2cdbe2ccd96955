"""``fraudflow rules check|test|features`` through the real command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fraudflow.cli import main
from fraudflow.config.settings import DEFAULT_RULES_DIR
from fraudflow.rules import load_rules
from tests.unit.rules.conftest import CATALOGUE, WriteRules


def test_check_default_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(DEFAULT_RULES_DIR)]) == 0
    out = capsys.readouterr().out
    rs = load_rules(DEFAULT_RULES_DIR, CATALOGUE)
    assert f": ok: {len(rs)} rules" in out
    assert f"version {rs.version}" in out


def test_test_default_rules(capsys: pytest.CaptureFixture[str]) -> None:
    """Every default rule has a case that expects it to fire, and every case passes."""
    assert main(["rules", "test", str(DEFAULT_RULES_DIR), "--strict"]) == 0
    captured = capsys.readouterr()
    assert "FAIL" not in captured.out
    assert captured.out.rstrip().endswith(" passed, 0 failed")
    assert "no case expects" not in captured.err


def test_check_reports_every_problem(
    write_rules: WriteRules, capsys: pytest.CaptureFixture[str]
) -> None:
    d = write_rules(
        {
            "a.yaml": "rules:\n  - id: a\n    description: d\n    when: amout > 1\n    score: 2\n",
            "b.yaml": "rules: [\n",
        }
    )
    assert main(["rules", "check", str(d)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{d / 'a.yaml'}:4:11: when: unknown feature or list 'amout' (did you mean 'amount'?)",
        f"{d / 'a.yaml'}:5:12: 'score' must be in [0, 1], got 2",
        f"{d / 'b.yaml'}:2:1: YAML: while parsing a flow node: "
        "expected the node content, but found '<stream end>'",
        f"{d}: 3 problem(s)",
    ]


def test_test_reports_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, d)
    (d / "tests" / "wrong.yaml").write_text(
        "cases:\n"
        "  - name: wrong expectation\n"
        "    features: {count_1m: 5, amount: 1.0}\n"
        "    fires: [impossible_travel]\n"
        "    not_fires: [card_testing]\n"
    )
    assert main(["rules", "test", str(d), "-q"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {d / 'tests' / 'wrong.yaml'}:2: wrong expectation" in out
    assert (
        "expected impossible_travel (travel_kmh=0.0, fast_trips_before=0) to fire; it did not"
        in out
    )
    assert "expected card_testing (count_1m=5, amount=1.0) not to fire; it did" in out
    assert "PASS" not in out  # -q
    assert out.rstrip().endswith(" passed, 1 failed")


def test_test_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, d)
    (d / "tests" / "bad.yaml").write_text(
        "cases:\n"
        "  - name: bad\n"
        "    features: {amout: 1.0, count_1m: 1.5, new_device: 'yes'}\n"
        "    fires: [card_testin]\n"
        "    fire: []\n"
        "  - features: {}\n"
    )
    assert main(["rules", "test", str(d)]) == 1
    f = d / "tests" / "bad.yaml"
    assert capsys.readouterr().err.splitlines() == [
        f"{f}:3:16: unknown feature 'amout' (did you mean 'amount'?)",
        f"{f}:3:38: feature 'count_1m' has type int, got float 1.5",
        f"{f}:3:55: feature 'new_device' has type bool, got str 'yes'",
        f"{f}:4:13: unknown rule id 'card_testin' (did you mean 'card_testing'?)",
        f"{f}:5:5: unknown case field 'fire' (did you mean 'fires'?)",
        f"{f}:6:5: case needs 'fires', 'not_fires' or 'fires_only'",
        f"{f}:6:5: case needs a 'name' (a string)",
    ]


def test_test_needs_cases(write_rules: WriteRules, capsys: pytest.CaptureFixture[str]) -> None:
    d = write_rules(
        {"a.yaml": "rules: [{id: a, description: d, when: 'amount > 1', score: 0.1}]\n"}
    )
    assert main(["rules", "test", str(d)]) == 1
    assert "no test cases" in capsys.readouterr().err


def test_strict_flags_untested_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, d)
    (d / "tests" / "velocity.yaml").unlink()
    assert main(["rules", "test", str(d)]) == 0
    assert (
        "warning: no case expects these enabled rules to fire: card_testing"
        in capsys.readouterr().err
    )
    assert main(["rules", "test", str(d), "--strict"]) == 1
    assert "error: no case expects" in capsys.readouterr().err


def test_features(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "features"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[:2] == ["amount", "float"]
    assert "count_24h" in out
    assert main(["rules", "features", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(CATALOGUE)
    assert main(["rules", "features", "--format", "markdown", "--windows", "5m,7d"]) == 0
    md = capsys.readouterr().out
    assert "| `count_7d` | int |" in md
    assert "count_24h" not in md


def test_docs_list_every_feature() -> None:
    """docs/rules.md documents every catalogue name, as `fraudflow rules features` prints it."""
    docs = (Path(__file__).resolve().parents[3] / "docs" / "rules.md").read_text()
    missing = [name for name in CATALOGUE if f"| `{name}` |" not in docs]
    assert missing == [], "regenerate with: fraudflow rules features --format markdown"


def test_retired_feedback_features_are_rejected_with_a_pointer(
    write_rules: WriteRules, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule on an entity fraud rate of the retired feedback step is rejected, saying the
    feature was retired and where its successor is; ``--feedback`` is refused as retired."""
    rule = (
        "rules:\n  - id: cm\n    description: d\n"
        "    when: merchant_fraud_rate_28d > 0.2 and merchant_frauds_28d >= 3\n    score: 0.6\n"
    )
    d = write_rules({"cm.yaml": rule})
    assert main(["rules", "check", str(d)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{d / 'cm.yaml'}:4:11: when: unknown feature or list 'merchant_fraud_rate_28d' "
        "(retired with the in-flow feedback step: see docs/training.md)"
    ) in err
    assert main(["rules", "check", "--feedback", str(d)]) == 2
    err = capsys.readouterr().err
    assert "flag --feedback: feedback.feedback was retired with the in-flow feedback step" in err

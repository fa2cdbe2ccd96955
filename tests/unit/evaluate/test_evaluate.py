"""Evaluation maths on hand-made tables, the threshold checks and the command."""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudflow.backtest.evaluation import checks, evaluate, read_jsonl
from fraudflow.cli import evaluate as evaluate_cmd


def t(tid: str, label: int, scenario: str | None = None) -> dict[str, Any]:
    return {
        "transaction_id": tid,
        "label": label,
        "scenario": scenario or ("normal" if label == 0 else "x"),
    }


def a(tid: str, tier: str = "review", alert_id: str | None = None) -> dict[str, Any]:
    return {"alert_id": alert_id or f"id-{tid}", "transaction_id": tid, "tier": tier, "score": 0.9}


TRUTH = [
    t("1", 1, "card_testing"),
    t("2", 1, "card_testing"),
    t("3", 1, "account_takeover"),
    t("4", 0),
    t("5", 0),
    t("6", 0),
    t("7", 0),
    t("8", 0),
    t("9", 0),
    t("10", 0),
]


def test_hand_made_table() -> None:
    alerts = [a("1", "block"), a("3", "review"), a("4", "review"), a("5", "block")]
    r = evaluate(alerts, TRUTH)
    assert (r.transactions, r.anomalies) == (10, 3)
    assert (r.alerts, r.alerted_transactions, r.true_positives, r.blocked_anomalies) == (4, 4, 2, 1)
    assert r.recall == pytest.approx(2 / 3)
    assert r.block_recall == pytest.approx(1 / 3)
    assert r.precision == pytest.approx(2 / 4)
    assert r.alert_rate == pytest.approx(4 / 10)
    assert r.f1 == pytest.approx(2 * (0.5 * 2 / 3) / (0.5 + 2 / 3))
    assert r.by_scenario["card_testing"].labelled == 2
    assert r.by_scenario["card_testing"].alerted == 1
    assert r.by_scenario["card_testing"].share == pytest.approx(0.5)
    assert r.by_scenario["account_takeover"].share == 1.0
    assert r.by_scenario["normal"].alerted == 2
    assert r.by_scenario["normal"].blocked == 1
    assert r.by_scenario["normal"].share == pytest.approx(2 / 7)


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        # the same alert delivered twice counts once
        (
            [a("1"), a("1")],
            {"alerts": 1, "alert_records": 2, "duplicate_records": 1, "true_positives": 1},
        ),
        # two alerts (e.g. two model versions) on one transaction: one alerted transaction
        (
            [a("1", "review", "v1"), a("1", "block", "v2")],
            {"alerts": 2, "alerted_transactions": 1, "blocked_anomalies": 1},
        ),
        # approve is not an alert; a record without transaction_id cannot be used
        (
            [a("1", "approve"), {"tier": "block"}],
            {"alerts": 0, "ignored_records": 2, "recall": 0.0},
        ),
        # alerts on ids outside the ground truth are reported, not counted
        (
            [a("zz"), a("4")],
            {
                "unknown_transactions": 1,
                "alerted_transactions": 1,
                "precision": 0.0,
                "alert_rate": 0.1,
            },
        ),
        # no alert_id: keyed by transaction_id
        ([{"transaction_id": "2", "tier": "review"}] * 3, {"alerts": 1, "duplicate_records": 2}),
        # nothing alerted: precision undefined
        ([], {"alerts": 0, "precision": None, "f1": None, "recall": 0.0, "alert_rate": 0.0}),
    ],
)
def test_dedupe_and_edge_cases(alerts: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    r = evaluate(alerts, TRUTH)
    for name, value in expected.items():
        assert getattr(r, name) == value, name


def test_generated_records_serve_as_truth() -> None:
    records = [
        {"transaction_id": "1", "_label": 1, "_scenario": "unusual_hour", "amount": 5.0},
        {"transaction_id": "2", "_label": 0, "_scenario": "normal"},
        {"transaction_id": "2", "_label": 0, "_scenario": "normal"},  # a re-sent duplicate
        {"transaction_id": "x1", "amount": -1, "_malformed": "negative_amount"},  # no label
        {"transaction_id": "3", "label": True},  # a boolean is not a label
    ]
    r = evaluate([a("1")], records)
    assert (r.transactions, r.anomalies, r.true_positives) == (2, 1, 1)
    assert set(r.by_scenario) == {"unusual_hour", "normal"}


def test_first_truth_line_wins() -> None:
    r = evaluate([], [t("1", 1, "card_testing"), t("1", 0)])
    assert (r.transactions, r.anomalies) == (1, 1)


def test_no_anomalies_leaves_recall_undefined() -> None:
    r = evaluate([a("1")], [t("1", 0)])
    assert r.recall is None
    assert r.precision == 0.0
    assert [c.passed for c in checks(r, min_recall=0.0)] == [False]


def test_checks() -> None:
    r = evaluate([a("1"), a("4")], TRUTH)  # recall 1/3, alert rate 0.2, precision 0.5
    got = checks(r, min_recall=0.3, max_alert_rate=0.1, min_precision=0.5)
    assert [(c.name, c.passed) for c in got] == [
        ("min_recall", True),
        ("min_precision", True),
        ("max_alert_rate", False),
    ]
    assert "FAIL max-alert-rate" in got[2].text()
    assert checks(r) == []


def test_to_dict_is_json() -> None:
    d = evaluate([a("1")], TRUTH).to_dict()
    back = orjson.loads(orjson.dumps(d))
    assert back["recall"] == pytest.approx(1 / 3, abs=1e-6)
    assert back["by_scenario"]["card_testing"] == {
        "labelled": 2,
        "alerted": 1,
        "blocked": 0,
        "share": 0.5,
    }


@settings(max_examples=50, deadline=None)
@given(
    labels=st.lists(st.sampled_from([0, 0, 0, 1]), min_size=1, max_size=40),
    picks=st.lists(
        st.tuples(st.integers(0, 60), st.sampled_from(["approve", "review", "block"])), max_size=60
    ),
    seed=st.integers(0, 1000),
)
def test_invariants(labels: list[int], picks: list[tuple[int, str]], seed: int) -> None:
    truth = [t(str(i), lab) for i, lab in enumerate(labels)]
    alerts = [a(str(i), tier, f"{i}-{tier}") for i, tier in picks]
    r = evaluate(alerts, truth)
    assert 0 <= r.true_positives <= min(r.anomalies, r.alerted_transactions)
    assert r.blocked_anomalies <= r.true_positives
    assert r.alerted_transactions <= r.transactions
    for x in (r.recall, r.precision, r.alert_rate, r.block_recall):
        assert x is None or 0.0 <= x <= 1.0
    # redelivery in any order changes nothing but the duplicate count
    again = alerts * 2
    random.Random(seed).shuffle(again)
    r2 = evaluate(again, truth)
    assert r2.duplicate_records == r.duplicate_records + len(alerts) - r.ignored_records
    assert (r2.true_positives, r2.alerts, r2.alerted_transactions, r2.by_scenario) == (
        r.true_positives,
        r.alerts,
        r.alerted_transactions,
        r.by_scenario,
    )


def test_read_jsonl_skips_what_is_not_an_object(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a": 1}\n\nnot json\n[1, 2]\n{"amount": NaN}\n\xff\xfe\n{"b": 2}\n')
    skipped: Counter[str] = Counter()
    assert list(read_jsonl(p, skipped)) == [{"a": 1}, {"b": 2}]
    assert skipped[str(p)] == 4


# --- the command -------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="fraudflow")
    evaluate_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv])
    code: int = args.func(args)
    return code


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    alerts = write_jsonl(
        tmp_path / "alerts.jsonl", [a("1", "block"), a("1", "block"), a("3"), a("4")]
    )
    truth = write_jsonl(tmp_path / "truth.jsonl", TRUTH)
    return alerts, truth


def test_cli_table(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    alerts, truth = files
    assert run_cli("--alerts", str(alerts), "--truth", str(truth)) == 0
    out = capsys.readouterr().out
    assert "recall (review+block)     66.67%   (2/3)" in out
    assert "1 duplicates deduped" in out
    assert "normal (false alerts)" in out


def test_cli_json_and_thresholds(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    alerts, truth = files
    code = run_cli("--alerts", str(alerts), "--truth", str(truth), "--json", "--min-recall", "0.5")
    assert code == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["passed"] is True
    assert out["alerts"] == 3
    assert out["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert run_cli("--alerts", str(alerts), "--truth", str(truth), "--min-recall", "90%") == 1
    assert run_cli("--alerts", str(alerts), "--truth", str(truth), "--max-alert-rate", "0.25") == 1
    assert run_cli("--alerts", str(alerts), "--truth", str(truth), "--max-alert-rate", "0.3") == 0


def test_cli_usage_errors(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts, truth = files
    assert run_cli("--truth", str(truth)) == 2
    assert run_cli("--alerts", str(alerts)) == 2
    assert run_cli("--alerts", str(alerts), "--truth", str(truth), "--input", str(truth)) == 2
    assert run_cli("--alerts-topic", "alerts", "--brokers", "", "--truth", str(truth)) == 2
    assert run_cli("--alerts", str(tmp_path / "missing.jsonl"), "--truth", str(truth)) == 2
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    assert run_cli("--alerts", str(alerts), "--truth", str(empty)) == 2
    assert "no labelled transactions" in capsys.readouterr().err

"""The compromised-merchant scenario: where, when and how ordinary its frauds are."""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import math
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from fraudflow.cli import produce as produce_cmd
from fraudflow.config.settings import ValidationSettings
from fraudflow.generator import (
    COMPROMISED_MERCHANT,
    DEFAULT_START,
    MIN_HISTORY,
    SCENARIOS,
    compromised_windows,
    generate,
)
from fraudflow.generator.stream import produce_to_file
from fraudflow.operators.ingest.parse import validate_object

# sha256 of the first 5,000 records of generate(seed=7) as JSON lines, recorded
# before the scenario existed: recorded figures elsewhere depend on this output
DEFAULT_SEED7_SHA256 = "65fad1a4bd8d1716e316c17756a24a123c2703efff76e3494d6f8ccfde2bd320"

COUNT = 40_000
ANOMALY_RATE = 0.02
# seed 6 compromises one shop and one web merchant, so both channels are tested
KW: dict[str, Any] = {"users": 300, "seed": 6, "compromised_merchants": 2, "compromise_days": 4.0}

Window = tuple[str, datetime, datetime]


def ts(rec: dict[str, Any]) -> float:
    return datetime.fromisoformat(rec["timestamp"]).timestamp()


def sha256_of(recs: Any) -> str:
    h = hashlib.sha256()
    for r in recs:
        h.update(orjson.dumps(r))
        h.update(b"\n")
    return h.hexdigest()


@pytest.fixture(scope="module")
def recs() -> list[dict[str, Any]]:
    return list(generate(COUNT, anomaly_rate=ANOMALY_RATE, **KW))


@pytest.fixture(scope="module")
def windows() -> list[Window]:
    return compromised_windows(COUNT, **KW)


@pytest.fixture(scope="module")
def frauds(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [r for r in recs if r["_scenario"] == COMPROMISED_MERCHANT]
    assert len(out) > 50
    return out


def in_window(r: dict[str, Any], w: Window) -> bool:
    return r["merchant_id"] == w[0] and w[1].timestamp() <= ts(r) < w[2].timestamp()


# --- the default is unchanged --------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"compromised_merchants": 0, "compromise_days": 3.0}])
def test_default_output_is_unchanged(kwargs: dict[str, Any]) -> None:
    assert sha256_of(generate(5000, seed=7, **kwargs)) == DEFAULT_SEED7_SHA256


def test_the_scenario_changes_the_output() -> None:
    with_it = generate(5000, seed=7, compromised_merchants=3, compromise_days=0.5)
    assert sha256_of(with_it) != DEFAULT_SEED7_SHA256


# --- determinism and validity ----------------------------------------------------


def test_same_seed_same_output(recs: list[dict[str, Any]], windows: list[Window]) -> None:
    assert list(generate(COUNT, anomaly_rate=ANOMALY_RATE, **KW)) == recs
    assert compromised_windows(COUNT, **KW) == windows


def test_the_seed_picks_the_merchants(windows: list[Window]) -> None:
    picks = {
        tuple(m for m, _, _ in compromised_windows(COUNT, **{**KW, "seed": s})) for s in range(6)
    }
    assert len(picks) > 3
    assert len({m for m, _, _ in windows}) == KW["compromised_merchants"]


def test_records_are_valid_and_ordered(recs: list[dict[str, Any]], frauds: list[Any]) -> None:
    times = [ts(r) for r in recs]
    assert all(a <= b for a, b in itertools.pairwise(times))
    assert len({r["transaction_id"] for r in recs}) == COUNT
    now = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    for r in frauds:
        assert r["_label"] == 1
        assert validate_object(r, ValidationSettings(), now).transaction_id == r["transaction_id"]


# --- where and when ---------------------------------------------------------------


def test_windows_follow_a_clean_warm_up(recs: list[dict[str, Any]], windows: list[Window]) -> None:
    span = ts(recs[-1]) - ts(recs[0])
    for _m, start, end in windows:
        assert end - start == timedelta(days=KW["compromise_days"])
        assert start.timestamp() - DEFAULT_START.timestamp() > 0.1 * span
        assert start.timestamp() < ts(recs[-1])


def test_frauds_are_at_the_chosen_merchants_inside_their_windows(
    frauds: list[dict[str, Any]], windows: list[Window]
) -> None:
    for r in frauds:
        assert any(in_window(r, w) for w in windows), r
    per_merchant = Counter(r["merchant_id"] for r in frauds)
    assert set(per_merchant) == {m for m, _, _ in windows}
    assert min(per_merchant.values()) > 10
    assert {r["channel"] for r in frauds} == {"pos", "online"}


def test_fraud_share_at_a_compromised_merchant_in_its_window(
    recs: list[dict[str, Any]], windows: list[Window]
) -> None:
    for w in windows:
        at = [r for r in recs if in_window(r, w)]
        share = sum(r["_scenario"] == COMPROMISED_MERCHANT for r in at) / len(at)
        assert 0.25 < share < 0.6, (w, share, len(at))


def test_before_its_window_a_merchant_is_clean(
    recs: list[dict[str, Any]], windows: list[Window]
) -> None:
    for m, start, _end in windows:
        before = [r for r in recs if r["merchant_id"] == m and ts(r) < start.timestamp()]
        assert before  # real normal traffic
        assert not any(r["_scenario"] == COMPROMISED_MERCHANT for r in before)


# --- ordinary for the victim -------------------------------------------------------


def test_frauds_look_ordinary_for_the_victim(recs: list[dict[str, Any]]) -> None:
    """Amount near the victim's median, their country, device, IP, card, usual hours."""
    history: dict[str, int] = Counter()
    amounts: dict[str, list[float]] = defaultdict(list)
    seen: dict[str, dict[str, set[Any]]] = defaultdict(lambda: defaultdict(set))
    rows = []  # (fraud, records before it, median normal amount, what the victim did before)
    for r in recs:
        u = r["user_id"]
        if r["_scenario"] == COMPROMISED_MERCHANT:
            before = {k: set(v) for k, v in seen[u].items()}
            rows.append((r, history[u], statistics.median(amounts[u]), before))
        history[u] += 1
        if r["_label"] == 0:
            amounts[u].append(r["amount"])
            for name in ("country", "device_id", "ip", "payment_method"):
                if name in r:
                    seen[u][name].add(r[name])
            seen[u]["hour"].add(int(r["timestamp"][11:13]))
    assert rows
    logs = [abs(math.log(r["amount"] / med)) for r, _, med, _ in rows]
    assert statistics.median(logs) < 0.3
    assert sum(x < 0.6 for x in logs) / len(logs) > 0.9
    assert max(logs) < 1.5
    for r, n, _med, s in rows:
        assert n >= MIN_HISTORY
        assert r["country"] in s["country"]
        if r["channel"] == "online":
            assert r["device_id"] in s["device_id"]
            assert r["ip"] in s["ip"]
        else:
            assert r["channel"] == "pos"
            assert "device_id" not in r
    assert sum(r["payment_method"] in s["payment_method"] for r, *_, s in rows) / len(rows) > 0.9
    # an hour the victim was active in before, or next to one (short histories have gaps)
    awake = [{(h + d) % 24 for h in s["hour"] for d in (-1, 0, 1)} for *_, s in rows]
    hours = [int(r["timestamp"][11:13]) for r, *_ in rows]
    assert sum(h in a for h, a in zip(hours, awake, strict=True)) / len(rows) > 0.9


def test_victims_are_many_and_the_category_is_the_merchants(frauds: list[dict[str, Any]]) -> None:
    assert len({r["user_id"] for r in frauds}) > 0.5 * len(frauds)
    cats: dict[str, set[str]] = defaultdict(set)
    for r in frauds:
        cats[r["merchant_id"]].add(r["merchant_category"])
    assert all(len(c) == 1 for c in cats.values())


# --- the budget -----------------------------------------------------------------------


def test_frauds_count_against_the_anomaly_rate(recs: list[dict[str, Any]]) -> None:
    counts = Counter(r["_scenario"] for r in recs if r["_label"])
    assert ANOMALY_RATE * 0.8 < sum(counts.values()) / len(recs) < ANOMALY_RATE * 1.2
    assert set(counts) == {*SCENARIOS, COMPROMISED_MERCHANT}


def test_explicit_merchants_fraud_even_with_no_anomaly_rate() -> None:
    kw = {**KW, "compromise_days": 6.0}
    out = list(generate(COUNT, anomaly_rate=0.0, **kw))
    assert {r["_scenario"] for r in out if r["_label"]} == {COMPROMISED_MERCHANT}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compromised_merchants": -1}, "compromised_merchants"),
        ({"compromised_merchants": 1, "compromise_days": 0.0}, "compromise_days"),
        ({"compromised_merchants": 1, "compromise_days": math.inf}, "compromise_days"),
        ({"compromised_merchants": 500, "users": 3}, "more users"),
    ],
)
def test_bad_arguments_fail_at_call_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(10, **kwargs)


# --- fraudflow produce ------------------------------------------------------------------


def test_produce_to_file_passes_the_scenario_on() -> None:
    buf = io.BytesIO()
    kw = {**KW, "compromise_days": 2.0}
    summary = produce_to_file(buf, 15_000, **kw)
    expected = list(generate(15_000, **kw))
    assert buf.getvalue() == b"".join(orjson.dumps(r) + b"\n" for r in expected)
    assert summary.anomalies[COMPROMISED_MERCHANT] == sum(
        r["_scenario"] == COMPROMISED_MERCHANT for r in expected
    )


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="fraudflow")
    produce_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def test_cli_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.jsonl"
    code = run_cli(
        "produce", "--out", str(out), "--count", "15000", "--users", "300", "--seed", "6",
        "--compromised-merchants", "2", "--compromise-days", "2", "--json", "--quiet",
    )  # fmt: skip
    assert code == 0
    summary = orjson.loads(capsys.readouterr().out)
    kw = {**KW, "compromise_days": 2.0}
    assert out.read_bytes() == b"".join(orjson.dumps(r) + b"\n" for r in generate(15_000, **kw))
    assert summary["anomalies_by_scenario"][COMPROMISED_MERCHANT] > 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--compromised-merchants", "-1"],
        ["--compromised-merchants", "1", "--compromise-days", "0"],
        ["--compromised-merchants", "1", "--compromise-days", "nan"],
    ],
)
def test_cli_rejects_bad_scenario_numbers(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli("produce", "--out", "x", "--count", "1", *argv)


def test_cli_reports_too_many_merchants(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    argv = ["--out", str(out), "--count", "10", "--users", "2", "--compromised-merchants", "500"]
    assert run_cli("produce", *argv, "--quiet") == 2

"""The ``sparse`` world: five fields, three fraud mechanics that show as intended, streaming."""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
from collections import Counter, defaultdict
from datetime import datetime
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest

from fraudflow import sparse_world
from fraudflow.generator import generate as retail_generate
from fraudflow.sparse_world import FIELDS, SCENARIOS, generate
from fraudflow.tools import produce
from fraudflow.tools.produce import produce_to_file

N, USERS, SEED = 60_000, 500, 3


@pytest.fixture(scope="module")
def recs() -> list[dict[str, Any]]:
    return list(generate(N, users=USERS, seed=SEED))


def _history(
    recs: list[dict[str, Any]],
) -> list[tuple[dict[str, Any], list[float], set[str]]]:
    """Each fraud with the card's genuine amounts and merchants before it."""
    amounts: dict[str, list[float]] = defaultdict(list)
    merchants: dict[str, set[str]] = defaultdict(set)
    out = []
    for r in recs:
        u = r["user_id"]
        if r["_label"]:
            out.append((r, sorted(amounts[u]), set(merchants[u])))
        else:
            amounts[u].append(r["amount"])
            merchants[u].add(r["merchant_id"])
    return out


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="fraudflow")
    produce.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["produce", *argv])
    code: int = args.func(args)
    return code


def test_same_seed_same_records_other_seed_other_records() -> None:
    a = list(generate(3000, users=80, seed=9))
    assert a == list(generate(3000, users=80, seed=9))
    assert a != list(generate(3000, users=80, seed=10))


def test_only_the_five_fields_and_the_ground_truth(recs: list[dict[str, Any]]) -> None:
    assert FIELDS == ("transaction_id", "user_id", "amount", "timestamp", "merchant_id")
    assert {frozenset(r) for r in recs} == {frozenset((*FIELDS, "_label", "_scenario"))}
    assert len({r["transaction_id"] for r in recs}) == N
    assert all(isinstance(r["amount"], float) and r["amount"] > 0 for r in recs)
    assert {r["_scenario"] for r in recs if r["_label"] == 0} == {"normal"}
    assert {r["_label"] for r in recs} == {0, 1}


def test_timestamps_never_decrease(recs: list[dict[str, Any]]) -> None:
    times = [datetime.fromisoformat(r["timestamp"]) for r in recs]
    assert all(a <= b for a, b in pairwise(times))
    assert times[0] >= sparse_world.DEFAULT_START


def test_fraud_share_in_range_and_every_mechanic_present(recs: list[dict[str, Any]]) -> None:
    kinds = Counter(r["_scenario"] for r in recs if r["_label"])
    assert set(kinds) == set(SCENARIOS)
    assert 0.005 <= sum(kinds.values()) / N <= 0.015


def test_anomaly_rate_scales_the_fraud() -> None:
    none = list(generate(20_000, users=300, seed=4, anomaly_rate=0.0))
    assert not any(r["_label"] for r in none)
    low = sum(r["_label"] for r in generate(20_000, users=300, seed=4, anomaly_rate=0.005))
    high = sum(r["_label"] for r in generate(20_000, users=300, seed=4, anomaly_rate=0.02))
    assert high > 2 * low > 0


def test_compromised_merchant_fraud_is_ordinary_for_the_card(recs: list[dict[str, Any]]) -> None:
    """Amounts within the card's own range, mostly at a merchant it uses, concentrated."""
    cm = [(r, a, m) for r, a, m in _history(recs) if r["_scenario"] == "compromised_merchant"]
    graded = [(r, a, m) for r, a, m in cm if len(a) >= 10]
    assert len(graded) > 100
    within = sum(a[0] <= r["amount"] <= a[-1] for r, a, _m in graded)
    assert within >= 0.9 * len(graded)
    ratio = statistics.median(r["amount"] / statistics.median(a) for r, a, _m in graded)
    assert 0.3 < ratio < 3
    assert sum(r["merchant_id"] in m for r, _a, m in graded) >= 0.6 * len(graded)
    by_merchant = Counter(r["merchant_id"] for r, _a, _m in cm)
    top = sum(n for _m, n in by_merchant.most_common(10))
    assert top >= 0.8 * len(cm)  # a few merchants carry it


def test_card_shift_fraud_is_far_above_the_cards_usual(recs: list[dict[str, Any]]) -> None:
    shift = [(r, a, m) for r, a, m in _history(recs) if r["_scenario"] == "card_shift"]
    assert len(shift) > 50
    ratios = [r["amount"] / statistics.median(a) for r, a, _m in shift]
    assert statistics.median(ratios) >= 4
    assert sum(x >= 2 for x in ratios) >= 0.9 * len(ratios)
    assert sum(r["merchant_id"] not in m for r, _a, m in shift) >= 0.9 * len(shift)
    # a higher rate: more fraud on a card during its episode than its own purchases
    days = defaultdict(set)
    for r, _a, _m in shift:
        days[r["user_id"]].add(r["timestamp"][:10])
    own = Counter(r["user_id"] for r in recs if r["_label"] == 0)
    span = (
        datetime.fromisoformat(recs[-1]["timestamp"]) - datetime.fromisoformat(recs[0]["timestamp"])
    ).total_seconds() / 86400
    per_day = Counter(r["user_id"] for r, _a, _m in shift)
    faster = sum(per_day[u] / len(d) > own[u] / span for u, d in days.items())
    assert faster >= 0.8 * len(days)


def test_large_amount_fraud_is_large(recs: list[dict[str, Any]]) -> None:
    large = [(r, a) for r, a, _m in _history(recs) if r["_scenario"] == "large_amount"]
    assert large
    assert all(r["amount"] >= sparse_world.LARGE_MIN for r, _a in large)
    assert all(r["amount"] >= 10 * statistics.median(a) for r, a in large)


def test_fraud_only_on_cards_with_history(recs: list[dict[str, Any]]) -> None:
    for r, a, _m in _history(recs):
        assert len(a) >= sparse_world.MIN_HISTORY, r


def test_streams_without_building_the_run() -> None:
    """A trillion records: the first ones come at once (nothing is built per record ahead)."""
    first = list(islice(generate(10**12, users=50, seed=1), 100))
    assert first == list(generate(100, users=50, seed=1))


# --- fraudflow produce --world ----------------------------------------------------------


def test_produce_world_sparse_writes_the_sparse_records(tmp_path: Path) -> None:
    out, truth = tmp_path / "s.jsonl", tmp_path / "t.jsonl"
    assert run_cli("--world", "sparse", "--out", str(out), "--truth", str(truth),
                   "--count", "500", "--users", "40", "--seed", "2", "--quiet") == 0  # fmt: skip
    lines = out.read_bytes().splitlines()
    assert lines == [orjson.dumps(r) for r in generate(500, users=40, seed=2)]
    assert len(truth.read_bytes().splitlines()) == 500


def test_produce_world_sparse_refuses_retail_only_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.jsonl"
    assert run_cli("--world", "sparse", "--out", str(out), "--count", "5",
                   "--compromised-merchants", "2") == 2  # fmt: skip
    assert "--compromised-merchants" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--event-rate"):
        list(produce.messages(5, world="sparse", event_rate=3.0))
    with pytest.raises(ValueError, match="--world"):
        list(produce.messages(5, world="nowhere"))


def _sha(**kw: Any) -> str:
    buf = io.BytesIO()
    produce_to_file(buf, 3000, users=100, seed=11, **kw)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def test_retail_stays_the_default_and_byte_identical() -> None:
    """Digests taken from main (5848308) before --world existed: the default world is unchanged."""
    assert _sha() == _sha(world="retail")
    assert _sha() == "ba2d4be20f04a1720292514623383812d1c80448e708131b6f53abba561e811b"
    mixed = {"malformed": 20, "compromised_merchants": 1, "anomaly_rate": 0.03}
    assert _sha(**mixed) == "8bc28f4d16f23c814422b6cca463c8b0fa992631d846f5b90c8b3337986968fe"
    recs = [v for _k, v, kind, _r in produce.messages(200, users=10, seed=1) if kind == "valid"]
    assert recs == [orjson.dumps(r) for r in retail_generate(200, users=10, seed=1)]

"""Bad inputs the flow must dead-letter: every kind is produced, evenly, and really is bad."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from fraudflow.config.settings import ValidationSettings
from fraudflow.generator import MALFORMED_KINDS, MAX_MESSAGE_BYTES, generate, malformed
from fraudflow.operators.ingest.parse import parse_message
from fraudflow.records import DeadLetter, Transaction

NOW = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
K = len(MALFORMED_KINDS)


@pytest.fixture(scope="module")
def pool() -> list[dict[str, Any]]:
    return list(generate(500, users=30, seed=5))


@pytest.fixture(scope="module")
def bad(pool: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes, str]]:
    return list(malformed(4 * K + 3, seed=9, valid_pool=pool))


@dataclass
class Msg:
    key: bytes | None
    value: bytes | None
    topic: str = "transactions"
    partition: int = 0
    offset: int = 0


def test_kinds_are_spread_evenly(bad: list[tuple[bytes | None, bytes, str]]) -> None:
    counts = Counter(kind for _, _, kind in bad)
    assert set(counts) == set(MALFORMED_KINDS)
    assert set(counts.values()) <= {4, 5}
    assert sum(counts.values()) == 4 * K + 3


def test_deterministic_for_a_seed(pool: list[dict[str, Any]]) -> None:
    first = list(malformed(50, seed=1, valid_pool=pool))
    assert first == list(malformed(50, seed=1, valid_pool=pool))
    assert first != list(malformed(50, seed=2, valid_pool=pool))


def _loads(value: bytes) -> Any:
    return orjson.loads(value)


def test_each_kind_is_bad_in_its_own_way(
    bad: list[tuple[bytes | None, bytes, str]], pool: list[dict[str, Any]]
) -> None:
    pool_bytes = {orjson.dumps(r) for r in pool}
    for key, value, kind in bad:
        assert b"\n" not in value  # every kind fits on one line of a JSONL file
        if kind in ("bad_json", "nan_amount", "inf_amount"):
            with pytest.raises(orjson.JSONDecodeError):
                _loads(value)
            if kind == "nan_amount":
                assert any(t in value for t in (b"NaN", b"Infinity"))
            if kind == "inf_amount":
                assert b"1e999" in value
            continue
        if kind == "not_utf8":
            with pytest.raises(UnicodeDecodeError):
                value.decode("utf-8")
            continue
        obj = _loads(value)
        if kind == "not_object":
            assert not isinstance(obj, dict)
            continue
        assert isinstance(obj, dict)
        if kind == "wrong_type":
            assert isinstance(obj["amount"], str | bool) or isinstance(obj["user_id"], int)
        elif kind == "missing_field":
            assert {"transaction_id", "user_id", "amount", "timestamp"} - set(obj)
        elif kind == "negative_amount":
            assert obj["amount"] < 0
        elif kind == "naive_timestamp":
            assert datetime.fromisoformat(obj["timestamp"]).tzinfo is None
        elif kind in ("timestamp_past", "timestamp_future"):
            year = datetime.fromisoformat(obj["timestamp"]).year
            assert year == (1990 if kind == "timestamp_past" else 2090)
        elif kind == "oversize":
            assert len(value) > MAX_MESSAGE_BYTES
        elif kind == "empty_key":
            assert key == b""
        elif kind == "duplicate":
            assert value in pool_bytes  # an exact copy of a valid record
            assert key == obj["user_id"].encode()
        else:
            pytest.fail(f"untested kind {kind}")
        if kind not in ("empty_key", "duplicate"):
            assert key is not None
            assert key != b""
        if kind != "duplicate":
            assert obj["_malformed"] == kind
            assert obj.get("transaction_id", "x").startswith("x")


# what the flow's parser says about each kind (duplicates need the flow's state)
EXPECTED_CODES = {
    "bad_json": {"bad_json"},
    "not_utf8": {"not_utf8"},
    "not_object": {"not_object"},
    "wrong_type": {"bad_type"},
    "missing_field": {"missing_field"},
    "nan_amount": {"bad_json"},
    "inf_amount": {"bad_json", "bad_amount"},
    "negative_amount": {"bad_amount"},
    "naive_timestamp": {"naive_timestamp"},
    "timestamp_past": {"timestamp_out_of_range"},
    "timestamp_future": {"timestamp_out_of_range"},
    "oversize": {"oversize"},
    "empty_key": {"empty_key"},
}


def test_the_flow_parser_dead_letters_each_kind(bad: list[tuple[bytes | None, bytes, str]]) -> None:
    settings = ValidationSettings()
    for key, value, kind in bad:
        out = parse_message(Msg(key, value), settings, NOW, require_key=True)
        if kind == "duplicate":
            assert isinstance(out, Transaction)  # valid alone; the flow's dedupe catches it
        else:
            assert isinstance(out, DeadLetter), kind
            assert out.code in EXPECTED_CODES[kind], (kind, out.code)


def test_duplicates_copy_recent_records(pool: list[dict[str, Any]]) -> None:
    recent = {r["transaction_id"] for r in pool[-64:]}
    dups = list(malformed(30, seed=3, valid_pool=pool, kinds=("duplicate",)))
    assert {orjson.loads(v)["transaction_id"] for _, v, _ in dups} <= recent


def test_kinds_subset_and_growing_pool() -> None:
    pool: list[dict[str, Any]] = []
    gen = malformed(10, seed=1, valid_pool=pool, kinds=("oversize", "duplicate"))
    with pytest.raises(ValueError, match="empty"):
        next(gen)
    pool.append(next(iter(generate(1, users=1, seed=1))))
    out = list(malformed(10, seed=1, valid_pool=pool, kinds=("oversize", "duplicate")))
    assert Counter(k for _, _, k in out) == {"oversize": 5, "duplicate": 5}


def test_unknown_kind_is_refused(pool: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="unknown"):
        malformed(1, seed=1, valid_pool=pool, kinds=("nope",))

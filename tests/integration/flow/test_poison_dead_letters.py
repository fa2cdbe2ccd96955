"""Issue 13: messages whose dead letter used to exceed the producer's 1 MB limit
(and crash the flow on every restart) go through the real broker and `fraudflow run`;
and the Kafka record sink survives a record that is too large even for the broker."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from fraudflow.config.settings import KafkaSettings
from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.kafka import KafkaRecordSink
from fraudflow.records import DeadLetter, OutputPolicy, dead_letter_max_bytes
from fraudflow.sinks import metrics
from fraudflow.tools.evaluate import read_topic

pytestmark = pytest.mark.integration

# the audit's inputs: value, key
POISON: list[tuple[bytes, bytes]] = [
    (b'"' * 600_000, b"u1"),  # 6x when JSON-escaped
    (bytes(range(256)) * 3200, b"u1"),  # 800 KB binary: base64
    (b'{"user_id": "u1"}', b"k" * 1_000_000),  # 1 MB key
    (b"x" * 10_000_000, b"u1"),  # 10 MB value
]
BIG = {"message.max.bytes": 20_000_000, "fetch.max.bytes": 52_428_800}


def good(i: int) -> bytes:
    return orjson.dumps(
        {
            "transaction_id": f"t{i}",
            "user_id": "u1",
            "amount": 10.0 + i,
            "timestamp": 1_767_225_600_000 + i,
        }
    )


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, **BIG})
    for value, key in records:
        p.produce(topic, value=value, key=key)
        p.flush(60)
    assert p.flush(60) == 0


def run_flow(bootstrap: str, topic: str, tmp: Path, *extra: str) -> tuple[dict[str, Any], str]:
    summary = tmp / "summary.json"
    cmd = [
        sys.executable, "-m", "fraudflow", "run", "--brokers", bootstrap,
        "--input-topic", topic, "--alerts-topic", f"{topic}-alerts", "--dlq-topic", f"{topic}-dlq",
        "--from-beginning", "--exit-at-end", "--quiet", "--summary-json", str(summary), *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return orjson.loads(summary.read_bytes()), proc.stderr


def test_huge_messages_become_bounded_dead_letters(
    broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> None:
    broker.create_topic(topic)
    records = [(good(0), b"u1"), *POISON, (good(1), b"u1")]
    produce(broker.bootstrap, topic, records)
    summary, _ = run_flow(broker.bootstrap, topic, tmp_path)
    assert summary["received"] == len(records)
    assert summary["valid"] == 2
    assert summary["dead_lettered"] == len(POISON)

    dead = read_topic(broker.bootstrap, f"{topic}-dlq", config=BIG)
    assert len(dead) == len(POISON)
    by_len = {d["value_bytes"]: d for d in dead}
    bound = dead_letter_max_bytes(16384)
    for value, key in POISON:
        d = by_len[len(value)]
        assert d["error"]["code"] in ("oversize", "missing_field")
        assert len(orjson.dumps(d)) <= bound
        assert d["value_digest"] == hashlib.sha256(value).hexdigest()
        assert d["key_digest"] == hashlib.sha256(key).hexdigest()
        assert d["key_bytes"] == len(key)
        assert base64.b64decode(d["key_base64"]) == key[:16384]
        kept = (
            base64.b64decode(d["value"])
            if d["value_encoding"] == "base64"
            else d["value"].encode("utf-8")
        )
        assert 0 < len(kept) <= 16384
        assert value.startswith(kept)
        assert d["value_truncated"] == (len(kept) < len(value))


def test_pseudonymised_dead_letters_carry_no_payload(
    broker: EmbeddedBroker, topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUDFLOW_PSEUDONYMIZE_KEY", "a-test-key-of-some-length")
    broker.create_topic(topic)
    secret_user = b"alice@example.com"
    produce(broker.bootstrap, topic, [(b"{broken " + secret_user, secret_user)])
    summary, stderr = run_flow(broker.bootstrap, topic, tmp_path)
    assert summary["dead_lettered"] == 1
    assert "a-test-key-of-some-length" not in stderr
    (d,) = read_topic(broker.bootstrap, f"{topic}-dlq")
    assert d["error"]["code"] == "bad_json"
    assert d["value"] == ""
    assert d["key_base64"] == ""
    assert d["value_truncated"]
    assert d["digest"] == "hmac-sha256"
    assert b"alice" not in orjson.dumps(d)


class _Huge:
    """A record too large for the producer even without payload."""

    def to_json(self, policy: OutputPolicy) -> bytes:
        return b'"' + b"x" * 50_000 + b'"'

    def key_bytes(self, policy: OutputPolicy) -> bytes | None:
        return b"u1"


def test_record_sink_survives_records_too_large(broker: EmbeddedBroker, topic: str) -> None:
    """A producer limit below a dead letter's size: the record is resent without payload;
    one too large even then is dropped and counted, and the batch's other records arrive."""
    broker.create_topic(topic)
    k = KafkaSettings(brokers=(broker.bootstrap,), kafka_config={"message.max.bytes": "20000"})
    part = KafkaRecordSink(k, topic, OutputPolicy(max_payload_bytes=16384)).build("dlq", 0, 1)
    big = DeadLetter("oversize", "m", b"\x01" * 30_000, b"u1", "tx", 0, 7, 0.0)  # 6x escaped
    small = DeadLetter("bad_json", "m", b"{x", b"u2", "tx", 0, 8, 0.0)
    before_sent = metrics.value(
        "fraudflow_sink_records_oversize_total", {"topic": topic, "outcome": "sent_without_payload"}
    )
    before_dropped = metrics.value(
        "fraudflow_sink_records_oversize_total", {"topic": topic, "outcome": "dropped"}
    )
    part.write_batch([big, _Huge(), small])
    part.close()
    out = read_topic(broker.bootstrap, topic)
    assert sorted(d["source"]["offset"] for d in out) == [7, 8]
    bare = next(d for d in out if d["source"]["offset"] == 7)
    assert bare["value"] == ""
    assert bare["value_bytes"] == 30_000
    assert bare["value_digest"] == hashlib.sha256(big.value or b"").hexdigest()
    sent = metrics.value(
        "fraudflow_sink_records_oversize_total", {"topic": topic, "outcome": "sent_without_payload"}
    )
    dropped = metrics.value(
        "fraudflow_sink_records_oversize_total", {"topic": topic, "outcome": "dropped"}
    )
    assert (sent - before_sent, dropped - before_dropped) == (1, 1)

"""``produce`` and ``evaluate`` against a real Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.generator import MALFORMED_KINDS, generate
from fraudflow.sparse_world import generate as sparse_generate
from fraudflow.tools import evaluate as ev
from fraudflow.tools.evaluate import read_topic
from fraudflow.tools.produce import ensure_topic, produce_to_kafka

pytestmark = pytest.mark.integration

COUNT = 3000
BAD = 2 * len(MALFORMED_KINDS)


def read_raw(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes]]:
    """(partition, key, value) of every message, up to end-of-partition on each."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        parts = set(c.list_topics(topic, timeout=10).topics[topic].partitions)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[tuple[int, bytes | None, bytes]] = []
        deadline = time.monotonic() + 60
        while parts and time.monotonic() < deadline:
            for m in c.consume(500, timeout=0.5):
                err = m.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    parts.discard(m.partition())
                else:
                    out.append((m.partition(), m.key(), m.value()))
        assert not parts, "end of partitions not reached"
        return out
    finally:
        c.close()


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="fraudflow")
    ev.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv])
    code: int = args.func(args)
    return code


def test_produce_keys_partitions_and_truth(
    broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> None:
    truth = tmp_path / "truth.jsonl"
    s = produce_to_kafka(
        broker.bootstrap,
        topic,
        COUNT,
        users=60,
        seed=5,
        anomaly_rate=0.02,
        malformed=BAD,
        partitions=3,
        truth=truth,
    )
    assert s.ok
    assert (s.count, s.delivered, s.delivery_errors) == (COUNT, COUNT + BAD, 0)
    assert s.malformed == dict.fromkeys(MALFORMED_KINDS, 2)

    msgs = read_raw(broker.bootstrap, topic)
    assert len(msgs) == COUNT + BAD
    assert {p for p, _, _ in msgs} == {0, 1, 2}
    expected = {orjson.dumps(r): r for r in generate(COUNT, users=60, seed=5, anomaly_rate=0.02)}
    user_partition: dict[str, int] = {}
    valid = Counter[bytes]()
    for p, key, value in msgs:
        rec = expected.get(value)
        if rec is None:
            continue
        valid[value] += 1
        assert key == rec["user_id"].encode()  # keyed by user_id ...
        assert (
            user_partition.setdefault(rec["user_id"], p) == p
        )  # ... so a user stays on one partition
    # every record arrived; the duplicates kind re-sent two of them
    assert set(valid) == set(expected)
    assert sum(valid.values()) == COUNT + 2
    assert sum(1 for _, key, _ in msgs if key == b"") == 2  # empty_key
    assert len(truth.read_bytes().splitlines()) == COUNT


def test_existing_topic_is_kept(broker: EmbeddedBroker, topic: str) -> None:
    assert ensure_topic(broker.bootstrap, topic, 2) is True
    assert ensure_topic(broker.bootstrap, topic, 5) is False
    s = produce_to_kafka(broker.bootstrap, topic, 10, users=3, partitions=5)
    assert s.ok
    assert len(read_raw(broker.bootstrap, topic)) == 10


def test_evaluate_reads_alerts_topic_to_its_end(
    broker: EmbeddedBroker, topic: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = list(generate(500, users=20, seed=2, anomaly_rate=0.05))
    truth = tmp_path / "truth.jsonl"
    truth.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    fraud = [r for r in records if r["_label"]]
    assert fraud
    alerts_topic = f"{topic}-alerts"
    ensure_topic(broker.bootstrap, alerts_topic, 3)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for r in fraud + fraud[:3]:  # three alerts delivered twice
        alert = {
            "alert_id": f"a-{r['transaction_id']}",
            "transaction_id": r["transaction_id"],
            "tier": "block",
        }
        p.produce(alerts_topic, key=r["user_id"].encode(), value=orjson.dumps(alert))
    p.produce(alerts_topic, key=b"u", value=b"not json")
    assert p.flush(30) == 0

    got = read_topic(broker.bootstrap, alerts_topic, timeout=30)
    assert len(got) == len(fraud) + 3

    code = run_cli(
        "--brokers", broker.bootstrap, "--alerts-topic", alerts_topic, "--input", str(truth),
        "--json", "--min-recall", "1", "--max-alert-rate", "0.1",
    )  # fmt: skip
    out = orjson.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["alerts"] == len(fraud)
    assert out["duplicate_records"] == 3
    assert out["recall"] == 1.0
    assert out["unreadable_lines"] == {f"kafka:{alerts_topic}": 1}


def test_read_topic_errors(broker: EmbeddedBroker, topic: str) -> None:
    ensure_topic(broker.bootstrap, topic, 1)
    assert read_topic(broker.bootstrap, topic, timeout=10) == []  # empty: nothing to wait for
    with pytest.raises(RuntimeError, match=re.escape("Kafka at 127.0.0.1:1")):
        read_topic("127.0.0.1:1", topic, timeout=2)


def test_sparse_world_goes_to_the_topic_keyed_by_user(broker: EmbeddedBroker, topic: str) -> None:
    s = produce_to_kafka(
        broker.bootstrap, topic, 1500, users=50, seed=6, partitions=2, world="sparse"
    )
    assert s.ok
    assert s.delivered == 1500
    msgs = read_raw(broker.bootstrap, topic)
    expected = {orjson.dumps(r): r for r in sparse_generate(1500, users=50, seed=6)}
    assert sorted(v for _p, _k, v in msgs) == sorted(expected)
    for _p, key, value in msgs:
        assert key == expected[value]["user_id"].encode()

"""Kafka topics as a whole: read a topic to the end of every partition, create a topic."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic


def read_topic(
    brokers: str,
    topic: str,
    *,
    timeout: float = 60.0,
    config: Mapping[str, Any] | None = None,
    skipped: Counter[str] | None = None,
) -> list[dict[str, Any]]:
    """Every JSON object on ``topic``, from the start to the end of each partition as it is now.

    The end is where the broker's fetch reports end-of-partition; listed
    offsets are not used, because some Kafka-protocol brokers (Tansu 0.6)
    report a high watermark below the real end. No consumer group offsets are
    committed. Raises ``RuntimeError`` when the broker does not answer or the
    end is not reached within ``timeout`` seconds.
    """
    consumer = Consumer(
        {
            "log_level": 2,
            **(config or {}),
            "bootstrap.servers": brokers,
            "group.id": f"fraudflow-evaluate-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    out: list[dict[str, Any]] = []
    try:
        meta = consumer.list_topics(topic, timeout=min(10.0, timeout))
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None:
            why = (
                tmeta.error.str() if tmeta is not None and tmeta.error is not None else "not found"
            )
            raise RuntimeError(f"topic {topic!r} at {brokers}: {why}")
        pending = set(tmeta.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"topic {topic!r}: end not reached within {timeout}s "
                    f"({len(pending)} partitions left)"
                )
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise RuntimeError(f"topic {topic!r}: {err.str()}")
                value = msg.value()
                try:
                    obj = orjson.loads(value) if value else None
                except orjson.JSONDecodeError:
                    obj = None
                if isinstance(obj, dict):
                    out.append(obj)
                elif skipped is not None:
                    skipped[f"kafka:{topic}"] += 1
    except KafkaException as exc:
        err = exc.args[0]
        why = err.str() if isinstance(err, KafkaError) else str(err)
        raise RuntimeError(f"Kafka at {brokers}: {why}") from None
    finally:
        consumer.close()
    return out


def ensure_topic(
    brokers: str, topic: str, partitions: int, config: Mapping[str, Any] | None = None
) -> bool:
    """Create ``topic`` with ``partitions`` unless it exists; True if it was created.

    Raises ``RuntimeError`` with a readable message when the broker does not answer.
    """
    # log_level 2: no librdkafka lines per failed connect; the error below says it once
    admin = AdminClient({"log_level": 2, **(config or {}), "bootstrap.servers": brokers})
    try:
        if topic in admin.list_topics(timeout=10).topics:
            return False
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
        try:
            futures[topic].result(timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            return False
        deadline = time.monotonic() + 10
        while topic not in admin.list_topics(timeout=5).topics:
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {topic!r} was created but does not show in the metadata")
            time.sleep(0.1)
        return True
    except KafkaException as exc:
        err = exc.args[0]
        why = err.str() if isinstance(err, KafkaError) else str(err)
        raise RuntimeError(f"Kafka at {brokers}: {why}") from None

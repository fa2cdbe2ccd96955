"""A time range of a Kafka topic, exported to one JSONL file per partition.

``fraudflow backtest --brokers .. --topic T --from TIME --to TIME`` replays
history from a topic: each partition is read from the first offset at or
after ``--from`` (``offsets_for_times``) to its end, keeping the records whose
Kafka timestamp is in ``[from, to)``, in offset order. One file per
partition, so the replay keeps the live flow's shards (one per partition),
and the same range of the same topic always gives the same files, hence the
same scores. Record values are written one per line (producers of JSON do
not put raw newlines in a value).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


def export_range(
    brokers: str,
    topic: str,
    out_dir: Path,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    timeout: float = 120.0,
    config: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write partition ``p``'s records in range to ``out_dir/p-TOPIC.jsonl``; return the files.

    ``config``: extra librdkafka settings (security), as ``FRAUDFLOW_KAFKA_CONFIG`` gives.
    """
    consumer = Consumer(
        {
            "group.id": "fraudflow-backtest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            **(config or {}),
            "bootstrap.servers": brokers,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10.0).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            msg = f"topic {topic!r} not found on {brokers}"
            raise RuntimeError(msg)
        parts = sorted(meta.partitions)
        starts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts]
        if start_ms is not None:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, start_ms) for p in parts], timeout=10.0
            )
            # -1: no record at or after the time; read from the start, the filter keeps none
            starts = [
                tp if tp.offset >= 0 else TopicPartition(topic, tp.partition, OFFSET_BEGINNING)
                for tp in found
            ]
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {p: (out_dir / f"{p}-{topic}.jsonl").open("wb") for p in parts}
        try:
            consumer.assign(starts)
            pending = set(parts)
            deadline = time.monotonic() + timeout
            while pending:
                if time.monotonic() > deadline:
                    msg = f"reading {topic!r} did not reach the end within {timeout}s"
                    raise RuntimeError(msg)
                for m in consumer.consume(num_messages=1000, timeout=0.5):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            pending.discard(m.partition())
                            continue
                        raise RuntimeError(f"reading {topic!r}: {err}")
                    _kind, ts = m.timestamp()
                    if start_ms is not None and ts < start_ms:
                        continue
                    if end_ms is not None and ts >= end_ms:
                        continue
                    value = m.value()
                    if value:
                        files[m.partition()].write(value.replace(b"\n", b" ") + b"\n")
        finally:
            for f in files.values():
                f.close()
        return [out_dir / f"{p}-{topic}.jsonl" for p in parts]
    finally:
        consumer.close()

"""``fraudflow bench`` section ceiling: how fast one process reads and decodes the topic."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from fraudflow.observability.measure import (
    rate,
)


class TopicWatcher:
    """A thread consuming a topic from the beginning, noting each value's arrival time."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"fraudflow-bench-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "log_level": 2,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )
        self.arrivals: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch-{topic}", daemon=True)

    def _loop(self) -> None:
        consume, arrivals = self._consumer.consume, self.arrivals
        while not self._stop.is_set():
            msgs = consume(num_messages=1000, timeout=0.05)
            now = time.time()
            arrivals.extend((now, v) for m in msgs if m.error() is None and (v := m.value()))

    def __enter__(self) -> TopicWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()

    def count(self) -> int:
        return len(self.arrivals)

    def first_after(self, t: float) -> float | None:
        return next((a for a, _ in list(self.arrivals) if a >= t), None)

    def wait_quiet(self, quiet: float, timeout: float) -> None:
        """Return once no value has arrived for ``quiet`` seconds (or at ``timeout``)."""
        deadline = time.monotonic() + timeout
        last_n, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = self.count()
            if n != last_n:
                last_n, last_change = n, time.monotonic()
            elif time.monotonic() - last_change >= quiet:
                return
            time.sleep(0.05)


def measure_ceiling(bootstrap: str, topic: str, partitions: int, expected: int) -> dict[str, Any]:
    """Consume every partition to its end and decode each value: records/s, one process."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"fraudflow-bench-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 2,
        }
    )
    loads = orjson.loads
    n = nbytes = 0
    t_first = 0.0
    try:
        t0 = time.perf_counter()
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        pending = set(range(partitions))
        deadline = time.monotonic() + 600
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.1):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise RuntimeError(f"ceiling: topic {topic!r}: {err.str()}")
                value = msg.value()
                if value is not None:
                    if not n:
                        t_first = time.perf_counter()
                    loads(value)
                    n += 1
                    nbytes += len(value)
        elapsed = time.perf_counter() - t0
    finally:
        consumer.close()
    if n != expected:
        raise RuntimeError(f"ceiling: read {n} records, expected {expected}")
    steady = elapsed - (t_first - t0)
    return {
        "records": n,
        "mb": round(nbytes / 1e6, 1),
        "elapsed_s": round(elapsed, 3),
        "first_record_s": round(t_first - t0, 3),
        # from the first record to the end, as the flow's net rate (start-up excluded)
        "records_per_s": round(rate(n, steady)),
        "records_per_s_incl_connect": round(rate(n, elapsed)),
    }

"""``fraudflow produce``: synthetic transactions (and bad inputs) to Kafka or a JSONL file.

Records come from :func:`fraudflow.generator.generate`; ``--malformed M``
interleaves M bad messages from :func:`fraudflow.generator.malformed` at
evenly spaced, deterministic positions. Kafka messages are keyed by user_id
with the orjson bytes as value. A file gets one message value per line; a
file has no keys, so the ``empty_key`` kind is left out there, and a bad value
containing a newline would be skipped (none of the current kinds has one).
``--truth`` writes one ground-truth line per valid transaction:
``{"transaction_id", "user_id", "label", "scenario", "timestamp"}``.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from fraudflow.connectors.topics import ensure_topic
from fraudflow.generator import MALFORMED_KINDS, generate, malformed
from fraudflow.generator import sparse as sparse_world
from fraudflow.observability.progress import ProgressBar

VALID = "valid"  # the kind of a good transaction in :func:`messages`
FILE_KINDS = tuple(k for k in MALFORMED_KINDS if k != "empty_key")  # a file carries no key
RETAIL = "retail"  # fraudflow.generator: the default world
WORLDS = (RETAIL, sparse_world.NAME)

# librdkafka settings for throughput; anything here can be overridden by --kafka-config
PRODUCER_DEFAULTS: dict[str, str | int | float] = {
    "linger.ms": 20,
    "log_level": 4,  # no info lines (BGQUEUE at shutdown) on the terminal
    "batch.num.messages": 10000,
    "batch.size": 1048576,
    "queue.buffering.max.messages": 500000,
    "queue.buffering.max.kbytes": 1048576,
    "acks": "all",
}


@dataclass
class ProduceSummary:
    """What was written: counts per scenario and per bad kind, delivery, speed."""

    destination: str
    count: int = 0  # valid transactions
    anomalies: dict[str, int] = field(default_factory=dict)  # label 1, by scenario
    malformed: dict[str, int] = field(default_factory=dict)  # bad messages, by kind
    skipped: dict[str, int] = field(default_factory=dict)  # bad messages a file cannot carry
    delivered: int = 0  # acknowledged by the broker (file: written)
    delivery_errors: int = 0
    first_error: str | None = None
    value_bytes: int = 0
    elapsed_s: float = 0.0
    first_event: str | None = None
    last_event: str | None = None
    truth: str | None = None

    @property
    def total(self) -> int:
        """Messages sent: valid plus malformed."""
        return self.count + sum(self.malformed.values())

    @property
    def rate(self) -> float:
        """Messages per second of wall-clock time."""
        return self.total / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.delivery_errors == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "transactions": self.count,
            "anomalies": sum(self.anomalies.values()),
            "anomalies_by_scenario": dict(sorted(self.anomalies.items())),
            "malformed": sum(self.malformed.values()),
            "malformed_by_kind": dict(sorted(self.malformed.items())),
            "skipped_by_kind": dict(sorted(self.skipped.items())),
            "messages": self.total,
            "delivered": self.delivered,
            "delivery_errors": self.delivery_errors,
            "first_error": self.first_error,
            "value_bytes": self.value_bytes,
            "elapsed_s": round(self.elapsed_s, 3),
            "records_per_s": round(self.rate, 1),
            "first_event": self.first_event,
            "last_event": self.last_event,
            "truth": self.truth,
        }

    def text(self) -> str:
        n_anom = sum(self.anomalies.values())
        share = n_anom / self.count if self.count else 0.0
        lines = [
            "fraudflow produce summary",
            f"  destination     {self.destination}",
            f"  transactions    {self.count:>10,}",
            f"  anomalies       {n_anom:>10,}   ({share:.2%}) {_kv(self.anomalies)}",
            f"  malformed       {sum(self.malformed.values()):>10,}   {_kv(self.malformed)}",
        ]
        if self.skipped:
            lines.append(
                f"  not written     {sum(self.skipped.values()):>10,}   {_kv(self.skipped)}"
                " (a file has no key)"
            )
        lines += [
            f"  delivered       {self.delivered:>10,}   errors {self.delivery_errors:,}"
            + (f" (first: {self.first_error})" if self.first_error else ""),
            f"  throughput      {self.rate:>10,.0f} records/s over {self.elapsed_s:.2f}s, "
            f"{self.value_bytes / 1e6:,.1f} MB",
            f"  event time      {self.first_event or '-'} .. {self.last_event or '-'}",
        ]
        if self.truth:
            lines.append(f"  ground truth    {self.truth}")
        return "\n".join(lines)


def _kv(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))


def bad_positions(count: int, bad: int) -> list[int]:
    """After how many valid records each bad one goes: evenly spaced, never before the first.

    >>> bad_positions(10, 3)
    [2, 5, 7]
    >>> bad_positions(2, 3)
    [1, 1, 1]
    """
    return [max(1, (j + 1) * count // (bad + 1)) for j in range(bad)]


def messages(
    count: int,
    *,
    users: int = 2000,
    seed: int = 7,
    anomaly_rate: float = 0.01,
    bad: int = 0,
    start: datetime | None = None,
    event_rate: float | None = None,
    compromised_merchants: int = 0,
    compromise_days: float = 14.0,
    kinds: tuple[str, ...] = MALFORMED_KINDS,
    world: str = RETAIL,
) -> Iterator[tuple[bytes | None, bytes, str, dict[str, Any] | None]]:
    """(key, value, kind, record) for every message: kind is VALID or a malformed kind.

    The record is the generated dict for valid messages and None for bad ones.
    ``world`` picks the generator: ``retail`` (:mod:`fraudflow.generator`) or
    ``sparse`` (:mod:`fraudflow.generator.sparse`, which has no event rate or
    compromised-merchant settings: its own fraud mechanics run at ``anomaly_rate``).
    """
    if bad and count < 1:
        raise ValueError("--malformed needs at least one valid record (--count >= 1) to copy from")
    records = _records(
        world,
        count,
        users=users,
        seed=seed,
        anomaly_rate=anomaly_rate,
        start=start,
        event_rate=event_rate,
        compromised_merchants=compromised_merchants,
        compromise_days=compromise_days,
    )
    pool: deque[dict[str, Any]] = deque(maxlen=64)
    bad_iter = malformed(bad, seed=seed, valid_pool=pool, kinds=kinds)
    positions = bad_positions(count, bad)
    j = 0
    for i, rec in enumerate(records):
        while j < bad and positions[j] <= i:
            key, value, kind = next(bad_iter)
            yield key, value, kind, None
            j += 1
        yield rec["user_id"].encode(), orjson.dumps(rec), VALID, rec
        pool.append(rec)
    for key, value, kind in bad_iter:
        yield key, value, kind, None


def _records(
    world: str,
    count: int,
    *,
    users: int,
    seed: int,
    anomaly_rate: float,
    start: datetime | None,
    event_rate: float | None,
    compromised_merchants: int,
    compromise_days: float,
) -> Iterator[dict[str, Any]]:
    if world == RETAIL:
        return generate(
            count,
            users=users,
            seed=seed,
            anomaly_rate=anomaly_rate,
            start=start,
            rate=event_rate,
            compromised_merchants=compromised_merchants,
            compromise_days=compromise_days,
        )
    if world == sparse_world.NAME:
        if event_rate is not None or compromised_merchants:
            raise ValueError(
                f"--world {world} has no --event-rate or --compromised-merchants "
                "(its rates and merchant compromises are part of the world)"
            )
        return sparse_world.generate(
            count, users=users, seed=seed, anomaly_rate=anomaly_rate, start=start
        )
    raise ValueError(f"--world must be one of {', '.join(WORLDS)}, got {world!r}")


def truth_line(rec: Mapping[str, Any]) -> bytes:
    """The ground-truth line of a generated record."""
    return (
        orjson.dumps(
            {
                "transaction_id": rec["transaction_id"],
                "user_id": rec["user_id"],
                "label": rec["_label"],
                "scenario": rec["_scenario"],
                "timestamp": rec["timestamp"],
            }
        )
        + b"\n"
    )


class _Pacer:
    """Sleeps so that message ``n`` goes out no earlier than ``n / rate`` seconds after start."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.t0 = time.monotonic()

    def wait(self, n: int) -> None:
        if self.rate is None:
            return
        ahead = self.t0 + n / self.rate - time.monotonic()
        if ahead > 0.002:
            time.sleep(ahead)


def _run(
    summary: ProduceSummary,
    msgs: Iterator[tuple[bytes | None, bytes, str, dict[str, Any] | None]],
    send: Callable[[bytes | None, bytes], None],
    *,
    total: int,
    rate: float | None,
    truth: IO[bytes] | None,
    progress: bool,
    can_send: Callable[[bytes | None, bytes, str], bool] = lambda _k, _v, _kind: True,
) -> None:
    """The loop shared by Kafka and file output: count, pace, send, write truth."""
    anomalies: Counter[str] = Counter()
    bad: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    pacer, bar = _Pacer(rate), ProgressBar("produce", total, progress)
    t0 = time.perf_counter()
    n = 0
    try:
        for key, value, kind, rec in msgs:
            if not can_send(key, value, kind):
                skipped[kind] += 1
                continue
            pacer.wait(n)
            send(key, value)
            n += 1
            summary.value_bytes += len(value)
            if rec is None:
                bad[kind] += 1
            else:
                summary.count += 1
                if rec["_label"]:
                    anomalies[rec["_scenario"]] += 1
                if summary.first_event is None:
                    summary.first_event = rec["timestamp"]
                summary.last_event = rec["timestamp"]
                if truth is not None:
                    truth.write(truth_line(rec))
            if n % 1024 == 0:
                bar.update(n)
    finally:
        bar.update(n, force=bar.drawn)
        bar.close()
        summary.elapsed_s = time.perf_counter() - t0
        summary.anomalies, summary.malformed, summary.skipped = (
            dict(anomalies),
            dict(bad),
            dict(skipped),
        )


@contextlib.contextmanager
def _open_truth(path: Path | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
        return
    with path.open("wb") as f:
        yield f


def produce_to_file(
    out: Path | IO[bytes],
    count: int,
    *,
    users: int = 2000,
    seed: int = 7,
    anomaly_rate: float = 0.01,
    malformed: int = 0,
    start: datetime | None = None,
    event_rate: float | None = None,
    compromised_merchants: int = 0,
    compromise_days: float = 14.0,
    rate: float | None = None,
    truth: Path | None = None,
    progress: bool = False,
    world: str = RETAIL,
) -> ProduceSummary:
    """Write the records (and bad values) as JSON lines to ``out``; returns the summary."""
    msgs = messages(
        count,
        users=users,
        seed=seed,
        anomaly_rate=anomaly_rate,
        bad=malformed,
        start=start,
        event_rate=event_rate,
        compromised_merchants=compromised_merchants,
        compromise_days=compromise_days,
        kinds=FILE_KINDS,
        world=world,
    )
    summary = ProduceSummary(
        destination=f"file {out}" if isinstance(out, Path) else "file <stream>"
    )
    summary.truth = str(truth) if truth else None
    with contextlib.ExitStack() as stack:
        f: IO[bytes] = stack.enter_context(out.open("wb")) if isinstance(out, Path) else out
        t = stack.enter_context(_open_truth(truth))

        def send(_key: bytes | None, value: bytes) -> None:
            f.write(value)
            f.write(b"\n")

        _run(
            summary,
            msgs,
            send,
            total=count + malformed,
            rate=rate,
            truth=t,
            progress=progress,
            can_send=lambda _k, value, _kind: b"\n" not in value,
        )
        f.flush()
    summary.delivered = summary.total
    return summary


def produce_to_kafka(
    brokers: str,
    topic: str,
    count: int,
    *,
    users: int = 2000,
    seed: int = 7,
    anomaly_rate: float = 0.01,
    malformed: int = 0,
    start: datetime | None = None,
    event_rate: float | None = None,
    compromised_merchants: int = 0,
    compromise_days: float = 14.0,
    rate: float | None = None,
    partitions: int = 3,
    truth: Path | None = None,
    config: Mapping[str, Any] | None = None,
    progress: bool = False,
    flush_timeout: float = 120.0,
    world: str = RETAIL,
) -> ProduceSummary:
    """Produce to ``topic`` (created with ``partitions`` if missing), keyed by user_id.

    Returns when every message is acknowledged or ``flush_timeout`` has passed;
    messages not acknowledged by then count as delivery errors.
    """
    ensure_topic(brokers, topic, partitions, config)
    summary = ProduceSummary(destination=f"kafka {brokers} topic {topic}")
    summary.truth = str(truth) if truth else None

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            summary.delivered += 1
        else:
            summary.delivery_errors += 1
            if summary.first_error is None:
                summary.first_error = str(err)

    producer = Producer({**PRODUCER_DEFAULTS, **(config or {}), "bootstrap.servers": brokers})
    sent = 0

    def send(key: bytes | None, value: bytes) -> None:
        nonlocal sent
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let librdkafka drain it
                producer.poll(0.05)
        sent += 1
        if sent % 1000 == 0:
            producer.poll(0)

    msgs = messages(
        count,
        users=users,
        seed=seed,
        anomaly_rate=anomaly_rate,
        bad=malformed,
        start=start,
        event_rate=event_rate,
        compromised_merchants=compromised_merchants,
        compromise_days=compromise_days,
        world=world,
    )
    with _open_truth(truth) as t:
        _run(summary, msgs, send, total=count + malformed, rate=rate, truth=t, progress=progress)
    t0 = time.perf_counter()
    remaining = producer.flush(flush_timeout)
    summary.elapsed_s += time.perf_counter() - t0
    if remaining:
        summary.delivery_errors += remaining
        summary.first_error = (
            summary.first_error or f"{remaining} messages not acknowledged within {flush_timeout}s"
        )
    return summary

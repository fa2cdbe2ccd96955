"""Start-up checks of Kafka, and librdkafka's log lines through Python logging.

``check_kafka`` asks the brokers for their topic list (all topics, never one by name, so a
broker that auto-creates topics on a metadata request creates nothing) within a start-up
timeout: no answer, or an input topic that does not exist, is a ``ConfigError`` naming the
brokers or the topic, raised before the flow (or any migration) starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from fraudflow.config.settings import ConfigError, KafkaSettings, Settings

LOGGER_NAME = "fraudflow.librdkafka"


class RateLimit(logging.Filter):
    """At most ``burst`` records per ``every`` seconds for one message template and level;
    the next one let through says how many were suppressed."""

    def __init__(self, every: float = 10.0, burst: int = 1) -> None:
        super().__init__()
        self.every, self.burst = every, burst
        self._seen: dict[tuple[int, str], tuple[float, int, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, _template(record.getMessage()))
        now = time.monotonic()
        with self._lock:
            start, shown, dropped = self._seen.get(key, (now, 0, 0))
            if now - start >= self.every:
                start, shown = now, 0
            if shown >= self.burst:
                self._seen[key] = (start, shown, dropped + 1)
                return False
            self._seen[key] = (start, shown + 1, 0)
        if dropped:
            record.msg = f"{record.getMessage()} ({dropped} similar lines suppressed)"
            record.args = None
        return True


def _template(message: str) -> str:
    """A message with its digits dropped, so 'after 12ms' and 'after 15ms' count as one."""
    return "".join(c for c in message if not c.isdigit())


def kafka_logger() -> logging.Logger:
    """The logger handed to librdkafka clients (``logger`` config): rate-limited; silenced
    by ``quiet_kafka_logs()``."""
    log = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, RateLimit) for f in log.filters):
        log.addFilter(RateLimit())
    return log


def quiet_kafka_logs() -> None:
    """``--quiet``: librdkafka's own lines are not shown (errors still come as exceptions)."""
    kafka_logger().setLevel(logging.CRITICAL + 1)


_probe: list[Consumer] = []


def high_watermarks(settings: Settings, parts: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The high watermark of each (topic, partition), from one side consumer that joins no
    group, subscribes to nothing and commits nothing (for the lag gauge)."""
    if not _probe:
        conf: dict[str, Any] = {
            "bootstrap.servers": ",".join(settings.kafka.brokers),
            **settings.kafka.kafka_config,
            "group.id": "fraudflow-lag-probe",
            "enable.auto.commit": False,
            "logger": kafka_logger(),
        }
        if settings.kafka.sasl_password is not None:
            conf["sasl.password"] = settings.kafka.sasl_password.reveal()
        _probe.append(Consumer(conf))
    out = {}
    for topic, part in parts:
        _low, high = _probe[0].get_watermark_offsets(TopicPartition(topic, part), timeout=5.0)
        out[(topic, part)] = int(high)
    return out


def check_kafka(
    k: KafkaSettings, topics: Sequence[tuple[str, str]], timeout: float
) -> dict[str, int]:
    """Partitions of each ``(setting, topic)``; raise ``ConfigError`` when no broker answers
    within ``timeout`` seconds or a topic does not exist (it is never created)."""
    conf: dict[str, Any] = {"bootstrap.servers": ",".join(k.brokers), **k.kafka_config}
    if k.sasl_password is not None:
        conf["sasl.password"] = k.sasl_password.reveal()
    conf["logger"] = kafka_logger()
    brokers = ",".join(k.brokers)
    try:
        found = AdminClient(conf).list_topics(timeout=timeout).topics
    except KafkaException as exc:
        err = exc.args[0]
        why = err.str() if hasattr(err, "str") else str(err)
        raise ConfigError(
            f"kafka.brokers: no broker answered at {brokers} within {timeout:g}s ({why}); "
            "check --brokers and that the brokers are up (kafka.startup_timeout sets the wait)"
        ) from None
    out: dict[str, int] = {}
    for setting, topic in topics:
        if topic not in found:
            raise ConfigError(
                f"kafka.{setting}: topic {topic!r} does not exist on {brokers}; fraudflow "
                f"never creates it: create it, or fix --{setting.replace('_', '-')}"
            )
        out[topic] = len(found[topic].partitions)
    return out

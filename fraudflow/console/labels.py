"""Analysts' verdicts as labels on the labels topic, in the flow's label format.

One JSON object per verdict, ``{"transaction_id", "label": "fraud"|"legit",
"reported_at": RFC 3339}``, keyed by ``user_id`` (see docs/training.md), which
:func:`fraudflow.operators.ingest.labels.parse_label` reads back.

>>> label_message("t1", "fraud", datetime(2026, 1, 2, tzinfo=UTC))
b'{"transaction_id":"t1","label":"fraud","reported_at":"2026-01-02T00:00:00+00:00"}'
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from fraudflow.config.settings import KafkaSettings


class PublishError(RuntimeError):
    """The label could not be delivered to the labels topic."""


def label_message(transaction_id: str, label: str, reported_at: datetime) -> bytes:
    """The value of one label message (pure)."""
    return orjson.dumps(
        {
            "transaction_id": transaction_id,
            "label": label,
            "reported_at": reported_at.astimezone(UTC).isoformat(),
        }
    )


class LabelPublisher:
    """A Kafka producer for the labels topic; ``publish`` waits for the delivery report."""

    def __init__(self, settings: KafkaSettings, *, timeout: float = 10.0) -> None:
        conf: dict[str, Any] = {
            "bootstrap.servers": ",".join(settings.brokers),
            "enable.idempotence": True,
            "acks": "all",
            "client.id": "fraudflow-console",
            **dict(settings.kafka_config),
        }
        if settings.sasl_password is not None:
            conf["sasl.password"] = settings.sasl_password.reveal()
        self.topic = settings.labels_topic
        self.timeout = timeout
        self._producer = Producer(conf)
        self._lock = threading.Lock()

    def publish(self, user_id: str, transaction_id: str, label: str, reported_at: datetime) -> None:
        """Send one label and wait until the broker has it; ``PublishError`` otherwise."""
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        value = label_message(transaction_id, label, reported_at)
        with self._lock:
            try:
                self._producer.produce(
                    self.topic, key=user_id.encode(), value=value, on_delivery=delivered
                )
                left = self._producer.flush(self.timeout)
            except (KafkaException, BufferError) as exc:
                raise PublishError(f"labels topic {self.topic!r}: {exc}") from None
        if errors:
            raise PublishError(f"labels topic {self.topic!r}: {errors[0].str()}")
        if left:
            raise PublishError(f"labels topic {self.topic!r}: not delivered in {self.timeout}s")

    def check(self) -> None:
        """Raise ``PublishError`` when the labels topic cannot be seen (for /readyz)."""
        try:
            md = self._producer.list_topics(self.topic, timeout=3)
        except KafkaException as exc:
            raise PublishError(f"brokers: {exc}") from None
        t = md.topics.get(self.topic)
        if t is None or t.error is not None:
            raise PublishError(f"labels topic {self.topic!r} does not exist")

    def close(self) -> None:
        """Deliver what is queued and stop the client's threads."""
        with self._lock:
            self._producer.flush(self.timeout)
            self._producer.close()

"""Kafka in and out: bytewax's KafkaSource, and a sink of fraudflow records.

Settings in ``kafka_config`` are handed to librdkafka untouched; a SASL
password comes from the environment only (``FRAUDFLOW_SASL_PASSWORD``).
"""

from __future__ import annotations

from typing import Any, Protocol

from bytewax.connectors.kafka import KafkaSource
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from fraudflow.config.settings import ConfigError, KafkaSettings


class KafkaRecord(Protocol):
    """What the sink writes: a JSON encoding and the user it is keyed by."""

    def to_json(self) -> bytes: ...


def client_config(k: KafkaSettings) -> dict[str, str]:
    """librdkafka settings shared by consumers and producers."""
    conf = {"bootstrap.servers": ",".join(k.brokers)}
    conf.update(k.kafka_config)
    if k.sasl_password is not None:
        conf["sasl.password"] = k.sasl_password.reveal()
    return conf


def transactions_source(k: KafkaSettings) -> KafkaSource:
    """The input topic, one bytewax partition per Kafka partition."""
    return topic_source(k, k.input_topic)


def labels_source(k: KafkaSettings, timeout: float = 15.0) -> KafkaSource:
    """The labels topic (feedback), read like the input topic.

    The topic must exist: a source on a missing topic reads nothing and
    feedback would silently learn nothing. (Listing all topics, not asking
    for this one, so a broker that auto-creates topics does not create it.)
    """
    try:
        conf: dict[str, str | int | float | bool] = dict(client_config(k))
        topics = AdminClient(conf).list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise ConfigError(f"kafka.labels_topic: cannot list topics on {k.brokers}: {exc}") from exc
    if k.labels_topic not in topics:
        msg = (
            f"kafka.labels_topic: topic {k.labels_topic!r} does not exist on "
            f"{','.join(k.brokers)}; create it (labels: transaction_id, label, reported_at) "
            "or set --labels-topic"
        )
        raise ConfigError(msg)
    return topic_source(k, k.labels_topic)


def topic_source(k: KafkaSettings, topic: str) -> KafkaSource:
    """A topic with the flow's client settings, start offset and end-of-input rule."""
    extra = dict(client_config(k))
    extra.pop("bootstrap.servers")
    return KafkaSource(
        brokers=list(k.brokers),
        topics=[topic],
        tail=not k.exit_at_end,
        starting_offset=OFFSET_BEGINNING if k.from_beginning else OFFSET_END,
        add_config=extra,
        batch_size=k.source_batch_size,
    )


class _RecordPartition(StatelessSinkPartition[Any]):
    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._errors: list[str] = []

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def write_batch(self, items: list[Any]) -> None:
        produce = self._producer.produce
        for item in items:
            key = item.key_bytes()
            while True:
                try:
                    produce(self._topic, value=item.to_json(), key=key, on_delivery=self._delivered)
                    break
                except BufferError:
                    self._producer.poll(0.05)
        # at-least-once: the batch is on the broker before the epoch can close
        self._producer.flush()
        if self._errors:
            errors, self._errors = self._errors, []
            msg = f"Kafka delivery to {self._topic!r} failed for {len(errors)} records: {errors[0]}"
            raise RuntimeError(msg)

    def close(self) -> None:
        self._producer.flush()


class KafkaRecordSink(DynamicSink[Any]):
    """Write alerts or dead letters as JSON, keyed by user id."""

    def __init__(self, k: KafkaSettings, topic: str) -> None:
        self._conf = client_config(k)
        self._topic = topic

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RecordPartition:
        conf: dict[str, Any] = {"linger.ms": 5, "enable.idempotence": False, **self._conf}
        return _RecordPartition(Producer(conf), self._topic)

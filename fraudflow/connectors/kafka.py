"""Kafka in and out: bytewax's KafkaSource, and a sink of fraudflow records.

Settings in ``kafka_config`` are handed to librdkafka untouched; a SASL
password comes from the environment only (``FRAUDFLOW_SASL_PASSWORD``).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from bytewax.connectors.kafka import KafkaSource
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka.admin import AdminClient

from fraudflow.config.settings import ConfigError, KafkaSettings
from fraudflow.connectors.preflight import kafka_logger
from fraudflow.observability import metrics
from fraudflow.records import PLAIN, OutputPolicy

log = logging.getLogger(__name__)

# errors that say this one record is too large (producer side or broker side)
_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})


class KafkaRecord(Protocol):
    """What the sink writes: a JSON encoding and the key, under an output policy."""

    def to_json(self, policy: OutputPolicy = ...) -> bytes: ...
    def key_bytes(self, policy: OutputPolicy = ...) -> bytes | None: ...


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
    """The labels topic (for the labels store), read like the input topic.

    The topic must exist: a source on a missing topic reads nothing and
    the labels store would silently stay empty. (Listing all topics, not asking
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


# The source consumers' fetch wait unless ``kafka_config`` sets one (docs/benchmarks.md,
# "Latency"). A Kafka broker answers a fetch as soon as data arrives, so on Kafka this only
# bounds how often an idle partition is polled; the embedded Tansu broker answers at the
# wait's end, so there it is the latency floor (librdkafka's 500 ms gave p50 ~240 ms).
# Shorter waits make Tansu's fetches, whose cost grows with the batches a partition holds,
# frequent enough to saturate a small machine within seconds: 100 ms degraded no sooner
# than 500 ms in bench_broker_latency.py, 50 ms and 10 ms did.
SOURCE_FETCH_WAIT_MS = "100"


def topic_source(k: KafkaSettings, topic: str) -> KafkaSource:
    """A topic with the flow's client settings, start offset and end-of-input rule."""
    extra: dict[str, Any] = {"fetch.wait.max.ms": SOURCE_FETCH_WAIT_MS, **client_config(k)}
    extra.pop("bootstrap.servers")
    extra["logger"] = kafka_logger()  # librdkafka's lines through logging, rate-limited
    return KafkaSource(
        brokers=list(k.brokers),
        topics=[topic],
        tail=not k.exit_at_end,
        starting_offset=OFFSET_BEGINNING if k.from_beginning else OFFSET_END,
        add_config=extra,
        batch_size=k.source_batch_size,
    )


class _RecordPartition(StatelessSinkPartition[Any]):
    """Produces records; one too large for the producer or broker never fails the batch.

    Such a record is sent again without payload (``OutputPolicy.without_payload``:
    a dead letter keeps its code, source, lengths and digests); if even that is
    too large it is logged and counted (``fraudflow_sink_records_dropped``), not
    retried. Any other delivery error fails the batch, as before.
    """

    def __init__(self, producer: Producer, topic: str, policy: OutputPolicy) -> None:
        self._producer = producer
        self._topic = topic
        self._policy = policy
        self._errors: list[str] = []
        self._too_large: list[Any] = []

    def _send(self, item: Any, policy: OutputPolicy) -> None:
        def delivered(err: Any, _msg: Any) -> None:
            if err is None:
                return
            if err.code() in _TOO_LARGE:
                self._too_large.append(item)
            else:
                self._errors.append(str(err))

        value, key = item.to_json(policy), item.key_bytes(policy)
        while True:
            try:
                self._producer.produce(self._topic, value=value, key=key, on_delivery=delivered)
                return
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:
                if exc.args[0].code() not in _TOO_LARGE:
                    raise
                self._too_large.append(item)
                return

    def write_batch(self, items: list[Any]) -> None:
        for item in items:
            self._send(item, self._policy)
        # at-least-once: the batch is on the broker before the epoch can close
        self._producer.flush()
        if self._too_large:
            retry, self._too_large = self._too_large, []
            bare = self._policy.without_payload()
            for item in retry:
                self._send(item, bare)
            self._producer.flush()
            dropped, self._too_large = len(self._too_large), []
            log.warning(
                "%d records for topic %r were too large: %d sent without payload, %d dropped",
                len(retry),
                self._topic,
                len(retry) - dropped,
                dropped,
            )
            metrics.sink_oversize(self._topic, len(retry) - dropped, dropped)
        if self._errors:
            errors, self._errors = self._errors, []
            msg = f"Kafka delivery to {self._topic!r} failed for {len(errors)} records: {errors[0]}"
            raise RuntimeError(msg)

    def close(self) -> None:
        self._producer.flush()


class KafkaRecordSink(DynamicSink[Any]):
    """Write alerts or dead letters as JSON, keyed by user id, under an output policy
    (payload size, pseudonyms: see docs/pii.md)."""

    def __init__(self, k: KafkaSettings, topic: str, policy: OutputPolicy = PLAIN) -> None:
        self._conf = client_config(k)
        self._topic = topic
        self._policy = policy

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RecordPartition:
        # log_level 4 (warning): librdkafka prints its info lines at shutdown (BGQUEUE) to
        # stderr itself, past the logger, once the log queue is no longer served
        conf: dict[str, Any] = {
            "linger.ms": 5,
            "enable.idempotence": False,
            "log_level": 4,
            **self._conf,
        }
        conf["logger"] = kafka_logger()
        return _RecordPartition(Producer(conf), self._topic, self._policy)

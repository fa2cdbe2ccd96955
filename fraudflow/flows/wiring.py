"""Sources and sinks chosen from settings, and running a flow in this process."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import redis
from bytewax._bytewax import cli_main
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, Sink
from bytewax.recovery import RecoveryConfig
from psycopg.conninfo import conninfo_to_dict

from fraudflow.config.settings import ConfigError, Settings
from fraudflow.connectors.kafka import KafkaRecordSink, labels_source, transactions_source
from fraudflow.flows.io import FlowIO
from fraudflow.flows.recovery_dir import prepare_recovery_dir
from fraudflow.records import DeadLetter, Decision, OutputPolicy
from fraudflow.sinks.postgres import PostgresSink, migrate
from fraudflow.sinks.redis_profiles import RedisProfileSink
from fraudflow.training.wiring import training_io

log = logging.getLogger(__name__)


def store_sinks(
    settings: Settings, dead_letters: DynamicSink[DeadLetter] | None = None
) -> list[tuple[str, Sink[Decision]]]:
    """PostgreSQL and Redis sinks, each on when its setting is given; decisions a store
    refuses for their content go to ``dead_letters``."""
    sinks: list[tuple[str, Sink[Decision]]] = []
    s = settings.sinks
    check_dsns(settings)
    if s.postgres_dsn is not None:
        applied = migrate(s.postgres_dsn, retry_limit=s.sink_retry_limit)
        if applied:
            log.info("applied PostgreSQL migrations: %s", ", ".join(applied))
        pg = PostgresSink(s.postgres_dsn, retry_limit=s.sink_retry_limit, dead_letters=dead_letters)
        sinks.append(("postgres", pg))
    if s.redis_url is not None:
        sink = RedisProfileSink(
            s.redis_url,
            s.profile_ttl,
            s.sink_retry_limit,
            key_prefix=s.redis_key_prefix,
            dead_letters=dead_letters,
        )
        sinks.append(("redis", sink))
    return sinks


def output_policy(settings: Settings) -> OutputPolicy:
    """How alerts and dead letters leave the flow: payload size and pseudonyms (docs/pii.md)."""
    key = settings.sinks.pseudonymize_key
    return OutputPolicy(
        max_payload_bytes=settings.kafka.dlq_max_payload_bytes,
        pseudonymize_key=None if key is None else key.reveal().encode("utf-8"),
        payload_with_pseudonyms=settings.sinks.dlq_payload_with_pseudonyms,
    )


def check_dsns(settings: Settings) -> None:
    """Parse the DSN and the URL before any connection, so that a malformed one fails at
    start with an error that names the setting and never echoes any part of the value
    (psycopg's and redis's parse errors quote the text around the fault: the password)."""
    s = settings.sinks
    if s.postgres_dsn is not None:
        try:
            conninfo_to_dict(s.postgres_dsn.reveal())
        except psycopg.Error:
            raise ConfigError(
                "sinks.postgres_dsn: not a valid PostgreSQL DSN (value not shown); use "
                "postgresql://USER@HOST:PORT/DB or 'host=... dbname=...', with the password "
                "percent-encoded in a URL"
            ) from None
    if s.redis_url is not None:
        try:
            redis.Redis.from_url(s.redis_url.reveal()).close()
        except (ValueError, TypeError):
            raise ConfigError(
                "sinks.redis_url: not a valid Redis URL (value not shown); use "
                "redis://[:PASSWORD@]HOST:PORT/DB, rediss:// or unix://"
            ) from None


def kafka_io(settings: Settings, extra: Sequence[tuple[str, Sink[Decision]]] = ()) -> FlowIO:
    """Kafka in (and the labels topic with the labels store), alerts and dead letters to Kafka,
    plus the configured stores."""
    k = settings.kafka
    if not k.brokers:
        raise ConfigError("kafka.brokers: no brokers given (--brokers or FRAUDFLOW_BROKERS)")
    policy = output_policy(settings)
    dead_letters = KafkaRecordSink(k, k.dlq_topic, policy)
    train = training_io(settings)
    return FlowIO(
        source=transactions_source(k),
        alerts=KafkaRecordSink(k, k.alerts_topic, policy),
        dead_letters=dead_letters,
        decisions=[*store_sinks(settings, dead_letters), *train.decisions, *extra],
        require_key=True,
        labels=labels_source(k) if train.labels is not None else None,
        models=train.models,
        label_store=train.labels,
    )


def recovery_config(settings: Settings, partitions: int = 1) -> RecoveryConfig | None:
    """Recovery on when a directory is set; partitions are created atomically on first
    start, and a store left half-made by an interrupted first start is rebuilt."""
    d: Path | None = settings.recovery.recovery_dir
    if d is None:
        return None
    prepare_recovery_dir(d, partitions)
    return RecoveryConfig(str(d))


def run_flow(
    flow: Dataflow,
    settings: Settings,
    *,
    workers: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> None:
    """Run in this process (optionally as one process of a cluster)."""
    interval = settings.recovery.snapshot_interval
    kwargs: dict[str, Any] = {
        "workers_per_process": workers,
        "process_id": process_id,
        "addresses": addresses,
        "epoch_interval": interval if interval > timedelta(0) else None,
        "recovery_config": recovery_config(settings),
    }
    cli_main(flow, **kwargs)

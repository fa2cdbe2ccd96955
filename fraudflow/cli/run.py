"""``fraudflow run``: detection against Kafka, in this process."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import redis

from fraudflow.cli.banner import print_banner
from fraudflow.cli.common import (
    add_retired_flags,
    add_settings_flags,
    fail,
    print_summary,
    settings_from_args,
    warn_secret_flags,
)
from fraudflow.config.settings import ConfigError, Settings
from fraudflow.connectors.preflight import check_kafka, high_watermarks, quiet_kafka_logs
from fraudflow.connectors.stop import graceful_stop, stop_reason
from fraudflow.flows.detection import build_flow
from fraudflow.flows.wiring import kafka_io, run_flow
from fraudflow.observability import health
from fraudflow.observability.progress import progress
from fraudflow.operators.features.catalogue import feature_catalogue
from fraudflow.rules import RuleError, load_rules
from fraudflow.sinks.retry import SinkError

FLAGS = (
    "brokers",
    "input_topic",
    "alerts_topic",
    "dlq_topic",
    "labels_topic",
    "alert_budget",
    "rules",
    "from_beginning",
    "exit_at_end",
    "recovery_dir",
    "snapshot_interval",
    "postgres_dsn",
    "redis_url",
    "metrics_port",
    "metrics_host",
    "startup_timeout",
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run detection on a Kafka topic",
        description=(
            "Score every transaction on the input topic; alerts (tier >= review) go to the "
            "alerts topic keyed by user_id, bad records to the dead-letter topic. PostgreSQL, "
            "Redis and /metrics are on when their setting is given. For a cluster, run "
            "'python -m bytewax.run \"fraudflow.flows.detection:get_flow()\" -i ID -a ADDRS' "
            "with FRAUDFLOW_* variables, or use --process-id/--addresses here."
        ),
    )
    add_settings_flags(p, FLAGS)
    add_retired_flags(p, ("feedback",))
    p.add_argument(
        "-w", "--workers", type=int, default=1, help="worker threads in this process [1]"
    )
    p.add_argument(
        "-i", "--process-id", type=int, default=None, help="this process's index in a cluster"
    )
    p.add_argument(
        "-a", "--addresses", default=None, help="cluster addresses HOST:PORT;HOST:PORT;..."
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no start-up banner, progress lines or librdkafka log lines on stderr",
    )
    p.add_argument(
        "--debug", action="store_true", help="on a start-up error, show the Python traceback"
    )
    p.add_argument(
        "--summary-json",
        type=Path,
        metavar="FILE",
        help="also write the end-of-run summary as JSON",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    warn_secret_flags(args)
    if args.quiet:
        quiet_kafka_logs()
    try:
        settings = settings_from_args(args, FLAGS)
        preflight(settings)
        io = kafka_io(settings)
        health.set_check("sinks", True, "migrations applied, stores answer")
    except ConfigError as exc:
        if args.debug:
            raise
        return fail(str(exc))
    except SinkError as exc:  # start-up migration: store refused or unreachable past the limit
        if args.debug:
            raise
        return fail(str(exc), 1)
    flow = build_flow(settings, io, keep_state=settings.recovery.recovery_dir is not None)
    if not args.quiet:
        print_banner(settings, io.stats.rules_version, io.stats.model_version)
    addresses = args.addresses.split(";") if args.addresses else None
    lag_stop = threading.Event()
    health.watch_lag(lambda parts: high_watermarks(settings, parts), lag_stop)
    try:
        with graceful_stop(), progress(io.stats, enabled=not args.quiet):
            run_flow(
                flow,
                settings,
                workers=args.workers,
                process_id=args.process_id,
                addresses=addresses,
            )
    except ConfigError as exc:  # e.g. a recovery directory that holds damaged snapshots
        return fail(str(exc))
    finally:
        lag_stop.set()
    report_stop(settings)
    k = settings.kafka
    ok = print_summary(
        io.stats,
        {"alerts": f"kafka topic {k.alerts_topic}", "dead letters": f"kafka topic {k.dlq_topic}"},
        out=sys.stdout,
        cluster=addresses is not None and len(addresses) > 1,
    )
    if args.summary_json is not None:
        args.summary_json.write_bytes(orjson.dumps(io.stats.snapshot()))
    return 0 if ok else 1


def report_stop(settings: Settings) -> None:
    """After a SIGTERM/SIGINT: say the run stopped early and where a restart resumes."""
    reason = stop_reason()
    if reason is None:
        return
    if settings.recovery.recovery_dir is not None:
        where = "a restart on the same --recovery-dir resumes after the last record read"
    else:
        where = "no --recovery-dir: a restart starts again from the configured offset"
    print(f"fraudflow: stopped on {reason}; every sink flushed; {where}", file=sys.stderr)


def preflight(settings: Settings) -> None:
    """Everything checkable before the flow starts, before any migration writes: the rules,
    the metrics port (the server starts here), the brokers and topics, Redis. Raises
    ``ConfigError`` naming the setting."""
    health.reset()
    s = settings.sinks
    if s.metrics_port is not None:
        try:
            health.serve(s.metrics_port, s.metrics_host)
        except (OSError, OverflowError, ValueError) as exc:
            msg = f"sinks.metrics_port: cannot serve on {s.metrics_host}:{s.metrics_port}: {exc}"
            raise ConfigError(msg) from None
    rules_dir = settings.rules.rules
    try:
        load_rules(rules_dir, feature_catalogue(settings.features.windows))
    except RuleError as exc:
        health.set_check("rules", False, str(rules_dir))
        raise ConfigError(f"rules.rules: {rules_dir}: {exc}") from None
    health.set_check("rules", True, str(rules_dir))
    k = settings.kafka
    topics = [("input_topic", k.input_topic)]
    if settings.feedback.label_store:
        topics.append(("labels_topic", k.labels_topic))
    try:
        check_kafka(k, topics, k.startup_timeout.total_seconds())
    except ConfigError:
        health.set_check("kafka", False, "brokers or topics missing")
        raise
    health.set_check("kafka", True, "brokers answer, topics exist")
    if s.redis_url is not None:
        client = redis.Redis.from_url(
            s.redis_url.reveal(), socket_connect_timeout=5, socket_timeout=5
        )
        where = client.connection_pool.connection_kwargs
        try:
            client.ping()
        except redis.AuthenticationError:
            raise ConfigError("sinks.redis_url: Redis refused the credentials") from None
        except redis.RedisError as exc:
            raise ConfigError(
                f"sinks.redis_url: Redis at {where.get('host', '?')}:{where.get('port', '?')} "
                f"does not answer ({type(exc).__name__})"
            ) from None
        finally:
            client.close()

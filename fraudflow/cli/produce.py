"""``fraudflow produce``: synthetic transactions (and bad inputs) to Kafka or a JSONL file.

The library is :mod:`fraudflow.generator.stream`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fraudflow.cli.common import fail
from fraudflow.config.settings import ConfigError, resolve
from fraudflow.generator import DEFAULT_START
from fraudflow.generator.stream import (
    RETAIL,
    WORLDS,
    produce_to_file,
    produce_to_kafka,
)
from fraudflow.operators.ingest.timestamps import Invalid, parse_timestamp


def _start(text: str) -> datetime:
    if text == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:  # the one time rule (operators/ingest/timestamps.py): RFC 3339 with a zone
        parse_timestamp(text, "--start")
    except Invalid as exc:
        raise argparse.ArgumentTypeError(
            f"{exc.message} (e.g. 2026-01-01T00:00:00Z), or 'now'"
        ) from None
    return datetime.fromisoformat(text)


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        v = kind(text)
        if not v > 0:  # NaN too
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v

    return parse


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def _kafka_config(text: str) -> dict[str, str]:
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError("use k=v,k=v (librdkafka settings)")
    return {k.strip(): v.strip() for k, v in pairs}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "produce",
        help="produce synthetic transactions (with labelled fraud) to Kafka or a file",
        description=(
            "Generate realistic card transactions for a population of users, with labelled "
            "fraud (account_takeover, card_testing, impossible_travel, unusual_hour, "
            "unusual_merchant_category, and compromised_merchant with --compromised-merchants) "
            "in fields '_label' and '_scenario', which the flow ignores. Same seed, same "
            "records. Output goes to a Kafka topic (key = user_id, created if missing) or, "
            "with --out, to a JSON-lines file."
        ),
        epilog=(
            "Examples:\n"
            "  fraudflow produce --brokers localhost:9092 --topic transactions --count 100000\n"
            "  fraudflow produce --out txns.jsonl --truth truth.jsonl --count 5000 --malformed 50\n"
            "  fraudflow produce --out cm.jsonl --count 300000 --users 1000 "
            "--compromised-merchants 3\n"
            "  fraudflow produce --world sparse --out sparse.jsonl --count 1000000 --seed 1\n"
            "Event time starts at --start (default "
            f"{DEFAULT_START.isoformat().replace('+00:00', 'Z')}) and advances about 12 "
            "transactions per user per day, so 100,000 records over 2,000 users span ~4 days "
            "(the sparse world: about 4.4, so 1,000,000 records over 2,000 users span ~113 "
            "days). "
            "Bad records (--malformed) carry a '_malformed' field naming their kind where "
            "they are still JSON objects; in a file, the empty_key kind is left out."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dest = p.add_argument_group("destination (one of)")
    dest.add_argument(
        "--brokers",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (env FRAUDFLOW_BROKERS, or kafka.brokers of "
        "FRAUDFLOW_CONFIG; used only without --out)",
    )
    dest.add_argument(
        "--out",
        type=Path,
        metavar="FILE.jsonl",
        help="write JSON lines to this file ('-' for stdout)",
    )
    p.add_argument(
        "--topic",
        help="topic to produce to (env FRAUDFLOW_INPUT_TOPIC, or kafka.input_topic of "
        "FRAUDFLOW_CONFIG) [default: transactions]",
    )
    p.add_argument(
        "--count", type=_non_negative_int, required=True, help="valid transactions to produce"
    )
    p.add_argument(
        "--rate",
        type=_positive(float),
        metavar="R",
        help="pace to R records/s of wall-clock time [default: as fast as possible]",
    )
    p.add_argument(
        "--users",
        type=_positive(int),
        default=2000,
        help="users in the population [default: %(default)s]",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=7,
        help="random seed; same seed, same records [default: %(default)s]",
    )
    p.add_argument(
        "--world",
        choices=WORLDS,
        default=RETAIL,
        help=(
            "which synthetic world: 'retail' (rich records, the scenarios above) or 'sparse' "
            "(only transaction_id, user_id, amount, timestamp, merchant_id; fraud "
            "compromised_merchant, card_shift, large_amount; see docs/backtest.md) "
            "[default: %(default)s]"
        ),
    )
    p.add_argument(
        "--anomaly-rate",
        type=float,
        default=0.01,
        metavar="P",
        help="approximate share of transactions labelled fraud, 0..0.5 [default: %(default)s]",
    )
    p.add_argument(
        "--compromised-merchants",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help=(
            "also let N busy merchants charge other users' cards at ordinary amounts for "
            "--compromise-days each (scenario compromised_merchant, ~40%% of their "
            "transactions then; counts against --anomaly-rate) [default: 0]"
        ),
    )
    p.add_argument(
        "--compromise-days",
        type=_positive(float),
        default=14.0,
        metavar="D",
        help=(
            "days of event time each merchant stays compromised; the windows start after "
            "the first 15%% of the run's span [default: %(default)s]"
        ),
    )
    p.add_argument(
        "--malformed",
        type=_non_negative_int,
        default=0,
        metavar="M",
        help="also interleave M bad messages of every kind the flow must dead-letter [default: 0]",
    )
    p.add_argument(
        "--partitions",
        type=_positive(int),
        default=3,
        help="partitions of a topic created here [default: %(default)s]",
    )
    p.add_argument(
        "--truth",
        type=Path,
        metavar="FILE.jsonl",
        help="also write ground-truth lines to this file",
    )
    p.add_argument(
        "--start",
        type=_start,
        metavar="TIME",
        help="first event time, RFC 3339 with zone, or 'now' [default: fixed, see below]",
    )
    p.add_argument(
        "--event-rate",
        type=_positive(float),
        metavar="R",
        help="mean transactions per second of event time [default: 12 per user per day]",
    )
    p.add_argument(
        "--kafka-config",
        type=_kafka_config,
        default={},
        metavar="K=V,...",
        help="extra librdkafka producer settings, passed through (e.g. compression.type=lz4)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show a progress bar",
    )
    bar.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=main)


def destination(args: argparse.Namespace) -> tuple[str, str] | None:
    """Brokers and topic through the one settings surface (flags, then ``FRAUDFLOW_*``
    variables, then ``FRAUDFLOW_CONFIG``'s file, as ``config --effective`` resolves them);
    None with ``--out``, where a broker setting from the environment does not count.
    Raises ``ConfigError`` naming the flag or variable of a bad value."""
    if args.out is not None:
        return None
    flags = {"brokers": args.brokers, "input_topic": args.topic}
    k = resolve(None, {n: v for n, v in flags.items() if v is not None}).settings.kafka
    if not k.brokers:
        raise ConfigError(
            "give either --brokers HOST:PORT (or FRAUDFLOW_BROKERS) with --topic, "
            "or --out FILE.jsonl"
        )
    return ",".join(k.brokers), k.input_topic


def main(args: argparse.Namespace) -> int:
    if args.out is not None and args.brokers is not None:
        return fail("give either --brokers HOST:PORT (with --topic) or --out FILE.jsonl")
    try:
        kafka = destination(args)
    except ConfigError as exc:
        return fail(str(exc))
    if not 0 <= args.anomaly_rate <= 0.5:
        return fail(f"--anomaly-rate must be within [0, 0.5], got {args.anomaly_rate}")
    if args.world != RETAIL and (args.event_rate is not None or args.compromised_merchants):
        return fail(f"--world {args.world} has no --event-rate or --compromised-merchants")
    if args.malformed and not args.count:
        return fail("--malformed needs --count >= 1 (bad records are built from valid ones)")
    to_stdout = args.out is not None and str(args.out) == "-"
    report = sys.stderr if to_stdout else sys.stdout
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    common: dict[str, Any] = {
        "users": args.users,
        "seed": args.seed,
        "anomaly_rate": args.anomaly_rate,
        "malformed": args.malformed,
        "start": args.start,
        "event_rate": args.event_rate,
        "compromised_merchants": args.compromised_merchants,
        "compromise_days": args.compromise_days,
        "rate": args.rate,
        "truth": args.truth,
        "progress": progress,
        "world": args.world,
    }
    try:
        if kafka is None:
            out = sys.stdout.buffer if to_stdout else args.out
            summary = produce_to_file(out, args.count, **common)
        else:
            summary = produce_to_kafka(
                kafka[0],
                kafka[1],
                args.count,
                partitions=args.partitions,
                config=args.kafka_config,
                **common,
            )
    except (OSError, RuntimeError, ValueError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted", code=130)
    if args.json:
        print(orjson.dumps(summary.to_dict()).decode(), file=report)
    else:
        print(summary.text(), file=report)
    if not summary.ok:
        print(
            f"fraudflow: error: {summary.delivery_errors} messages were not delivered",
            file=sys.stderr,
        )
        return 1
    return 0

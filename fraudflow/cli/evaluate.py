"""``fraudflow evaluate``: alerts against ground truth.

The maths is :mod:`fraudflow.backtest.evaluation`.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from fraudflow.backtest.evaluation import (
    checks,
    evaluate,
    read_jsonl,
    report,
)
from fraudflow.cli.common import fail
from fraudflow.config.settings import ConfigError, resolve
from fraudflow.connectors.topics import read_topic


def _fraction(text: str) -> float:
    v = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be within 0..1 (or 0%..100%), got {text}")
    return v


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "evaluate",
        help="score alerts against ground truth (recall, precision, alert rate)",
        description=(
            "Compare alerts with the ground truth of generated transactions: recall at the "
            "review tier (share of label-1 transactions with a review or block alert), recall at "
            "block, precision, alert rate and recall by fraud scenario. Alerts are deduplicated on "
            "alert_id (delivery is at least once; consumers should do the same)."
        ),
        epilog=(
            "Examples:\n"
            "  fraudflow evaluate --alerts alerts.jsonl --truth truth.jsonl\n"
            "  fraudflow evaluate --brokers localhost:9092 --alerts-topic alerts "
            "--truth truth.jsonl --min-recall 0.6 --max-alert-rate 0.03\n"
            "Exit code: 0 ok, 1 a --min-*/--max-* check failed, 2 bad input."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("alerts (one of)")
    src.add_argument(
        "--alerts", type=Path, metavar="FILE.jsonl", help="alert records, one JSON object a line"
    )
    src.add_argument(
        "--alerts-topic",
        metavar="TOPIC",
        help="read alerts from this Kafka topic, from the beginning to the current end",
    )
    src.add_argument(
        "--brokers",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers for --alerts-topic (env FRAUDFLOW_BROKERS, or "
        "kafka.brokers of FRAUDFLOW_CONFIG)",
    )
    gt = p.add_argument_group("ground truth (one of)")
    gt.add_argument(
        "--truth",
        type=Path,
        metavar="FILE.jsonl",
        help="ground-truth file of 'fraudflow produce --truth'",
    )
    gt.add_argument(
        "--input", type=Path, metavar="FILE.jsonl", help="generated records with _label/_scenario"
    )
    p.add_argument(
        "--min-recall", type=_fraction, metavar="X", help="exit 1 unless recall (review+block) >= X"
    )
    p.add_argument(
        "--max-alert-rate", type=_fraction, metavar="Y", help="exit 1 unless alert rate <= Y"
    )
    p.add_argument(
        "--min-precision", type=_fraction, metavar="Z", help="exit 1 unless precision >= Z"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to read --alerts-topic to its end [default: %(default)s]",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if (args.alerts is None) == (args.alerts_topic is None):
        return fail("give either --alerts FILE.jsonl or --alerts-topic TOPIC (with --brokers)")
    brokers = ""
    if args.alerts_topic is not None:
        flags = {"brokers": args.brokers} if args.brokers is not None else {}
        try:  # the one settings surface: errors name the flag or variable
            brokers = ",".join(resolve(None, flags).settings.kafka.brokers)
        except ConfigError as exc:
            return fail(str(exc))
        if not brokers:
            return fail("--alerts-topic needs --brokers HOST:PORT (or FRAUDFLOW_BROKERS)")
    if (args.truth is None) == (args.input is None):
        return fail("give either --truth FILE.jsonl or --input FILE.jsonl")
    skipped: Counter[str] = Counter()
    try:
        if args.alerts is not None:
            alerts: list[dict[str, Any]] = list(read_jsonl(args.alerts, skipped))
        else:
            alerts = read_topic(brokers, args.alerts_topic, timeout=args.timeout, skipped=skipped)
        result = evaluate(alerts, read_jsonl(args.truth or args.input, skipped))
    except (OSError, RuntimeError) as exc:
        return fail(str(exc))
    if result.transactions == 0:
        return fail(f"no labelled transactions in {args.truth or args.input}")
    results = checks(
        result,
        min_recall=args.min_recall,
        max_alert_rate=args.max_alert_rate,
        min_precision=args.min_precision,
    )
    passed = all(c.passed for c in results)
    if args.json:
        out = result.to_dict()
        out["unreadable_lines"] = dict(skipped)
        out["checks"] = [asdict(c) for c in results]
        out["passed"] = passed
        print(orjson.dumps(out).decode())
    else:
        print(report(result, results))
        for where, n in skipped.items():
            print(f"  unreadable lines skipped in {where}: {n:,}")
    return 0 if passed else 1

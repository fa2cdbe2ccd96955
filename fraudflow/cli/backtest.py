"""``fraudflow backtest``: replay a file or a topic range through the flow and grade it.

The library (replay, interleave, grade, collect sinks) is :mod:`fraudflow.backtest.replay`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from fraudflow.backtest.labels import label_known_at, parse_time
from fraudflow.backtest.replay import (
    Graded,
    LabelInfo,
    Replay,
    count_records,
    grade,
    input_source,
    interleave_labels,
    read_label_file,
    read_labels,
    replay,
    summary_text,
    write_scores,
)
from fraudflow.backtest.report import Baseline, write_report
from fraudflow.cli.common import add_settings_flags, fail, settings_from_args
from fraudflow.config.settings import ConfigError, Settings, load_settings, parse_duration
from fraudflow.connectors.csv_source import missing_columns
from fraudflow.connectors.files import JsonLinesSource
from fraudflow.connectors.kafka import client_config
from fraudflow.connectors.kafka_range import export_range
from fraudflow.connectors.stop import graceful_stop, stop_reason
from fraudflow.records import Decision
from fraudflow.training.featurelog import log_record, write_feature_log
from fraudflow.training.risk import RiskParams
from fraudflow.training.simulate import retrain_report
from fraudflow.training.trainer import Frame, TrainParams

SETTINGS = ("rules",)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "backtest",
        help="replay a file through the detection flow and grade it against labels",
        description=(
            "Replay transactions (JSON lines or CSV) through the same dataflow 'fraudflow run' "
            "uses, in this process and without writing to any store, then grade the decisions "
            "against labels: precision/recall/F1 per tier, ROC AUC, average precision, "
            "precision/recall@K, per-rule hits, card precision@100 per day. See docs/backtest.md."
        ),
    )
    p.add_argument("--input", type=Path, metavar="FILE", help=".jsonl or .csv")
    p.add_argument("--brokers", metavar="HOST:PORT", help="replay a Kafka topic instead of a file")
    p.add_argument("--topic", metavar="T", help="the topic to replay (with --brokers)")
    p.add_argument(
        "--from", dest="start", metavar="TIME",
        help="first Kafka record time to replay (RFC 3339 with a zone, or epoch ms; "
        "with --topic only) [topic start]",
    )  # fmt: skip
    p.add_argument(
        "--to", dest="end", metavar="TIME",
        help="replay records before this Kafka record time (after --from) [topic end]",
    )  # fmt: skip
    p.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help='JSON lines (or CSV) {"transaction_id", "label": 0|1|"fraud"|"legit", '
        '"label_time"?: RFC 3339 with a zone or epoch ms} '
        "[default: the input's _label fields]",
    )
    p.add_argument(
        "--label-delay",
        type=parse_duration,
        default=timedelta(0),
        metavar="DURATION",
        help="a label without label_time is known this long after its transaction (7d, 36h) [0s]",
    )
    p.add_argument(
        "--feedback",
        choices=("off", "on", "compare"),
        default="off",
        help="learn from the labels as they become known (after --label-delay, or at label_time): "
        "'on' replays with feedback, 'compare' replays without and with it and prints both "
        "(docs/feedback.md) [off]",
    )
    p.add_argument("--scores-out", type=Path, metavar="FILE.jsonl", help="write one line per txn")
    p.add_argument("--report", type=Path, metavar="DIR", help="write report.md/report.html here")
    p.add_argument(
        "--feature-log", type=Path, metavar="FILE.jsonl",
        help="write every decision's model inputs here (what 'fraudflow train --feature-log' "
        "reads; docs/training.md)",
    )  # fmt: skip
    p.add_argument(
        "--compare",
        type=Path,
        metavar="RULES_DIR_OR_CONFIG",
        help="the candidate: replay again with these rules (a directory) or settings (a YAML "
        "file) and print what it changes against this run (the baseline: --rules/--config)",
    )
    p.add_argument(
        "--retrain", type=parse_duration, metavar="DURATION",
        help="simulate scheduled training (with --feedback off): retrain every DURATION of "
        "event time (1d) on the labels known by then, and print off vs on (docs/training.md)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_settings_flags(p, SETTINGS)
    p.set_defaults(func=main)


def load(args: argparse.Namespace) -> Settings:
    """Settings from --config/env/--rules, with recovery off (a replay starts fresh)."""
    return settings_from_args(args, SETTINGS).replace(recovery_dir=None)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if (args.input is None) == (args.topic is None):
        return fail("give either --input FILE or --brokers B --topic T [--from TIME --to TIME]")
    if args.labels is not None and not args.labels.is_file():
        return fail(f"--labels {args.labels}: no such file")
    try:
        settings = load(args)
        start_ms, end_ms = _millis(args.start, "--from"), _millis(args.end, "--to")
    except (ConfigError, ValueError) as exc:
        return fail(str(exc))
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        return fail(f"--from {args.start} is not before --to {args.end}")
    if args.input is not None and (start_ms is not None or end_ms is not None):
        return fail(
            "--from/--to select a time range of a Kafka topic (--topic); with --input, cut "
            "the file to the range first (they would otherwise be ignored)"
        )
    with tempfile.TemporaryDirectory(prefix="fraudflow-backtest-") as tmp:
        if args.topic is not None:
            if not args.brokers:
                return fail("--topic needs --brokers")
            try:
                paths = export_range(
                    args.brokers, args.topic, Path(tmp),
                    start_ms=start_ms, end_ms=end_ms, config=client_config(settings.kafka),
                )  # fmt: skip
            except (RuntimeError, KafkaException) as exc:
                return fail(str(exc))
            title = f"{args.topic} [{args.start or 'start'}, {args.end or 'end'})"
        else:
            if not args.input.is_file():
                return fail(f"--input {args.input}: no such file")
            paths, title = [args.input], str(args.input)
            if args.input.suffix.lower() == ".csv" and (missing := missing_columns(args.input)):
                return fail(
                    f"--input {args.input}: the CSV header has no column "
                    f"{', '.join(missing)} (every row would be dead-lettered)"
                )
        with graceful_stop():
            code = _backtest(args, settings, paths, title)
        return report_stop(code)


# an ISO time that ends without Z or +HH:MM / -HH:MM after its clock time


def _millis(text: str | None, flag: str) -> int | None:
    """RFC 3339 (with zone) or epoch milliseconds to epoch milliseconds (the one rule:
    :mod:`fraudflow.operators.ingest.timestamps`; epoch seconds are refused)."""
    if text is None:
        return None
    try:
        t = parse_time(int(text) if text.isdigit() else text, flag)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if t is None:
        raise ConfigError(f"{flag}: not a time: {text!r} (use RFC 3339 with a zone, or epoch ms)")
    return int(text) if text.isdigit() else round(t * 1000)


def report_stop(code: int) -> int:
    """After SIGTERM/SIGINT: the figures printed cover only the records read before it."""
    reason = stop_reason()
    if reason is not None:
        print(
            f"fraudflow: backtest stopped on {reason}: the figures above cover only the "
            "records read before it, not the whole input",
            file=sys.stderr,
        )
    return code


def _backtest(args: argparse.Namespace, settings: Settings, paths: list[Path], title: str) -> int:
    total = sum(count_records(p) for p in paths)
    try:
        labels = read_label_file(args.labels) if args.labels else read_labels(paths)
    except ValueError as exc:
        return fail(str(exc))
    progress = not args.quiet
    with tempfile.TemporaryDirectory(prefix="fraudflow-labels-") as tmp:
        if args.feedback == "off":
            result = replay(settings, input_source(paths), total=total, progress=progress)
        else:
            fed = interleave_labels(paths, labels, args.label_delay, Path(tmp))
            on = settings.replace(feedback=True)
            if args.feedback == "compare":
                base = replay(settings, input_source(paths), total=total, progress=progress)
                base_graded = grade(base.decisions, labels, args.label_delay)
            result = replay(
                on, JsonLinesSource(fed), total=total + len(labels), progress=progress,
                interleaved_labels=True,
            )  # fmt: skip
    graded = grade(result.decisions, labels, args.label_delay)
    if args.scores_out is not None:
        write_scores(args.scores_out, result.decisions)
    if args.feature_log is not None:
        write_feature_log(args.feature_log, result.decisions)
    if args.retrain is not None:
        print(retrain_text(result.decisions, labels, args.label_delay, args.retrain))
        print()
    if args.report is not None:
        baseline = None
        if args.feedback == "compare":
            baseline = Baseline(
                "feedback off", base_graded.metrics, base_graded.y, base_graded.scores
            )
        write_report(
            args.report, graded.metrics, graded.y, graded.scores, title=title,
            baseline=baseline, name="feedback on" if args.feedback != "off" else "this replay",
        )  # fmt: skip
    print(summary_text(result, graded))
    if args.feedback == "compare":
        print()
        print(
            compare_text(
                base, base_graded, result, graded,
                labels=labels, name="feedback on", baseline="feedback off",
            )
        )  # fmt: skip
    if args.compare is not None:
        try:
            other = compare_settings(args, settings, args.compare)
        except ConfigError as exc:
            return fail(str(exc))
        result_b = replay(other, input_source(paths), total=total, progress=progress)
        graded_b = grade(result_b.decisions, labels, args.label_delay)
        print()
        print(
            compare_text(
                result,
                graded,
                result_b,
                graded_b,
                labels=labels,
                name=f"--compare {args.compare}",
                baseline=f"this run (rules {settings.rules.rules})",
            )
        )
    return 0


def retrain_text(
    decisions: Sequence[Decision],
    labels: Mapping[str, LabelInfo],
    delay: timedelta,
    every: timedelta,
) -> str:
    """``--retrain``: the scheduled-training simulation over this replay's feature log."""
    known = {
        d.txn.transaction_id: (info.label, label_known_at(d.txn.ts, info.label_time, delay))
        for d in decisions
        if (info := labels.get(d.txn.transaction_id)) is not None
    }
    frame = Frame.from_records(log_record(d) for d in decisions)
    params = TrainParams(step=every.total_seconds(), risk=RiskParams(delay=delay.total_seconds()))
    text, _ = retrain_report(frame, known, params, every=every.total_seconds())
    return text


def compare_settings(args: argparse.Namespace, base: Settings, what: Path) -> Settings:
    """The base settings with other rules (a directory) or another config file."""
    if what.is_dir():
        return base.replace(rules=what)
    if what.is_file():
        flags = {n: getattr(args, n) for n in SETTINGS if getattr(args, n, None) is not None}
        return load_settings(what, flags).replace(recovery_dir=None)
    raise ConfigError(f"--compare {what}: no such directory or file")


def compare_text(
    ra: Replay,
    ga: Graded,
    rb: Replay,
    gb: Graded,
    *,
    labels: Mapping[str, LabelInfo],
    name: str,
    baseline: str,
) -> str:
    """Metric and per-rule deltas of the candidate B against the baseline A, and the
    alerts B adds and drops (counted over every decision, labelled or not)."""
    ma, mb = ga.metrics, gb.metrics

    def alerted(r: Replay) -> set[str]:
        return {d.txn.transaction_id for d in r.decisions if d.is_alert}

    def fraud(ids: set[str]) -> int:
        return sum(1 for t in ids if (i := labels.get(t)) is not None and i.label == 1)

    a, b = alerted(ra), alerted(rb)
    added, dropped = b - a, a - b
    rows = [
        ("alert rate", ma.alert_rate, mb.alert_rate),
        ("review precision", ma.review.precision, mb.review.precision),
        ("review recall", ma.review.recall, mb.review.recall),
        ("review F1", ma.review.f1, mb.review.f1),
        ("block precision", ma.block.precision, mb.block.precision),
        ("block recall", ma.block.recall, mb.block.recall),
        ("ROC AUC", ma.roc_auc, mb.roc_auc),
        ("average precision", ma.average_precision, mb.average_precision),
        ("card precision@100", ma.mean_card_precision, mb.mean_card_precision),
    ]
    rows += [(f"precision@{k}", ma.precision_at[k], mb.precision_at[k]) for k in ma.precision_at]

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    def delta(x: float | None, y: float | None) -> str:
        return "-" if x is None or y is None else f"{y - x:+.4f}"

    lines = [
        f"compare: baseline {baseline} (rules {ra.rules_version}, model {ra.model_version}) "
        f"-> candidate {name} (rules {rb.rules_version}, model {rb.model_version})",
        f"  going from the baseline to the candidate would add {len(added):,} alerts, "
        f"{fraud(added):,} of them fraud, and drop {len(dropped):,}, "
        f"{fraud(dropped):,} of them fraud",
        f"  {'metric':<22}{'baseline':>10}{'candidate':>10}{'delta':>10}",
    ]
    lines += [f"  {n:<22}{f(x):>10}{f(y):>10}{delta(x, y):>10}" for n, x, y in rows]
    lines.append(f"  {'rule':<30}{'hits':>14}{'fraud hits':>16}")
    for rid in sorted(set(ma.rules) | set(mb.rules)):
        sa, sb = ma.rules.get(rid), mb.rules.get(rid)
        ha, hb = (sa.hits if sa else 0), (sb.hits if sb else 0)
        fa, fb = (sa.fraud_hits if sa else 0), (sb.fraud_hits if sb else 0)
        if (ha, fa) != (hb, fb):
            lines.append(f"  {rid:<30}{ha:>6,} -> {hb:<6,}{fa:>8,} -> {fb:<6,}")
    return "\n".join(lines)

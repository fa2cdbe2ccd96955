"""``fraudflow backtest``: replay a file or a topic range through the flow and grade it.

The library (replay, grade, collect sinks) is :mod:`fraudflow.backtest.replay`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from fraudflow.backtest.labels import label_known_at, parse_time
from fraudflow.backtest.replay import (
    Graded,
    LabelInfo,
    Replay,
    Window,
    count_records,
    event_range,
    grade,
    input_source,
    outside_window,
    read_label_file,
    read_labels,
    replay,
    summary_text,
    top_scored,
    write_scores,
)
from fraudflow.backtest.report import Comparison, Context, Section, Thresholds, write_report
from fraudflow.cli.common import add_settings_flags, fail, resolved_from_args
from fraudflow.config.settings import (
    ConfigError,
    Settings,
    _fmt,
    differences,
    load_settings,
    parse_duration,
)
from fraudflow.connectors.csv_source import missing_columns
from fraudflow.connectors.kafka import client_config
from fraudflow.connectors.kafka_range import export_range
from fraudflow.connectors.stop import graceful_stop, stop_reason
from fraudflow.records import Decision, iso
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
        help="first time to replay (RFC 3339 with a zone, or epoch ms): a topic's Kafka "
        "record time, a file's event time (timestamp); inclusive [start]",
    )  # fmt: skip
    p.add_argument(
        "--to", dest="end", metavar="TIME",
        help="replay records before this time (after --from; exclusive) [end]",
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
    # --feedback {off,on,compare} replayed the retired in-flow feedback step: its successor
    # is --retrain (off vs on); given, it fails and says so
    p.add_argument("--feedback", dest="feedback_mode", default=None, help=argparse.SUPPRESS)
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
        help="simulate scheduled training: retrain every DURATION of event time (1d) on the "
        "labels known by then, and print off vs on (docs/training.md)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_settings_flags(p, SETTINGS)
    p.set_defaults(func=main)


SHAPES_SCORES = ("validation", "features", "model", "ensemble", "rules")


def load(args: argparse.Namespace) -> tuple[Settings, list[tuple[str, str, str]]]:
    """Settings from --config/env/--rules, with recovery off (a replay starts fresh), and
    the report's settings rows: every non-default one and all that shape scores, masked."""
    r = resolved_from_args(args, SETTINGS)
    return r.settings.replace(recovery_dir=None), r.rows(SHAPES_SCORES)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.feedback_mode is not None:
        return fail(
            f"--feedback {args.feedback_mode}: retired with the in-flow feedback step: use "
            "--retrain 1d, which prints off vs on (docs/training.md)"
        )
    if (args.input is None) == (args.topic is None):
        return fail("give either --input FILE or --brokers B --topic T [--from TIME --to TIME]")
    if args.labels is not None and not args.labels.is_file():
        return fail(f"--labels {args.labels}: no such file")
    try:
        settings, settings_rows = load(args)
        start_ms, end_ms = _millis(args.start, "--from"), _millis(args.end, "--to")
    except (ConfigError, ValueError) as exc:
        return fail(str(exc))
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        return fail(f"--from {args.start} is not before --to {args.end}")
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
            source = f"Kafka topic {args.topic} at {args.brokers}"
        else:
            if not args.input.is_file():
                return fail(f"--input {args.input}: no such file")
            paths, title = [args.input], str(args.input)
            source = f"file {args.input.resolve()}"
            if args.input.suffix.lower() == ".csv" and (missing := missing_columns(args.input)):
                return fail(
                    f"--input {args.input}: the CSV header has no column "
                    f"{', '.join(missing)} (every row would be dead-lettered)"
                )
        window = None
        if args.input is not None and (start_ms is not None or end_ms is not None):
            window = Window(start_ms, end_ms)  # a topic is cut by export_range
            title += f" [{args.start or 'start'}, {args.end or 'end'})"
        run = Run(settings, settings_rows, paths, title, source, window)
        with graceful_stop():
            code = _backtest(args, run)
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


@dataclass(frozen=True)
class Run:
    """What a backtest replays and with which settings (and what its report says of them)."""

    settings: Settings
    settings_rows: list[tuple[str, str, str]]
    paths: list[Path]
    title: str
    source: str  # "file PATH" or "Kafka topic T at BROKERS"
    window: Window | None = None  # --from/--to over a file's event times


def _backtest(args: argparse.Namespace, run: Run) -> int:
    settings, paths = run.settings, run.paths
    window = run.window
    total = sum(count_records(p) for p in paths)
    try:
        labels = read_label_file(args.labels) if args.labels else read_labels(paths)
    except ValueError as exc:
        return fail(str(exc))
    outside = None
    if window is not None:
        n_out, ids_out = outside_window(paths, window)
        total -= n_out
        labels = {k: v for k, v in labels.items() if k not in ids_out}  # never replayed
        outside = (n_out, f"[{args.start or 'start'}, {args.end or 'end'})")
    progress = not args.quiet
    result = replay(settings, input_source(paths, window), total=total, progress=progress)
    graded = grade(result.decisions, labels, args.label_delay)
    if args.scores_out is not None:
        write_scores(args.scores_out, result.decisions)
    if args.feature_log is not None:
        write_feature_log(args.feature_log, result.decisions)
    retrained: list[Section] = []
    if args.retrain is not None:
        text, figures = retrain_result(result.decisions, labels, args.label_delay, args.retrain)
        print(text)
        print()
        retrained.append(retrain_section(figures, args.retrain))
    print(summary_text(result, graded, outside))
    cmp = None
    if args.compare is not None:
        try:
            other = compare_settings(args, settings, args.compare)
        except ConfigError as exc:
            return fail(str(exc))
        result_b = replay(other, input_source(paths, window), total=total, progress=progress)
        graded_b = grade(result_b.decisions, labels, args.label_delay)
        cmp = comparison(
            result, graded, result_b, graded_b, labels=labels,
            name=f"--compare {args.compare}", baseline=f"this run (rules {settings.rules.rules})",
            settings=differences(settings, other),
        )  # fmt: skip
        print()
        print(compare_text(cmp))
    if args.report is not None:
        write_report(
            args.report, graded.metrics, graded.y, graded.scores, title=run.title,
            context=report_context(
                args, run, result, labels, cmp, outside=None if outside is None else outside[0],
                sections=retrained,
            ),
        )  # fmt: skip
    return 0


def report_context(
    args: argparse.Namespace,
    run: Run,
    result: Replay,
    labels: Mapping[str, LabelInfo],
    cmp: Comparison | None,
    *,
    outside: int | None = None,
    sections: Sequence[Section] = (),
) -> Context:
    """The report's provenance, settings, top-scored table, ``--compare`` result and the
    ``--retrain`` ``sections``."""
    span = event_range(result.decisions)
    versions: dict[str, set[str]] = {"rules": set(), "model": set()}
    in_force: set[float] = set()
    for d in result.decisions:
        versions["rules"].add(d.rules_version)
        versions["model"].add(d.model_version)
        in_force.add(round(d.review_threshold, 6))
    e = run.settings.ensemble
    prov = [
        ("input", run.source),
        ("requested range", f"[{args.start or 'start'}, {args.end or 'end'})"),
        (
            "event time covered",
            "no decisions" if span is None else f"{iso(span[0])} to {iso(span[1])}",
        ),
        ("decisions", f"{len(result.decisions):,} (dead-lettered {len(result.dead_letters):,})"),
        *(
            [("outside the range", f"{outside:,} records, not scored")]
            if outside is not None
            else []
        ),
        ("labels", str(args.labels) if args.labels else "the input's _label fields"),
        ("label delay", str(args.label_delay)),
        ("scheduled training", "off" if args.retrain is None else f"every {_fmt(args.retrain)}"),
        ("rules directory", str(run.settings.rules.rules)),
        ("rules version(s)", ", ".join(sorted(versions["rules"])) or result.rules_version),
        ("model version(s)", ", ".join(sorted(versions["model"])) or result.model_version),
        ("thresholds (configured)", f"review {e.review_threshold:g}, block {e.block_threshold:g}"),
    ]
    if in_force - {round(e.review_threshold, 6)}:
        prov.append(
            (
                "review threshold in force",
                f"{min(in_force):g} to {max(in_force):g} (the alert budget raised it)",
            )
        )
    return Context(
        provenance=prov,
        settings=run.settings_rows,
        top=top_scored(result.decisions, labels, 20),
        comparison=cmp,
        sections=sections,
        thresholds=Thresholds(e.review_threshold, e.block_threshold),
        all_scores=[d.score for d in result.decisions],
    )


def retrain_result(
    decisions: Sequence[Decision],
    labels: Mapping[str, LabelInfo],
    delay: timedelta,
    every: timedelta,
) -> tuple[str, dict[str, Any]]:
    """``--retrain``: the scheduled-training simulation over this replay's feature log
    (text, figures)."""
    known = {
        d.txn.transaction_id: (info.label, label_known_at(d.txn.ts, info.label_time, delay))
        for d in decisions
        if (info := labels.get(d.txn.transaction_id)) is not None
    }
    frame = Frame.from_records(log_record(d) for d in decisions)
    params = TrainParams(step=every.total_seconds(), risk=RiskParams(delay=delay.total_seconds()))
    return retrain_report(frame, known, params, every=every.total_seconds())


RETRAIN_ROWS = (
    ("off", "all labelled: off (this replay)"),
    ("on", "all labelled: on (retrained)"),
    ("off_last", "last 7 d: off"),
    ("on_last", "last 7 d: on"),
    ("reference_last", "last 7 d: offline reference"),
)


def retrain_section(figures: Mapping[str, Any], every: timedelta) -> Section:
    """The report's ``--retrain`` table: off vs on, as printed."""

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    shown = ("average_precision", "roc_auc", "card_precision_at_100")
    rows = [[name, *(f(figures[key][m]) for m in shown)] for key, name in RETRAIN_ROWS]
    return Section(
        "Scheduled training: off vs on",
        (["scores", "AP", "ROC AUC", "card precision@100"], rows),
        f"Retrained every {_fmt(every)} of event time on the labels known by then: "
        f"{figures['trainings']} trainings, {figures['promotions']} promoted (docs/training.md).",
    )


def compare_settings(args: argparse.Namespace, base: Settings, what: Path) -> Settings:
    """The base settings with other rules (a directory) or another config file."""
    if what.is_dir():
        return base.replace(rules=what)
    if what.is_file():
        flags = {n: getattr(args, n) for n in SETTINGS if getattr(args, n, None) is not None}
        return load_settings(what, flags).replace(recovery_dir=None)
    raise ConfigError(f"--compare {what}: no such directory or file")


def comparison(
    ra: Replay,
    ga: Graded,
    rb: Replay,
    gb: Graded,
    *,
    labels: Mapping[str, LabelInfo],
    name: str,
    baseline: str,
    settings: list[tuple[str, str, str]] | None = None,
) -> Comparison:
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
    rules = []
    for rid in sorted(set(ma.rules) | set(mb.rules)):
        sa, sb = ma.rules.get(rid), mb.rules.get(rid)
        ha, hb = (sa.hits if sa else 0), (sb.hits if sb else 0)
        fa, fb = (sa.fraud_hits if sa else 0), (sb.fraud_hits if sb else 0)
        if (ha, fa) != (hb, fb):
            rules.append((rid, ha, hb, fa, fb))
    return Comparison(
        baseline=f"{baseline} (rules {ra.rules_version}, model {ra.model_version})",
        candidate=f"{name} (rules {rb.rules_version}, model {rb.model_version})",
        added=len(added),
        added_fraud=fraud(added),
        dropped=len(dropped),
        dropped_fraud=fraud(dropped),
        metrics=rows,
        rules=rules,
        settings=settings or [],
    )


def compare_text(c: Comparison) -> str:
    """The comparison as stdout lines."""

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    def delta(x: float | None, y: float | None) -> str:
        return "-" if x is None or y is None else f"{y - x:+.4f}"

    lines = [
        f"compare: baseline {c.baseline} -> candidate {c.candidate}",
        f"  going from the baseline to the candidate would add {c.added:,} alerts, "
        f"{c.added_fraud:,} of them fraud, and drop {c.dropped:,}, "
        f"{c.dropped_fraud:,} of them fraud",
        f"  {'metric':<22}{'baseline':>10}{'candidate':>10}{'delta':>10}",
    ]
    lines += [f"  {n:<22}{f(x):>10}{f(y):>10}{delta(x, y):>10}" for n, x, y in c.metrics]
    lines.append(f"  {'rule':<30}{'hits':>14}{'fraud hits':>16}")
    for rid, ha, hb, fa, fb in c.rules:
        lines.append(f"  {rid:<30}{ha:>6,} -> {hb:<6,}{fa:>8,} -> {fb:<6,}")
    for setting, va, vb in c.settings:
        lines.append(f"  setting {setting}: {va} -> {vb}")
    return "\n".join(lines)

"""``fraudflow backtest``: replay a file through the production flow and grade it.

The records go through the same dataflow ``fraudflow run`` builds
(:func:`fraudflow.flows.detection.build_flow`), in this process, with no
store sinks: nothing is written to PostgreSQL, Redis or Kafka. Every decision
is collected; labels (``--labels``, or the generator's ``_label`` fields in
the input, read in a separate pass) grade them. Outputs: a metrics summary
on stdout, ``--scores-out`` (one line per transaction, byte-identical across
runs) and ``--report DIR`` (Markdown and self-contained HTML with plots).
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.inputs import Source
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaException

from fraudflow.backtest.labels import (
    Event,
    Label,
    label_known_at,
    label_of,
    merge_labels,
    parse_time,
)
from fraudflow.backtest.metrics import Metrics, compute, report_card
from fraudflow.backtest.report import Baseline, write_report
from fraudflow.config.settings import ConfigError, Settings, load_settings, parse_duration
from fraudflow.connectors.csv_source import CsvSource, read_csv_records
from fraudflow.connectors.files import FileSource, JsonLinesSource
from fraudflow.connectors.kafka import client_config
from fraudflow.connectors.kafka_range import export_range
from fraudflow.flows.detection import build_flow
from fraudflow.flows.io import FlowIO
from fraudflow.flows.stats import RunStats
from fraudflow.flows.wiring import run_flow
from fraudflow.records import DeadLetter, Decision, iso
from fraudflow.tools.common import (
    ProgressBar,
    add_settings_flags,
    fail,
    settings_from_args,
    ticking,
)
from fraudflow.tools.evaluate import read_jsonl
from fraudflow.training.featurelog import log_record, write_feature_log
from fraudflow.training.risk import RiskParams
from fraudflow.training.simulate import retrain_report
from fraudflow.training.trainer import Frame, TrainParams

SETTINGS = ("rules",)


class _Collect(StatelessSinkPartition[Any]):
    def __init__(self, into: list[Any]) -> None:
        self._into = into

    def write_batch(self, items: list[Any]) -> None:
        self._into.extend(items)


class CollectSink(DynamicSink[Any]):
    """Keep every item in a list of this process (a backtest runs one worker)."""

    def __init__(self, into: list[Any] | None = None) -> None:
        self.items: list[Any] = [] if into is None else into

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Collect:
        return _Collect(self.items)


class _Discard(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        pass


class DiscardSink(DynamicSink[Any]):
    """Drop everything (alerts are among the collected decisions already)."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Discard:
        return _Discard()


@dataclass
class Replay:
    """What one replay produced."""

    decisions: list[Decision]
    dead_letters: list[DeadLetter]
    stats: RunStats
    rules_version: str = ""
    model_version: str = ""


@dataclass(frozen=True)
class LabelInfo:
    label: int
    label_time: float | None


def _source_class(path: Path) -> type[FileSource]:
    return CsvSource if path.suffix.lower() == ".csv" else JsonLinesSource


def input_source(paths: list[Path]) -> Source[Any]:
    """CSV for ``.csv`` files, JSON lines otherwise; one partition per file."""
    return _source_class(paths[0])(paths)


def _scan(path: Path) -> Iterator[tuple[float, str | None, float | None, bytes]]:
    """Each record of a file as the flow's source reads it (CSV rows as JSON), with its
    transaction id and event time when it has them, and the running maximum event time."""
    f, values = _source_class(path).open_values(path)
    clock = float("-inf")
    with f:
        for line in values:
            if line is None:
                continue
            tid, ts = _event_time(line)
            clock = max(clock, ts) if ts is not None else clock
            yield clock, tid, ts, line


def _event_time(line: bytes) -> tuple[str | None, float | None]:
    try:
        obj = orjson.loads(line)
        tid, ts = obj.get("transaction_id"), obj.get("timestamp")
        t = ts / 1000.0 if isinstance(ts, int | float) else parse_time(ts)
    except (orjson.JSONDecodeError, AttributeError, ValueError, TypeError):
        return None, None
    return (tid if isinstance(tid, str) else None), t


def interleave_labels(
    paths: Sequence[Path], labels: Mapping[str, LabelInfo], delay: timedelta, out_dir: Path
) -> list[Path]:
    """Copy each input file with its transactions' labels placed where they become known.

    A label line ``{"transaction_id", "label", "reported_at"}`` goes before the
    first record of the same file whose event time reaches the label's known
    time (:func:`~fraudflow.backtest.labels.label_known_at`), and always after
    its own transaction, so the replay learns from it when a live flow could
    have. Labels known after the file's last record are left out. Every record
    keeps its place.
    """
    out: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        # pass 1: each label's release time; pass 2 streams the records past them
        pending: list[Label] = []
        for clock, tid, ts, _line in _scan(path):
            info = labels.get(tid) if tid is not None else None
            if info is not None and tid is not None and ts is not None:
                # never before (or at) its own transaction's place in the file
                known = max(
                    label_known_at(ts, info.label_time, delay), math.nextafter(clock, math.inf)
                )
                pending.append(Label(known, tid, info.label))
        dest = out_dir / (path.stem + ".jsonl")
        if dest.resolve() == path.resolve():
            raise ValueError(f"interleave_labels would overwrite its input {path}")
        with dest.open("wb") as f:
            records = (Event(clock, line) for clock, _tid, _ts, line in _scan(path))
            for item in merge_labels(records, pending):
                if isinstance(item, Label):
                    rec = {
                        "transaction_id": item.transaction_id,
                        "label": item.label,
                        "reported_at": iso(item.known_at),
                    }
                    f.write(orjson.dumps(rec) + b"\n")
                else:
                    f.write(item.value + b"\n")
        out.append(dest)
    return out


def count_records(path: Path) -> int:
    """Records in the file (non-blank lines; CSV rows after the header), for the progress bar."""
    n = 0
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                n += 1
    return max(n - 1, 0) if path.suffix.lower() == ".csv" else n


def replay(
    settings: Settings,
    source: Source[Any],
    *,
    total: int = 0,
    progress: bool = False,
    interleaved_labels: bool = False,
) -> Replay:
    """Run the detection flow over ``source`` in this process and collect its outputs.

    ``interleaved_labels``: the source carries label lines among the
    transactions (:func:`interleave_labels`), which feedback learns from.
    """
    decisions: list[Decision] = []
    dead: list[DeadLetter] = []
    io = FlowIO(
        source=source,
        alerts=DiscardSink(),
        dead_letters=CollectSink(dead),
        decisions=[("scores", CollectSink(decisions))],
        require_key=False,
        interleaved_labels=interleaved_labels,
        event_clock=True,
    )
    flow = build_flow(settings, io)
    with _progress_bar(io.stats, total, progress):
        run_flow(flow, settings)
    decisions.sort(key=lambda d: (d.txn.topic, d.txn.partition, d.txn.offset))
    return Replay(decisions, dead, io.stats, io.stats.rules_version, io.stats.model_version)


@contextmanager
def _progress_bar(stats: RunStats, total: int, enabled: bool) -> Iterator[None]:
    """A bar with rate and ETA on stderr, fed from the flow's received counter."""
    bar = ProgressBar("backtest", total, enabled)
    try:
        with ticking(lambda: bar.update(stats.received_n), enabled, 0.25):
            yield
    finally:
        bar.update(stats.received_n, force=True)
        bar.close()


def score_record(d: Decision) -> dict[str, Any]:
    """One line of ``--scores-out``: no wall-clock fields, so replays compare byte for byte."""
    t = d.txn
    return {
        "transaction_id": t.transaction_id,
        "user_id": t.user_id,
        "timestamp": iso(t.ts),
        "score": round(d.score, 6),
        "tier": d.tier,
        "detector_scores": {k: round(v, 6) for k, v in d.detector_scores.items()},
        "rules": sorted({str(h["id"]) for h in d.rule_hits}),
        "source": {"partition": t.partition, "offset": t.offset},
    }


def write_scores(path: Path, decisions: Sequence[Decision]) -> None:
    """``--scores-out``: one sorted-keys JSON line per transaction, in source order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opt = orjson.OPT_SORT_KEYS
    with path.open("wb") as f:
        for d in decisions:
            f.write(orjson.dumps(score_record(d), option=opt) + b"\n")


def read_labels(paths: list[Path]) -> dict[str, LabelInfo]:
    """Labels by transaction id from a labels file or the input (``_label``); JSONL or CSV."""
    recs = (
        rec
        for path in paths
        for rec in (read_csv_records(path) if path.suffix.lower() == ".csv" else read_jsonl(path))
    )
    out: dict[str, LabelInfo] = {}
    for rec in recs:
        tid = rec.get("transaction_id")
        lab = label_of(rec)
        if not isinstance(tid, str) or lab is None or tid in out:
            continue
        out[tid] = LabelInfo(lab, parse_time(rec.get("label_time")))
    return out


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


@dataclass
class Graded:
    """Decisions joined with labels."""

    metrics: Metrics
    y: list[int]
    scores: list[float]
    unlabelled: int
    labels_pending: int  # labels not yet known at the replay's last event time
    days: list[str] = field(default_factory=list)


def grade(
    decisions: Sequence[Decision], labels: Mapping[str, LabelInfo], delay: timedelta
) -> Graded:
    """Metrics over the labelled decisions."""
    y: list[int] = []
    score: list[float] = []
    tiers: list[str] = []
    rules: list[list[str]] = []
    users: list[str] = []
    days: list[str] = []
    detectors: dict[str, list[float]] = {}
    unlabelled = 0
    pending = 0
    end = max((d.txn.ts for d in decisions), default=0.0)
    for d in decisions:
        info = labels.get(d.txn.transaction_id)
        if info is None:
            unlabelled += 1
            continue
        if label_known_at(d.txn.ts, info.label_time, delay) > end:
            pending += 1
        y.append(info.label)
        score.append(d.score)
        tiers.append(d.tier)
        rules.append(sorted({str(h["id"]) for h in d.rule_hits}))
        users.append(d.txn.user_id)
        days.append(day_of(d.txn.ts))
        n = len(y) - 1
        for name, v in d.detector_scores.items():
            col = detectors.get(name)
            if col is None:  # a detector missing from earlier decisions scored 0 there
                col = detectors[name] = [0.0] * n
            elif len(col) < n:
                col.extend([0.0] * (n - len(col)))
            col.append(v)
    for col in detectors.values():
        if len(col) < len(y):
            col.extend([0.0] * (len(y) - len(col)))
    m = compute(y, score, tiers=tiers, rules=rules, users=users, days=days, detectors=detectors)
    if not y:  # no labels at all: the card shows alert volume over every decision
        m.card = unlabelled_card(decisions)
        m.card_labelled = False
    return Graded(m, y, score, unlabelled, pending, days)


def unlabelled_card(decisions: Sequence[Decision]) -> list[Any]:
    """Report card rows with alert volume only (ensemble alerts, rule hits)."""
    return report_card(
        None,
        [d.score for d in decisions],
        detectors={name: [] for name in {k for d in decisions for k in d.detector_scores}},
        rules=[sorted({str(h["id"]) for h in d.rule_hits}) for d in decisions],
        alerted=[d.is_alert for d in decisions],
    )


def card_text(m: Metrics, total: int) -> list[str]:
    """The report card as stdout lines (``total``: decisions, for shares without labels)."""

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    n = max(m.transactions if m.card_labelled else total, 1)
    w = max([30, *(len(r.name) + 2 for r in m.card)])
    head = "  report card" + " " * (w - 3) + "AP   ROC AUC  recall@review   flagged"
    if not m.card_labelled:
        lines = ["  report card      no labels: alert volume only"]
        lines += [
            f"    {r.name:<{w}}{r.flagged:>10,} ({r.flagged / n:.2%})"
            for r in m.card
            if r.flagged is not None
        ]
        return lines
    lines = [head + f"  (review rate {f(m.alert_rate)})"]
    for r in m.card:
        flagged = "-" if r.flagged is None else f"{r.flagged:,} ({r.flagged / n:.2%})"
        lines.append(
            f"    {r.name:<{w}}{f(r.average_precision):>8}{f(r.roc_auc):>10}"
            f"{f(r.recall_at_review):>15}   {flagged}"
        )
    return lines


def summary_text(r: Replay, g: Graded) -> str:
    """The stdout table."""
    m = g.metrics

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    dead = Counter(d.code for d in r.dead_letters)
    lines = [
        "fraudflow backtest",
        f"  decisions        {len(r.decisions):,} (dead-lettered {len(r.dead_letters):,}"
        + (f": {', '.join(f'{k} {v}' for k, v in sorted(dead.items()))}" if dead else "")
        + ")",
        f"  labelled         {m.transactions:,} ({m.frauds:,} fraud; {g.unlabelled:,} unlabelled; "
        f"{g.labels_pending:,} labels not yet known at the last event)",
        f"  versions         rules {r.rules_version} | model {r.model_version}",
        *(
            [f"  feedback         {r.stats.labels_n:,} labels learned as they became known"]
            if r.stats.labels_n
            else []
        ),
        f"  alert rate       {f(m.alert_rate)}",
        f"  review+          precision {f(m.review.precision)}  recall {f(m.review.recall)}  "
        f"F1 {f(m.review.f1)}  ({m.review.flagged:,} alerts)",
        f"  block            precision {f(m.block.precision)}  recall {f(m.block.recall)}  "
        f"F1 {f(m.block.f1)}  ({m.block.flagged:,} blocks)",
        f"  ROC AUC          {f(m.roc_auc)}",
        f"  avg precision    {f(m.average_precision)}",
        "  precision@K      " + "  ".join(f"@{k} {f(v)}" for k, v in m.precision_at.items()),
        "  recall@K         " + "  ".join(f"@{k} {f(v)}" for k, v in m.recall_at.items()),
        f"  card prec.@100   {f(m.mean_card_precision)} (mean over "
        f"{len(m.card_precision_at_100)} days)",
    ]
    if m.rules:
        lines.append("  rules" + " " * 28 + "hits  fraud  precision  only-this-rule")
        for rid, s in m.rules.items():
            lines.append(
                f"    {rid:<30}{s.hits:>6,} {s.fraud_hits:>6,}  {f(s.precision):>9}  "
                f"{s.only_this_rule:>6,}"
            )
    lines += card_text(m, len(r.decisions))
    return "\n".join(lines)


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
        help="first Kafka record time to replay (RFC 3339 or epoch ms) [topic start]",
    )  # fmt: skip
    p.add_argument(
        "--to", dest="end", metavar="TIME",
        help="replay records before this Kafka record time [topic end]",
    )  # fmt: skip
    p.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help='JSON lines {"transaction_id", "label": 0|1, "label_time"?} '
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
        help="replay again with these rules (a directory) or settings (a YAML file) "
        "and print the differences",
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
        start_ms, end_ms = _millis(args.start), _millis(args.end)
    except (ConfigError, ValueError) as exc:
        return fail(str(exc))
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
        return _backtest(args, settings, paths, title)


def _millis(text: str | None) -> int | None:
    """RFC 3339 (with zone) or epoch milliseconds to epoch milliseconds."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    t = parse_time(text)
    if t is None:
        raise ConfigError(f"not a time: {text!r} (use RFC 3339 with a zone, or epoch ms)")
    return int(t * 1000)


def _backtest(args: argparse.Namespace, settings: Settings, paths: list[Path], title: str) -> int:
    total = sum(count_records(p) for p in paths)
    labels = read_labels([args.labels] if args.labels else paths)
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
        print(compare_text(base, base_graded, result, graded, labels=labels, name="feedback on"))
    if args.compare is not None:
        try:
            other = compare_settings(args, settings, args.compare)
        except ConfigError as exc:
            return fail(str(exc))
        result_b = replay(other, input_source(paths), total=total, progress=progress)
        graded_b = grade(result_b.decisions, labels, args.label_delay)
        print()
        print(
            compare_text(result, graded, result_b, graded_b, labels=labels, name=str(args.compare))
        )
    return 0


def compare_settings(args: argparse.Namespace, base: Settings, what: Path) -> Settings:
    """The base settings with other rules (a directory) or another config file."""
    if what.is_dir():
        return base.replace(rules=what)
    if what.is_file():
        flags = {n: getattr(args, n) for n in SETTINGS if getattr(args, n, None) is not None}
        return load_settings(what, flags).replace(recovery_dir=None)
    raise ConfigError(f"--compare {what}: no such directory or file")


def compare_text(
    ra: Replay, ga: Graded, rb: Replay, gb: Graded, *, labels: Mapping[str, LabelInfo], name: str
) -> str:
    """Metric and per-rule deltas of run B against run A, and the alerts B adds and drops."""
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
        f"compare: current vs {name} (rules {ra.rules_version} -> {rb.rules_version})",
        f"  this change would add {len(added):,} alerts, {fraud(added):,} of them fraud, "
        f"and drop {len(dropped):,}, {fraud(dropped):,} of them fraud",
        f"  {'metric':<22}{'current':>10}{'compare':>10}{'delta':>10}",
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

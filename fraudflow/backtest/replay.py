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

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from bytewax.inputs import Source
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from fraudflow.backtest.evaluation import read_jsonl
from fraudflow.backtest.labels import label_known_at, label_of, parse_time
from fraudflow.backtest.metrics import Metrics, compute, report_card
from fraudflow.config.settings import Settings
from fraudflow.connectors.csv_source import CsvSource, read_csv_records
from fraudflow.connectors.files import FilePartition, FileSource, JsonLinesSource, Values
from fraudflow.flows.detection import build_flow
from fraudflow.flows.io import FlowIO
from fraudflow.flows.wiring import run_flow
from fraudflow.observability.progress import ProgressBar, ticking
from fraudflow.observability.stats import RunStats
from fraudflow.records import DeadLetter, Decision, iso


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


@dataclass(frozen=True)
class Window:
    """``--from``/``--to`` over a file's event times (epoch ms, ``start`` inclusive, ``end``
    exclusive). A record without a readable ``timestamp`` is not outside: the flow
    dead-letters it as it would without a window (label lines carry none either)."""

    start_ms: int | None = None
    end_ms: int | None = None

    def outside(self, line: bytes) -> bool:
        _tid, ts = _event_time(line)
        if ts is None:
            return False
        ms = round(ts * 1000)
        return (self.start_ms is not None and ms < self.start_ms) or (
            self.end_ms is not None and ms >= self.end_ms
        )


class _WindowedSource(FileSource):
    """A file source whose records outside a :class:`Window` are skipped; each skipped
    record keeps its offset (it reads as a blank line), so offsets still name input lines."""

    def __init__(self, kind: type[FileSource], paths: Sequence[Path], window: Window) -> None:
        super().__init__(paths)
        self._kind, self._window = kind, window

    def _open(self, path: Path) -> tuple[IO[Any], Values]:
        f, values = self._kind.open_values(path)
        outside = self._window.outside
        return f, (None if v is None or outside(v) else v for v in values)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> FilePartition:
        return FilePartition(self._paths[for_part], self._open, resume_state, self._batch)


def input_source(paths: Sequence[Path], window: Window | None = None) -> Source[Any]:
    """CSV for ``.csv`` files, JSON lines otherwise; one partition per file; with
    ``window``, only the records whose event time is inside it."""
    kind = _source_class(paths[0])
    if window is None or (window.start_ms is None and window.end_ms is None):
        return kind(paths)
    return _WindowedSource(kind, paths, window)


def outside_window(paths: Sequence[Path], window: Window) -> tuple[int, set[str]]:
    """How many records of the files lie outside ``window``, and their transaction ids."""
    n, ids = 0, set()
    for path in paths:
        for _clock, tid, _ts, line in _scan(path):
            if window.outside(line):
                n += 1
                if tid is not None:
                    ids.add(tid)
    return n, ids


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
        t = parse_time(ts, "timestamp")
    except (orjson.JSONDecodeError, AttributeError, ValueError, TypeError):
        return None, None
    return (tid if isinstance(tid, str) else None), t


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
) -> Replay:
    """Run the detection flow over ``source`` in this process and collect its outputs."""
    decisions: list[Decision] = []
    dead: list[DeadLetter] = []
    io = FlowIO(
        source=source,
        alerts=DiscardSink(),
        dead_letters=CollectSink(dead),
        decisions=[("scores", CollectSink(decisions))],
        require_key=False,
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
        "rules": sorted({h.rule_id for h in d.rule_hits}),
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
        out[tid] = LabelInfo(lab, parse_time(rec.get("label_time", rec.get("reported_at"))))
    return out


def read_label_file(path: Path) -> dict[str, LabelInfo]:
    """A ``--labels`` file, strictly: every line (JSONL) or row (CSV) must carry a
    ``transaction_id`` and a label (0/1, "fraud"/"legit"); the first that does not raises
    ``ValueError`` naming the file and line. ``label_time`` or ``reported_at`` is optional."""
    if path.suffix.lower() == ".csv":
        numbered: Iterator[tuple[int, Any]] = (
            (i + 2, r) for i, r in enumerate(read_csv_records(path))
        )
    else:
        numbered = _json_lines(path)
    out: dict[str, LabelInfo] = {}
    for line, rec in numbered:
        if not isinstance(rec, dict):
            raise ValueError(f"--labels {path}, line {line}: not a JSON object")
        tid, lab = rec.get("transaction_id"), label_of(rec)
        if not isinstance(tid, str) or not tid:
            raise ValueError(f"--labels {path}, line {line}: no transaction_id")
        if lab is None:
            raise ValueError(
                f"--labels {path}, line {line}: label {rec.get('label', rec.get('_label'))!r} "
                'is not 0, 1, "fraud" or "legit"'
            )
        try:
            when = parse_time(rec.get("label_time", rec.get("reported_at")))
        except ValueError as exc:
            raise ValueError(f"--labels {path}, line {line}: {exc}") from None
        out.setdefault(tid, LabelInfo(lab, when))
    if not out:
        raise ValueError(f"--labels {path}: no labels in the file")
    return out


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as f:
        for i, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                yield i, orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise ValueError(f"--labels {path}, line {i}: not JSON") from None


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
        rules.append(sorted({h.rule_id for h in d.rule_hits}))
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
        rules=[sorted({h.rule_id for h in d.rule_hits}) for d in decisions],
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


def summary_text(r: Replay, g: Graded, outside: tuple[int, str] | None = None) -> str:
    """The stdout table; ``outside``: records left out by ``--from``/``--to`` and the range."""
    m = g.metrics

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    dead = Counter(d.code for d in r.dead_letters)
    cut = []
    if outside is not None:
        n, span = outside
        cut.append(
            f"  outside range    {n:,} records with an event time outside {span}, not scored"
        )
    lines = [
        "fraudflow backtest",
        f"  decisions        {len(r.decisions):,} (dead-lettered {len(r.dead_letters):,}"
        + (f": {', '.join(f'{k} {v}' for k, v in sorted(dead.items()))}" if dead else "")
        + ")",
        *cut,
        "  alerts           " + _alert_volume(r.decisions),
        f"  labelled         {m.transactions:,} ({m.frauds:,} fraud; {g.unlabelled:,} unlabelled; "
        f"{g.labels_pending:,} labels not yet known at the last event)",
        f"  versions         rules {r.rules_version} | model {r.model_version}",
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


def _alert_volume(decisions: Sequence[Decision]) -> str:
    """Review and block counts over every decision, whether labelled or not."""
    tiers = Counter(d.tier for d in decisions)
    alerts = sum(1 for d in decisions if d.is_alert)
    return (
        f"{alerts:,} ({tiers.get('review', 0):,} review, {tiers.get('block', 0):,} block; "
        f"{alerts / max(len(decisions), 1):.2%} of all decisions, labelled or not)"
    )


def top_scored(
    decisions: Sequence[Decision], labels: Mapping[str, LabelInfo], n: int = 20
) -> tuple[list[str], list[list[str]]]:
    """The ``n`` highest-scored decisions as a report table (ties in source order)."""
    ranked = sorted(range(len(decisions)), key=lambda i: (-decisions[i].score, i))[:n]
    rows = []
    for i in ranked:
        d = decisions[i]
        t = d.txn
        top = max(d.reasons, key=lambda r: r.contribution, default=None)
        info = labels.get(t.transaction_id)
        rows.append(
            [
                t.transaction_id,
                t.user_id,
                iso(t.ts),
                f"{t.amount:,.2f} {t.currency}",
                f"{d.score:.4f}",
                d.tier,
                "-" if top is None else top.code,
                "-" if info is None else ("fraud" if info.label == 1 else "legit"),
            ]
        )
    head = ["transaction_id", "user", "time", "amount", "score", "tier", "top reason", "label"]
    return head, rows


def event_range(decisions: Sequence[Decision]) -> tuple[float, float] | None:
    """The first and last event time among the decisions."""
    if not decisions:
        return None
    ts = [d.txn.ts for d in decisions]
    return min(ts), max(ts)

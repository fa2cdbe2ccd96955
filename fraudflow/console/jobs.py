"""Rule backtests as background jobs: replay stored decisions with a proposed rule set.

The stored ``decisions`` rows keep the transaction's id, user, amount,
currency, merchant, country and event time, not every input field (device,
category, channel, location are not stored). A job rebuilds those
transactions in event-time order and runs them twice through the production
flow (:func:`fraudflow.flows.detection.build_flow`, the engine ``fraudflow
backtest`` uses), once with the rules in force and once with the proposed
ones, and reports the alerts the change adds and drops. Both runs see the same
reduced records, so the difference is the rules' own; rules that read fields
the store does not keep cannot fire in either run (docs/console.md says so).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from fraudflow.backtest.replay import CollectSink, DiscardSink
from fraudflow.config.settings import Settings
from fraudflow.connectors.files import JsonLinesSource
from fraudflow.console.store import Row, Store
from fraudflow.flows.detection import build_flow
from fraudflow.flows.io import FlowIO
from fraudflow.flows.wiring import run_flow
from fraudflow.operators.features.catalogue import feature_catalogue
from fraudflow.records import DeadLetter, Decision
from fraudflow.rules.errors import Diagnostic
from fraudflow.rules.loader import load_directory

MAX_RECORDS = 500_000
KEEP_JOBS = 20
SHOWN = 200  # added/dropped alerts listed in a result


class RulesProposalError(ValueError):
    """A proposed rule file has a bad name; the message names it."""


def overlay_rules(current: Path, files: Mapping[str, str], dest: Path) -> Path:
    """A copy of the rule directory ``current`` with ``files`` (name -> YAML text) written
    over it (a file with empty text is removed); list files keep resolving."""
    shutil.copytree(current, dest)
    for name, text in files.items():
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts or not name or p.suffix not in (".yaml", ".yml"):
            raise RulesProposalError(f"files: {name!r} must be a relative .yaml path")
        target = dest.joinpath(*p.parts)
        if text == "":
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return dest


def check_rules(settings: Settings, files: Mapping[str, str]) -> dict[str, Any]:
    """The checker of ``fraudflow rules check`` on the rules in force with ``files`` over them."""
    catalogue = feature_catalogue(settings.features.windows)
    with tempfile.TemporaryDirectory(prefix="fraudflow-rules-") as tmp:
        d = overlay_rules(settings.rules.rules, files, Path(tmp) / "rules")
        result = load_directory(d, catalogue)
    return {
        "ok": result.ruleset is not None,
        "version": result.version,
        "rules": len(result.ruleset) if result.ruleset is not None else 0,
        "diagnostics": [diagnostic_json(x, d) for x in result.diagnostics],
    }


def diagnostic_json(d: Diagnostic, root: Path) -> dict[str, Any]:
    """A diagnostic with its file named relative to the (temporary) rule directory."""
    try:
        name = Path(d.file).relative_to(root).as_posix()
    except ValueError:
        name = d.file
    return {"file": name, "line": d.line, "column": d.column, "message": d.message}


def transaction_record(row: Row) -> dict[str, Any]:
    """A stored decision row as an input transaction (the fields the store keeps)."""
    rec: dict[str, Any] = {
        "transaction_id": row["transaction_id"],
        "user_id": row["user_id"],
        "amount": row["amount"],
        "currency": row["currency"],
        "timestamp": round(row["event_time"].timestamp() * 1000),
    }
    for k in ("merchant_id", "country"):
        if row.get(k) is not None:
            rec[k] = row[k]
    return rec


@dataclass
class Job:
    """One backtest: its state, progress in [0, 1] and, when done, its result."""

    id: str
    author: str
    since: datetime
    until: datetime
    status: str = "queued"  # queued | running | done | failed
    phase: str = "waiting"
    progress: float = 0.0
    records: int = 0
    created: float = field(default_factory=time.time)
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    diagnostics: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "status": self.status,
            "phase": self.phase,
            "progress": round(self.progress, 4),
            "records": self.records,
            "author": self.author,
            "from": self.since.isoformat(),
            "to": self.until.isoformat(),
            "result": self.result,
            "error": self.error,
            "diagnostics": self.diagnostics,
        }


def _replay(settings: Settings, path: Path, tick: Callable[[int], None]) -> list[Decision]:
    """The production flow over a JSON-lines file, in this thread, collecting decisions."""
    decisions: list[Decision] = []
    dead: list[DeadLetter] = []
    io = FlowIO(
        source=JsonLinesSource([path]),
        alerts=DiscardSink(),
        dead_letters=CollectSink(dead),
        decisions=[("scores", CollectSink(decisions))],
        require_key=False,
    )
    flow = build_flow(settings, io, flow_id=f"console-backtest-{uuid.uuid4().hex[:8]}")
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.2):
            tick(io.stats.received_n)

    w = threading.Thread(target=watch, name="backtest-progress", daemon=True)
    w.start()
    try:
        run_flow(flow, settings)
    finally:
        stop.set()
        w.join()
    tick(io.stats.received_n)
    return decisions


def _alert_row(d: Decision, other: Decision | None) -> dict[str, Any]:
    return {
        "transaction_id": d.txn.transaction_id,
        "user_id": d.txn.user_id,
        "amount": d.txn.amount,
        "tier": d.tier,
        "score": round(d.score, 4),
        "score_before": None if other is None else round(other.score, 4),
        "rule_ids": [h.rule_id for h in d.rule_hits],
    }


def compare(
    current: list[Decision], proposed: list[Decision], verdicts: Mapping[str, str]
) -> dict[str, Any]:
    """What the proposed rules add and drop against the current ones (pure)."""
    a = {d.txn.transaction_id: d for d in current}
    b = {d.txn.transaction_id: d for d in proposed}
    alerted_a = {t for t, d in a.items() if d.is_alert}
    alerted_b = {t for t, d in b.items() if d.is_alert}
    added = sorted(alerted_b - alerted_a, key=lambda t: -b[t].score)
    dropped = sorted(alerted_a - alerted_b, key=lambda t: -a[t].score)

    def confirmed(ids: list[str]) -> dict[str, int]:
        c = Counter(verdicts[t] for t in ids if t in verdicts)
        return {"fraud": c["fraud"], "legit": c["legit"]}

    hits_a = Counter(h.rule_id for d in current for h in d.rule_hits)
    hits_b = Counter(h.rule_id for d in proposed for h in d.rule_hits)
    rules = [
        {"rule_id": r, "hits_current": hits_a[r], "hits_proposed": hits_b[r]}
        for r in sorted(set(hits_a) | set(hits_b))
        if hits_a[r] != hits_b[r]
    ]
    return {
        "transactions": len(b),
        "alerts_current": len(alerted_a),
        "alerts_proposed": len(alerted_b),
        "added": len(added),
        "dropped": len(dropped),
        "added_confirmed": confirmed(added),
        "dropped_confirmed": confirmed(dropped),
        "rules_changed": rules,
        "added_alerts": [_alert_row(b[t], a.get(t)) for t in added[:SHOWN]],
        "dropped_alerts": [_alert_row(a[t], b.get(t)) for t in dropped[:SHOWN]],
    }


class BacktestJobs:
    """Runs one backtest at a time in a background thread; keeps the last ``KEEP_JOBS``."""

    def __init__(self, settings: Settings, store: Store, max_records: int = MAX_RECORDS) -> None:
        self.settings = settings.replace(recovery_dir=None)
        self.store = store
        self.max_records = max_records
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def start(self, author: str, since: datetime, until: datetime, files: Mapping[str, str]) -> Job:
        job = Job(uuid.uuid4().hex, author, since, until)
        with self._lock:
            self._jobs[job.id] = job
            for old in sorted(self._jobs.values(), key=lambda j: j.created)[:-KEEP_JOBS]:
                del self._jobs[old.id]
        t = threading.Thread(
            target=self._run, args=(job, dict(files)), name=f"backtest-{job.id[:8]}", daemon=True
        )
        t.start()
        return job

    def _run(self, job: Job, files: dict[str, str]) -> None:
        with self._run_lock:  # one replay at a time: each one is CPU-bound
            job.status = "running"
            try:
                self._backtest(job, files)
                job.status = "done"
            except Exception as exc:  # a job reports its failure; the server goes on
                job.status = "failed"
                job.error = f"{type(exc).__name__}: {exc}"
            finally:
                job.finished = time.time()
                job.phase = job.status

    def _backtest(self, job: Job, files: dict[str, str]) -> None:
        job.phase = "reading stored decisions"
        rows = self.store.decisions_between(job.since, job.until, self.max_records + 1)
        if len(rows) > self.max_records:
            raise ValueError(
                f"more than {self.max_records:,} decisions in the range; choose a shorter one"
            )
        job.records = len(rows)
        catalogue = feature_catalogue(self.settings.features.windows)
        with tempfile.TemporaryDirectory(prefix="fraudflow-backtest-") as tmp:
            base = Path(tmp)
            proposed_dir = overlay_rules(self.settings.rules.rules, files, base / "rules")
            checked = load_directory(proposed_dir, catalogue)
            if checked.ruleset is None:
                job.diagnostics = [diagnostic_json(d, proposed_dir) for d in checked.diagnostics]
                raise ValueError("the proposed rules do not check (see diagnostics)")
            path = base / "transactions.jsonl"
            with path.open("wb") as f:
                for r in rows:
                    f.write(orjson.dumps(transaction_record(r)) + b"\n")
            total = max(len(rows), 1)

            def ticker(offset: float) -> Callable[[int], None]:
                def tick(n: int) -> None:
                    job.progress = min(1.0, offset + 0.5 * n / total)

                return tick

            job.phase = "replaying with the rules in force"
            current = _replay(self.settings, path, ticker(0.0))
            job.phase = "replaying with the proposed rules"
            proposed = _replay(self.settings.replace(rules=proposed_dir), path, ticker(0.5))
        verdicts = self.store.labels_of([d.txn.transaction_id for d in current])
        result = compare(current, proposed, verdicts)
        result["rules_version_current"] = current[0].rules_version if current else ""
        result["rules_version_proposed"] = checked.version
        job.result = result
        job.progress = 1.0

"""``fraudflow evaluate``: alerts against ground truth: recall, precision, alert rate.

The maths is :func:`evaluate`, a pure function of alert dicts and truth
dicts; reading files and Kafka topics are small functions beside it.

Alerts are the flow's alert records (``transaction_id``, ``tier``, ``score``,
``alert_id``), from a JSONL file or read from a Kafka topic up to the end of
every partition. The flow delivers at least once, so the same alert may arrive
twice: records are deduplicated on ``alert_id`` (consumers of the alerts topic
should do the same). A record without ``alert_id`` (e.g. a backtest scores
file) is keyed by its ``transaction_id``; records with tier ``approve`` are
not alerts and are ignored. A transaction counts as alerted once, at the
highest tier any of its alerts has.

Ground truth is either the ``--truth`` file written by ``fraudflow produce``
(``label``, ``scenario``) or the generated records themselves (``_label``,
``_scenario``); lines without a label (bad records) are skipped and a repeated
``transaction_id`` (a re-sent duplicate) counts once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fraudflow.records import TIER_RANK

ALERT_TIERS = ("review", "block")


@dataclass(frozen=True)
class ScenarioResult:
    """Detection of one scenario (for ``normal``: false alerts)."""

    labelled: int
    alerted: int
    blocked: int

    @property
    def share(self) -> float | None:
        """Alerted share: recall for a fraud scenario, false-alert rate for ``normal``."""
        return self.alerted / self.labelled if self.labelled else None


@dataclass(frozen=True)
class EvalResult:
    """Alert quality over one set of transactions."""

    transactions: int  # distinct labelled transactions in the ground truth
    anomalies: int  # of them with label 1
    alert_records: int  # alert records read with tier review or block
    alerts: int  # distinct alert_ids among them
    alerted_transactions: int  # distinct transaction_ids alerted that are in the ground truth
    unknown_transactions: int  # distinct transaction_ids alerted that are not
    ignored_records: int  # tier approve, or no transaction_id
    true_positives: int  # label-1 transactions alerted (review or block)
    blocked_anomalies: int  # label-1 transactions blocked
    by_scenario: dict[str, ScenarioResult] = field(default_factory=dict)

    @property
    def duplicate_records(self) -> int:
        """Alert records that repeated an alert_id already seen (at-least-once delivery)."""
        return self.alert_records - self.alerts

    @property
    def alert_rate(self) -> float | None:
        return self.alerted_transactions / self.transactions if self.transactions else None

    @property
    def recall(self) -> float | None:
        """Share of label-1 transactions with an alert of tier review or block."""
        return self.true_positives / self.anomalies if self.anomalies else None

    @property
    def block_recall(self) -> float | None:
        return self.blocked_anomalies / self.anomalies if self.anomalies else None

    @property
    def precision(self) -> float | None:
        """Share of alerted (known) transactions that are label 1."""
        return (
            self.true_positives / self.alerted_transactions if self.alerted_transactions else None
        )

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None
        return 2 * p * r / (p + r)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["by_scenario"] = {
            name: {**asdict(s), "share": _round(s.share)}
            for name, s in sorted(self.by_scenario.items())
        }
        for name in (
            "duplicate_records",
            "alert_rate",
            "recall",
            "block_recall",
            "precision",
            "f1",
        ):
            d[name] = _round(getattr(self, name))
        return d


def _round(x: float | int | None) -> float | int | None:
    return round(x, 6) if isinstance(x, float) else x


def _label(rec: Mapping[str, Any]) -> tuple[int, str] | None:
    """(label, scenario) of a truth line or a generated record; None if it has no label."""
    label = rec.get("label", rec.get("_label"))
    if label not in (0, 1) or isinstance(label, bool):
        return None
    scenario = rec.get("scenario", rec.get("_scenario"))
    if not isinstance(scenario, str) or not scenario:
        scenario = "normal" if label == 0 else "unknown"
    return int(label), scenario


def evaluate(alerts: Iterable[Mapping[str, Any]], truth: Iterable[Mapping[str, Any]]) -> EvalResult:
    """Recall, precision and alert rate of ``alerts`` against ``truth`` (see the module doc).

    >>> truth = [{"transaction_id": "a", "label": 1, "scenario": "card_testing"},
    ...          {"transaction_id": "b", "label": 0, "scenario": "normal"}]
    >>> alerts = [{"alert_id": "x", "transaction_id": "a", "tier": "block"},
    ...           {"alert_id": "x", "transaction_id": "a", "tier": "block"}]
    >>> r = evaluate(alerts, truth)
    >>> r.recall, r.precision, r.alert_rate, r.alerts, r.duplicate_records
    (1.0, 1.0, 0.5, 1, 1)
    """
    labels: dict[str, tuple[int, str]] = {}
    for rec in truth:
        tid = rec.get("transaction_id")
        lab = _label(rec)
        if isinstance(tid, str) and lab is not None and tid not in labels:
            labels[tid] = lab

    records = 0
    ignored = 0
    alert_ids: set[str] = set()
    best_tier: dict[str, int] = {}  # transaction_id -> highest tier rank alerted
    for a in alerts:
        tid, tier = a.get("transaction_id"), a.get("tier")
        if not isinstance(tid, str) or tier not in ALERT_TIERS:
            ignored += 1
            continue
        records += 1
        aid = a.get("alert_id")
        alert_ids.add(aid if isinstance(aid, str) and aid else f"txn:{tid}")
        rank = TIER_RANK[tier]
        if rank > best_tier.get(tid, -1):
            best_tier[tid] = rank

    block = TIER_RANK["block"]
    labelled: Counter[str] = Counter()
    alerted: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    anomalies = tp = blocked_anomalies = 0
    for tid, (label, scenario) in labels.items():
        labelled[scenario] += 1
        anomalies += label
        best = best_tier.get(tid)
        if best is not None:
            alerted[scenario] += 1
            tp += label
            if best >= block:
                blocked[scenario] += 1
                blocked_anomalies += label
    known_alerted = sum(1 for tid in best_tier if tid in labels)
    return EvalResult(
        transactions=len(labels),
        anomalies=anomalies,
        alert_records=records,
        alerts=len(alert_ids),
        alerted_transactions=known_alerted,
        unknown_transactions=len(best_tier) - known_alerted,
        ignored_records=ignored,
        true_positives=tp,
        blocked_anomalies=blocked_anomalies,
        by_scenario={
            s: ScenarioResult(labelled[s], alerted[s], blocked[s]) for s in sorted(labelled)
        },
    )


@dataclass(frozen=True)
class Check:
    name: str
    limit: float
    value: float | None
    passed: bool

    def text(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.4f}"
        op = ">=" if self.name.startswith("min") else "<="
        status = "ok  " if self.passed else "FAIL"
        return f"{status} {self.name.replace('_', '-')}: {shown} {op} {self.limit}"


def checks(
    result: EvalResult,
    *,
    min_recall: float | None = None,
    max_alert_rate: float | None = None,
    min_precision: float | None = None,
) -> list[Check]:
    """The thresholds asked for, each passed or not (an undefined value fails)."""
    out = []
    for name, limit, value, is_min in (
        ("min_recall", min_recall, result.recall, True),
        ("min_precision", min_precision, result.precision, True),
        ("max_alert_rate", max_alert_rate, result.alert_rate, False),
    ):
        if limit is None:
            continue
        ok = value is not None and (value >= limit if is_min else value <= limit)
        out.append(Check(name, limit, value, ok))
    return out


# --- reading ---------------------------------------------------------------------


def read_jsonl(path: Path, skipped: Counter[str] | None = None) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; other lines are counted in ``skipped``."""
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                yield obj
            elif skipped is not None:
                skipped[str(path)] += 1


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def report(result: EvalResult, results: list[Check]) -> str:
    """The human-readable evaluation table."""
    r = result

    def row(label: str, value: str, note: str = "") -> str:
        return f"  {label:<22}{value:>10}   {note}".rstrip()

    share = r.anomalies / r.transactions if r.transactions else None
    lines = [
        "fraudflow evaluate",
        row("transactions", f"{r.transactions:,}"),
        row("labelled anomalies", f"{r.anomalies:,}", f"({_pct(share)})"),
        row(
            "alerts",
            f"{r.alerts:,}",
            f"distinct alert_ids ({r.alert_records:,} records, "
            f"{r.duplicate_records:,} duplicates deduped)",
        ),
        row("alerted transactions", f"{r.alerted_transactions:,}"),
        row("alert rate", _pct(r.alert_rate), "(alerted / transactions)"),
        row("recall (review+block)", _pct(r.recall), f"({r.true_positives:,}/{r.anomalies:,})"),
        row("recall (block)", _pct(r.block_recall), f"({r.blocked_anomalies:,}/{r.anomalies:,})"),
        row("precision", _pct(r.precision), f"({r.true_positives:,}/{r.alerted_transactions:,})"),
        row("f1", "n/a" if r.f1 is None else f"{r.f1:.3f}"),
        f"  {'by scenario':<30}{'labelled':>10}{'alerted':>10}{'blocked':>10}{'share':>9}",
    ]
    for name, s in sorted(r.by_scenario.items(), key=lambda kv: (kv[0] == "normal", kv[0])):
        label = "normal (false alerts)" if name == "normal" else name
        lines.append(
            f"    {label:<28}{s.labelled:>10,}{s.alerted:>10,}{s.blocked:>10,}{_pct(s.share):>9}"
        )
    if r.unknown_transactions:
        lines.append(
            f"  alerts on transactions not in the ground truth: {r.unknown_transactions:,}"
            " (not counted)"
        )
    if r.ignored_records:
        lines.append(
            f"  records ignored (tier approve or no transaction_id): {r.ignored_records:,}"
        )
    lines.extend("  " + c.text() for c in results)
    return "\n".join(lines)

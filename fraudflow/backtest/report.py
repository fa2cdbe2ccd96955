"""``--report DIR``: report.md (plots as PNG files beside it) and a self-contained report.html.

Plots are drawn with matplotlib's Agg backend (no display needed); the HTML
embeds them as base64 so it can be mailed or attached as one file.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import orjson

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from fraudflow.backtest.metrics import Confusion, Metrics, pr_curve, roc_curve

Table = tuple[list[str], list[list[str]]]


def _fmt(x: float | int | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.4f}"


def _rates(c: Confusion) -> list[str]:
    return [_fmt(c.precision), _fmt(c.recall), _fmt(c.f1)]


def tables(m: Metrics) -> dict[str, Table]:
    """The report's tables as (header, rows), shared by Markdown and HTML."""
    out: dict[str, Table] = {
        "Summary": (
            ["metric", "value"],
            [
                ["labelled transactions", _fmt(m.transactions)],
                ["frauds", _fmt(m.frauds)],
                ["alert rate (tier >= review)", _fmt(m.alert_rate)],
                ["ROC AUC", _fmt(m.roc_auc)],
                ["average precision", _fmt(m.average_precision)],
                ["mean card precision@100 per day", _fmt(m.mean_card_precision)],
            ],
        ),
        "Report card": card_table(m),
        "Tiers": (
            ["threshold", "flagged", "true positives", "precision", "recall", "F1"],
            [
                [name, *(_fmt(v) for v in (c.flagged, c.true_positives)), *_rates(c)]
                for name, c in (("review or block", m.review), ("block", m.block))
            ],
        ),
        "Top K": (
            ["K", "precision@K", "recall@K"],
            [[str(k), _fmt(m.precision_at[k]), _fmt(m.recall_at[k])] for k in m.precision_at],
        ),
        "Rules": (
            ["rule", "hits", "fraud hits", "precision", "frauds only this rule hit"],
            [
                [rid, _fmt(s.hits), _fmt(s.fraud_hits), _fmt(s.precision), _fmt(s.only_this_rule)]
                for rid, s in m.rules.items()
            ],
        ),
        "Per day": (
            ["day", "alerts", "card precision@100"],
            [
                [d, _fmt(m.alerts_per_day.get(d, 0)), _fmt(m.card_precision_at_100.get(d))]
                for d in sorted(set(m.alerts_per_day) | set(m.card_precision_at_100))
            ],
        ),
    }
    return out


def card_table(m: Metrics) -> Table:
    """Per detector, rule and the ensemble: AP, ROC AUC, recall at the review rate, flagged.

    Without labels only the alert volume (ensemble alerts, rule hits) is shown.
    """
    if not m.card_labelled:
        return (
            ["detector (no labels: alert volume only)", "kind", "flagged"],
            [[r.name, r.kind, _fmt(r.flagged)] for r in m.card if r.flagged is not None],
        )
    n = max(m.transactions, 1)
    return (
        [
            "detector",
            "kind",
            "average precision",
            "ROC AUC",
            f"recall at review rate {_fmt(m.alert_rate)}",
            "flagged",
            "flagged share",
        ],
        [
            [
                r.name,
                r.kind,
                _fmt(r.average_precision),
                _fmt(r.roc_auc),
                _fmt(r.recall_at_review),
                _fmt(r.flagged),
                "-" if r.flagged is None else f"{r.flagged / n:.2%}",
            ]
            for r in m.card
        ],
    )


def plots(
    m: Metrics,
    y: Sequence[int],
    score: Sequence[float],
    *,
    thresholds: Thresholds | None = None,
    all_scores: Sequence[float] = (),
) -> dict[str, bytes]:
    """PNG bytes by file name: PR curve, ROC curve, alerts per day, score histogram by label
    (every decision's score when none is labelled), the review and block thresholds drawn."""
    ya = np.asarray(y, dtype=np.int64)
    sa = np.asarray(score, dtype=np.float64)
    out: dict[str, bytes] = {}

    def save(name: str, fig: Figure) -> None:
        out[name] = _png(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    if ya.size:
        recall, precision = pr_curve(ya, sa)
        ax.step(recall, precision, where="post")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        title=f"Precision-recall (AP {_fmt(m.average_precision)})",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    save("pr_curve.png", fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    if ya.size:
        fpr, tpr = roc_curve(ya, sa)
        ax.plot(fpr, tpr)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(
        xlabel="false-positive rate",
        ylabel="true-positive rate",
        title=f"ROC (AUC {_fmt(m.roc_auc)})",
    )
    save("roc_curve.png", fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    days = list(m.alerts_per_day)
    ax.bar(range(len(days)), list(m.alerts_per_day.values()))
    step = max(1, len(days) // 12)
    ax.set_xticks(range(0, len(days), step), days[::step], rotation=45, ha="right")
    ax.set(ylabel="alerts", title="Alerts per day (tier >= review)")
    save("alerts_per_day.png", fig)

    save("score_histogram.png", score_histogram(ya, sa, thresholds, all_scores))
    return out


def score_histogram(
    y: npt.NDArray[np.int64],
    score: npt.NDArray[np.float64],
    thresholds: Thresholds | None,
    all_scores: Sequence[float] = (),
) -> Figure:
    """Score density by label (every score when none is labelled), with the review and
    block thresholds as vertical lines."""
    ya, sa = y, score
    fig, ax = plt.subplots(figsize=(6, 3.5))
    every = np.asarray(all_scores, dtype=np.float64)
    top = max([1.0, *(float(a.max()) for a in (sa, every) if a.size)])
    bins = np.linspace(0.0, top, 41).tolist()
    for lab, name in ((0, "legitimate"), (1, "fraud")):
        sel = sa[ya == lab]
        if sel.size:
            ax.hist(sel, bins=bins, alpha=0.6, density=True, label=f"{name} ({sel.size:,})")
    if not ya.size and every.size:
        ax.hist(every, bins=bins, alpha=0.6, density=True, label=f"all, no labels ({every.size:,})")
    if thresholds is not None:
        for value, name, style in (
            (thresholds.review, "review", "--"),
            (thresholds.block, "block", "-"),
        ):
            ax.axvline(value, color="black", linestyle=style, label=f"{name} {value:g}")
    ax.set(xlabel="score", ylabel="density", title="Score by label")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return fig


@dataclass(frozen=True)
class Thresholds:
    """The configured tier thresholds drawn on the score plots."""

    review: float
    block: float


@dataclass(frozen=True)
class Section:
    """One report section: a table with an optional sentence before it."""

    name: str
    table: Table
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    """``--compare``: the candidate against the baseline over the same input."""

    baseline: str  # e.g. "this run (rules DIR)", with its versions
    candidate: str
    added: int  # alerts the candidate raises that the baseline does not
    added_fraud: int
    dropped: int
    dropped_fraud: int
    metrics: list[tuple[str, float | None, float | None]]
    rules: list[tuple[str, int, int, int, int]]  # rule, hits a -> b, fraud hits a -> b
    settings: list[tuple[str, str, str]]  # settings that differ: name, baseline, candidate

    @property
    def sentence(self) -> str:
        return (
            f"Going from the baseline to the candidate would add {self.added:,} alerts, "
            f"{self.added_fraud:,} of them fraud, and drop {self.dropped:,}, "
            f"{self.dropped_fraud:,} of them fraud."
        )

    def sections(self) -> list[Section]:
        head = f"Baseline: {self.baseline}. Candidate: {self.candidate}. {self.sentence}"
        out = [
            Section(
                "Compare: baseline vs candidate",
                (
                    ["metric", "baseline", "candidate", "delta"],
                    [[n, _fmt(a), _fmt(b), _delta(a, b)] for n, a, b in self.metrics],
                ),
                head,
            ),
            Section(
                "Compare: rules whose hits change",
                (
                    [
                        "rule",
                        "hits baseline",
                        "hits candidate",
                        "fraud hits baseline",
                        "fraud hits candidate",
                    ],
                    [[r, *(_fmt(v) for v in (ha, hb, fa, fb))] for r, ha, hb, fa, fb in self.rules],
                ),
                "" if self.rules else "No rule's hits change.",
            ),
        ]
        if self.settings:
            out.append(
                Section(
                    "Compare: settings that differ",
                    (["setting", "baseline", "candidate"], [list(r) for r in self.settings]),
                )
            )
        return out


def _delta(x: float | None, y: float | None) -> str:
    return "-" if x is None or y is None else f"{y - x:+.4f}"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


PLOT_TITLES = {
    "pr_curve.png": "Precision-recall curve",
    "roc_curve.png": "ROC curve",
    "alerts_per_day.png": "Alert volume per day",
    "score_histogram.png": "Score histogram by label",
}


def render_markdown(title: str, sections: Sequence[Section], images: Sequence[str]) -> str:
    """Markdown with the tables and links to the PNG files beside it."""
    lines = [f"# Backtest: {title}", ""]
    for sec in sections:
        head, rows = sec.table
        lines += [f"## {sec.name}", ""]
        if sec.note:
            lines += [sec.note, ""]
        if rows:
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "|".join("---" for _ in head) + "|")
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
            lines.append("")
    lines += ["## Plots", ""]
    for img in images:
        lines += [f"![{PLOT_TITLES.get(img, img)}]({img})", ""]
    return "\n".join(lines)


def render_html(title: str, sections: Sequence[Section], images: dict[str, bytes]) -> str:
    """One HTML file, plots inlined as base64 PNG."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Backtest: {e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>",
        f"<h1>Backtest: {e(title)}</h1>",
    ]
    for sec in sections:
        head, rows = sec.table
        parts.append(f"<h2>{e(sec.name)}</h2>")
        if sec.note:
            parts.append(f"<p>{e(sec.note)}</p>")
        if rows:
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
            for r in rows:
                parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
            parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    for name, png in images.items():
        b64 = base64.b64encode(png).decode("ascii")
        alt = e(PLOT_TITLES.get(name, name))
        parts.append(f"<h3>{alt}</h3><img alt='{alt}' src='data:image/png;base64,{b64}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


@dataclass(frozen=True)
class Context:
    """What the report says about the run beside its metrics (all optional): where the
    records came from and with which settings, the top-scored transactions, ``--compare``,
    and more ``sections`` after it (``--retrain``: off vs on)."""

    provenance: Sequence[tuple[str, str]] = ()
    settings: Sequence[tuple[str, str, str]] = ()  # section.name, masked value, source
    top: Table | None = None
    comparison: Comparison | None = None
    sections: Sequence[Section] = ()
    thresholds: Thresholds | None = None
    all_scores: Sequence[float] = ()


def write_report(
    out: Path,
    m: Metrics,
    y: Sequence[int],
    score: Sequence[float],
    *,
    title: str,
    context: Context = Context(),
) -> list[Path]:
    """Write report.md, report.html, the PNGs and metrics.json into ``out``; returns the paths.

    The report opens with the run's provenance, the ``--compare`` result
    (``context.comparison``) and ``context.sections``; the rest describes this replay.
    """
    out.mkdir(parents=True, exist_ok=True)
    c = context
    sections: list[Section] = []
    if c.provenance:
        sections.append(Section("Provenance", (["item", "value"], [list(r) for r in c.provenance])))
    if c.comparison is not None:
        sections += c.comparison.sections()
    sections += c.sections
    images = plots(m, y, score, thresholds=c.thresholds, all_scores=c.all_scores)
    sections += [Section(k, t) for k, t in tables(m).items()]
    if c.top is not None:
        sections.append(Section("Top-scored transactions", c.top))
    if c.settings:
        sections.append(
            Section(
                "Settings",
                (["setting", "value", "source"], [list(r) for r in c.settings]),
                "Every setting not at its default, and every setting that shapes scores "
                "(validation, features, model, ensemble, rules); secrets masked.",
            )
        )
    written: list[Path] = []
    for file, png in images.items():
        (out / file).write_bytes(png)
        written.append(out / file)
    md = out / "report.md"
    md.write_text(render_markdown(title, sections, list(images)), encoding="utf-8")
    page = out / "report.html"
    page.write_text(render_html(title, sections, images), encoding="utf-8")
    js = out / "metrics.json"
    js.write_bytes(orjson.dumps(m.to_dict(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
    return [*written, md, page, js]

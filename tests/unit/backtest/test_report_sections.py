"""The report's thresholds on the score histogram, its compare sections and escaping."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from fraudflow.backtest.report import (
    Comparison,
    Section,
    Thresholds,
    render_html,
    render_markdown,
    score_histogram,
)


def _vertical_lines(fig: plt.Figure) -> dict[str, float]:
    ax = fig.axes[0]
    out = {}
    for line in ax.get_lines():
        xs = np.asarray(line.get_xdata(), dtype=float)
        if xs.size == 2 and xs[0] == xs[1]:
            out[str(line.get_label())] = float(xs[0])
    return out


def test_histogram_draws_the_review_and_block_thresholds() -> None:
    y = np.array([0, 0, 1, 0, 1], dtype=np.int64)
    s = np.array([0.1, 0.3, 0.9, 0.2, 0.7])
    fig = score_histogram(y, s, Thresholds(review=0.42, block=0.81))
    assert _vertical_lines(fig) == {"review 0.42": 0.42, "block 0.81": 0.81}
    plt.close(fig)
    fig = score_histogram(y, s, None)
    assert _vertical_lines(fig) == {}
    plt.close(fig)


def test_histogram_without_labels_draws_every_score() -> None:
    empty_y, empty_s = np.array([], dtype=np.int64), np.array([], dtype=np.float64)
    fig = score_histogram(empty_y, empty_s, Thresholds(0.5, 0.9), [0.1, 0.2, 0.95])
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "all, no labels (3)" in labels
    plt.close(fig)


def _comparison(rules: list[tuple[str, int, int, int, int]]) -> Comparison:
    return Comparison(
        baseline="this run (rules A)",
        candidate="--compare B (rules b)",
        added=3,
        added_fraud=1,
        dropped=7,
        dropped_fraud=2,
        metrics=[("ROC AUC", 0.9, 0.8), ("average precision", None, 0.5)],
        rules=rules,
        settings=[("ensemble.review_threshold", "0.5", "0.6")],
    )


def test_comparison_sections_name_both_sides_and_the_deltas() -> None:
    secs = _comparison([("r1", 10, 4, 3, 1)]).sections()
    md = render_markdown("t", secs, [])
    assert "Baseline: this run (rules A). Candidate: --compare B (rules b)." in md
    assert "would add 3 alerts, 1 of them fraud, and drop 7, 2 of them fraud." in md
    assert "| ROC AUC | 0.9000 | 0.8000 | -0.1000 |" in md
    assert "| average precision | - | 0.5000 | - |" in md
    assert "| r1 | 10 | 4 | 3 | 1 |" in md
    assert "| ensemble.review_threshold | 0.5 | 0.6 |" in md
    assert "No rule's hits change." in render_markdown("t", _comparison([]).sections(), [])


def test_cells_are_escaped() -> None:
    secs = [Section("S", (["a", "b"], [["x|y", "<b>"]]), "note & more")]
    assert "| x\\|y | <b> |" in render_markdown("t", secs, [])
    page = render_html("t", secs, {})
    assert "<td>&lt;b&gt;</td>" in page
    assert "<p>note &amp; more</p>" in page

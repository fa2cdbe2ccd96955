"""The bench harness's pure parts: percentiles, latency summaries, tables, profiles, JSON."""

from __future__ import annotations

import argparse
import math
import random

import numpy as np
import orjson
import pytest

from fraudflow.cli import build_parser
from fraudflow.cli.bench import config_from_args
from fraudflow.cli.bench.flow import QUICK, _seconds
from fraudflow.cli.bench.state import state_breakdown, synthetic_user
from fraudflow.config.settings import load_settings
from fraudflow.observability.measure import (
    Row,
    aggregate_profile,
    format_table,
    frame_name,
    latency_by_second,
    latency_summary,
    percentile,
    rate,
)
from fraudflow.operators.features.user import FeatureParams, user_step


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0], 0.0, 1.0),
        ([1.0], 1.0, 1.0),
        ([1.0, 2.0], 0.5, 1.5),
        ([0.0, 10.0, 20.0, 30.0, 40.0], 0.25, 10.0),
        ([0.0, 10.0, 20.0, 30.0, 40.0], 0.99, 39.6),
        ([0.0, 10.0, 20.0, 30.0, 40.0], 1.0, 40.0),
    ],
)
def test_percentile_table(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_agrees_with_numpy_linear() -> None:
    rng = random.Random(3)
    xs = sorted(rng.expovariate(1.0) for _ in range(1001))
    for q in (0.0, 0.5, 0.9, 0.99, 0.999, 1.0):
        assert percentile(xs, q) == pytest.approx(float(np.quantile(xs, q)))


@pytest.mark.parametrize(("values", "q"), [([], 0.5), ([1.0], -0.1), ([1.0], 1.5)])
def test_percentile_rejects_bad_input(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


def test_latency_summary_is_in_milliseconds_and_ordered() -> None:
    s = latency_summary([0.004, 0.001, 0.003, 0.002, 0.100])
    assert s["count"] == 5
    assert s["p50_ms"] == 3.0
    assert s["max_ms"] == 100.0
    assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert latency_summary(iter([])) == {"count": 0}


def test_latency_by_second_leaves_gaps_empty() -> None:
    out = latency_by_second([(10.1, 0.01), (12.5, 0.03)], 10.0)
    assert out[0] == 10.0
    assert math.isnan(out[1])
    assert out[2] == 30.0
    assert latency_by_second([], 0.0) == []


def test_table_aligns_columns_and_marks_targets() -> None:
    rows = [
        Row("flow", "1 process", "9,000 rec/s", ">= 100,000 rec/s", False),
        Row("state", "bytes per user", "640 B", "<= 2 KB", True),
        Row("ceiling", "consume + decode", "40,000 rec/s"),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["section", "figure", "value", "target", "met"]
    assert lines[2].endswith("NO")
    assert lines[3].endswith("yes")
    assert lines[4].endswith("rec/s")  # no target, no mark, no trailing blanks
    # every column starts at the same offset on every line
    col = lines[0].index("value")
    values = ("9,000", "640", "40,000")
    assert all(line[col:].startswith(v) for line, v in zip(lines[2:], values, strict=True))


def test_profile_counts_own_and_inclusive_samples() -> None:
    raw = [
        "main (/r/fraudflow/cli.py:10);run_flow (/r/fraudflow/flows/wiring.py:5);"
        "user_step (/r/fraudflow/operators/features.py:200) 6\n",
        "main (/r/fraudflow/cli.py:10);run_flow (/r/fraudflow/flows/wiring.py:5);"
        "user_step (/r/fraudflow/operators/features.py:210);"
        "stable_hash (/r/fraudflow/state/user.py:20) 2\n",
        "main (/r/fraudflow/cli.py:10);<module> (/r/fraudflow/flows/detection.py:1) 2\n",
        "garbage line\n",
    ]
    p = aggregate_profile(raw)
    assert p["samples"] == 10
    own = {name: n for name, n, _share in p["self"]}
    assert own["user_step (fraudflow/operators/features.py)"] == 6  # both lines merge
    incl = {name: share for name, _n, share in p["inclusive"]}
    assert incl["user_step (fraudflow/operators/features.py)"] == 0.8
    assert incl["main (fraudflow/cli.py)"] == 1.0

    flow_only = aggregate_profile(raw, within="run_flow (")
    assert flow_only["samples"] == 8
    assert flow_only["self"][0] == ("user_step (fraudflow/operators/features.py)", 6, 0.75)


def test_frame_names_drop_line_numbers_and_install_prefixes() -> None:
    name = "next_batch (/v/lib/python3.11/site-packages/bytewax/connectors/kafka/__init__.py:248)"
    assert frame_name(name) == "next_batch (bytewax/connectors/kafka/__init__.py)"
    assert frame_name("<genexpr> (/work/x/fraudflow/state/user.py:99)") == (
        "<genexpr> (fraudflow/state/user.py)"
    )


def test_durations_and_rates() -> None:
    assert _seconds("5s") == 5.0
    assert _seconds("250ms") == 0.25
    with pytest.raises(ValueError):
        _seconds("soon")
    assert rate(100, 2.0) == 50.0
    assert rate(100, 0.0) == 0.0


def test_state_breakdown_adds_up() -> None:
    s = load_settings(environ={})
    fp = FeatureParams.from_settings(s.features, s.validation)
    state = None
    for txn in synthetic_user("u1", 20, random.Random(1), 1.7e9, 3600.0):
        state, _ = user_step(state, txn, fp)
    parts = state_breakdown(state, "u1")
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    assert parts["recent_sets"] > 0
    assert parts["event_and_amount_arrays"] > 0


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["bench", *argv])


def test_quick_flags_and_overrides() -> None:
    cfg = config_from_args(_args("--quick", "--users", "500", "--sections", "state,ceiling"))
    assert cfg.transactions == QUICK["transactions"]
    assert cfg.users == 500
    assert cfg.sections == ("state", "ceiling")
    full = config_from_args(_args())
    assert full.transactions == 200_000
    assert full.snapshot_interval == "5s"
    with pytest.raises(SystemExit):
        _args("--sections", "nonsense")


def test_result_rows_round_trip_through_json() -> None:
    rows = [Row("flow", "x", "1", ">= 1", True), Row("state", "y", "2")]
    back = [Row(**r) for r in orjson.loads(orjson.dumps([r.__dict__ for r in rows]))]
    assert back == rows

"""Cost of label feedback: the feedback step alone, and the whole flow with it off and on.

1. ``step``: :func:`fraudflow.operators.detectors.feedback.enrich` on feature rows from
   a replay, with every label applied after a delay, in one process, timed
   per row; plus the pickled size of the feedback state per kept transaction
   and the time to pickle it (what each snapshot pays).
2. ``flow``: the same generated file replayed through the detection flow
   (one worker) with feedback off, then on (labels interleaved), in records/s.

    python benchmarks/bench_feedback.py [--count 100000] [--users 2000] [--delay-days 1]

Prints a table and one JSON line (recorded in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import orjson

from fraudflow.backtest.replay import interleave_labels, read_labels, replay
from fraudflow.config.settings import Settings
from fraudflow.connectors.files import JsonLinesSource
from fraudflow.generator import generate
from fraudflow.operators.detectors.feedback import FeedbackParams, apply_label, enrich
from fraudflow.operators.features.catalogue import feature_catalogue
from fraudflow.records import FeatureRow, Label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--delay-days", type=float, default=1.0)
    args = ap.parse_args()
    delay = timedelta(days=args.delay_days)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tx.jsonl"
        with path.open("wb") as f:
            for rec in generate(args.count, users=args.users, seed=7, compromised_merchants=3):
                f.write(orjson.dumps(rec) + b"\n")
        labels = read_labels([path])
        s = Settings().replace(recovery_dir=None)
        on = s.replace(feedback=True)

        t = time.perf_counter()
        off_run = replay(s, JsonLinesSource([path]))
        off_s = time.perf_counter() - t
        fed = interleave_labels([path], labels, delay, Path(tmp) / "fed")
        t = time.perf_counter()
        on_run = replay(on, JsonLinesSource(fed), interleaved_labels=True)
        on_s = time.perf_counter() - t

    # the step alone, on the rows of the replay (features as scored without feedback)
    params = FeedbackParams.from_settings(
        on.feedback, feature_catalogue(on.features.windows, on.feedback)
    )
    st = params.new_state()
    rows = [FeatureRow(d.txn, dict(d.features)) for d in off_run.decisions]
    queue: list[tuple[float, Label]] = []
    t = time.perf_counter()
    qi = 0
    for row in rows:
        enrich(st, row, params)
        tid = row.txn.transaction_id
        queue.append((row.txn.ts + delay.total_seconds(), Label(tid, labels[tid].label, 0.0, b"")))
        while qi < len(queue) and queue[qi][0] <= row.txn.ts:
            apply_label(st, queue[qi][1], params, 0.0)
            qi += 1
    step_s = time.perf_counter() - t
    t = time.perf_counter()
    blob = pickle.dumps(st, pickle.HIGHEST_PROTOCOL)
    pickle_s = time.perf_counter() - t
    result = {
        "machine": f"{platform.machine()} x{os.cpu_count()}, python {platform.python_version()}",
        "transactions": args.count,
        "labels_applied": qi,
        "step_us_per_row": round(step_s / len(rows) * 1e6, 1),
        "kept_transactions": len(st.pending),
        "state_bytes_per_kept_txn": round(len(blob) / max(len(st.pending), 1)),
        "snapshot_ms_per_100k_kept": round(pickle_s * 1000 * 100_000 / max(len(st.pending), 1)),
        "entities": len(st.entities),
        "flow_off_tx_per_s": round(args.count / off_s),
        "flow_on_tx_per_s": round(args.count / on_s),
        "flow_on_labels": on_run.stats.labels_n,
    }
    for k, v in result.items():
        print(f"{k:<28}{v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Throughput of the detection flow with the trained model off and on (one process).

The same JSON-lines file replayed through the flow (one worker, collecting the
decisions), first without a model, then with a model written by
``fraudflow train --out DIR`` serving every batch (the hook of
docs/training.md: inputs, risk tables, one LightGBM prediction per batch).
Records/s of each (best of ``--repeat`` runs, off and on alternating), and their
ratio (issue 17 asks for >= 0.8).

    python benchmarks/bench_trained_flow.py --input F.jsonl --model DIR [--repeat 2]

Prints a table and one JSON line (recorded in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from fraudflow.backtest.replay import CollectSink, DiscardSink
from fraudflow.config.settings import Settings
from fraudflow.connectors.files import JsonLinesSource
from fraudflow.flows.detection import build_flow
from fraudflow.flows.io import FlowIO
from fraudflow.flows.wiring import run_flow
from fraudflow.records import Decision
from fraudflow.training.model import TrainedModel, load_artifact_dir


class Static:
    """A model source that always serves one model."""

    def __init__(self, model: TrainedModel | None) -> None:
        self.model = model

    def current(self) -> TrainedModel | None:
        return self.model


def run(path: Path, model: TrainedModel | None) -> tuple[float, int, list[Decision]]:
    settings = Settings()
    out: list[Decision] = []
    io = FlowIO(
        source=JsonLinesSource([path]),
        alerts=DiscardSink(),
        dead_letters=CollectSink([]),
        decisions=[("scores", CollectSink(out))],
        require_key=False,
        event_clock=True,
        models=Static(model),
    )
    started = time.perf_counter()
    run_flow(build_flow(settings, io), settings)
    return time.perf_counter() - started, len(out), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    model = load_artifact_dir(args.model)
    figures: dict[str, Any] = {}
    best = {"off": 0.0, "on": 0.0}
    for _ in range(args.repeat):  # off and on alternate: a change of load hits both
        for name, m in (("off", None), ("on", model)):
            secs, n, out = run(args.input, m)
            best[name] = max(best[name], n / secs)
            if m is not None:
                assert all(d.model_version == m.version for d in out)
    figures["off"], figures["on"] = round(best["off"]), round(best["on"])
    figures["ratio"] = round(figures["on"] / figures["off"], 3)
    print(f"trained model off: {figures['off']:,} records/s")
    print(f"trained model on:  {figures['on']:,} records/s (ratio {figures['ratio']})")
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "python": platform.python_version(), **figures}))  # fmt: skip


if __name__ == "__main__":
    main()

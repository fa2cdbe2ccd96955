"""What Bytewax charges per key of a ``stateful_batch`` step: calls and snapshots.

Feeds ``--items`` records (a ~500-byte bytes state per key, like a pickled user)
through one ``stateful_batch`` step keyed by ``i % keys``, for several key
counts, with recovery off and on (``--epoch-ms`` epochs, so each epoch awakes
and snapshots the keys its records touched). Reports CPU seconds of the run,
``on_batch`` calls and ``snapshot`` calls, and the snapshot rows Bytewax wrote.
The figures size the "users as Bytewax keys" design in docs/architecture.md.

    python benchmarks/bench_bytewax_keys.py [--items 200000] [--keys 1,64,4096,200000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

STATE = bytes(500)


class Counts:
    def __init__(self) -> None:
        self.batches = 0
        self.snapshots = 0


class Logic(StatefulBatchLogic[int, int, bytes]):
    def __init__(self, counts: Counts, keep: bool) -> None:
        self.counts = counts
        self.keep = keep
        self.n = 0

    def on_batch(self, values: list[int]) -> tuple[list[int], bool]:
        self.counts.batches += 1
        self.n += len(values)
        return values, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        self.counts.snapshots += 1
        return STATE if self.keep else b""


def run(items: int, keys: int, recovery: bool, epoch_ms: int) -> dict[str, object]:
    counts = Counts()
    flow = Dataflow("keys")
    src = op.input("in", flow, TestingSource(range(items), batch_size=500))
    keyed = op.key_on("key", src, lambda i: f"u{i % keys}")
    out: list[object] = []
    step = op.stateful_batch("step", keyed, lambda _s: Logic(counts, recovery))
    op.output("out", op.key_rm("unkey", step), TestingSink(out))
    with tempfile.TemporaryDirectory() as d:
        rc = None
        if recovery:
            init_db_dir(Path(d), 1)
            rc = RecoveryConfig(d)
        c0, t0 = os.times(), time.perf_counter()
        run_main(flow, epoch_interval=timedelta(milliseconds=epoch_ms), recovery_config=rc)
        c1, wall = os.times(), time.perf_counter() - t0
        rows = 0
        if recovery:
            with sqlite3.connect(Path(d) / "part-0.sqlite3") as db:
                rows = db.execute("select count(*) from snaps").fetchone()[0]
    cpu = (c1.user + c1.system) - (c0.user + c0.system)
    return {
        "items": items,
        "keys": keys,
        "recovery": recovery,
        "epoch_ms": epoch_ms,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "cpu_us_per_item": round(1e6 * cpu / items, 2),
        "on_batch_calls": counts.batches,
        "snapshot_calls": counts.snapshots,
        "snapshot_rows_kept": rows,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--keys", default="1,64,4096,200000")
    ap.add_argument("--epoch-ms", type=int, default=200)
    args = ap.parse_args()
    for keys in (int(k) for k in args.keys.split(",")):
        for recovery in (False, True):
            res = run(args.items, keys, recovery, args.epoch_ms)
            res["load_avg"] = [round(x, 2) for x in os.getloadavg()]
            print(orjson.dumps(res).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Throughput with the trained model off and on, 1 and 2 processes (a bytewax cluster).

The input file is split by user into two JSON-lines files (two partitions, as
two Kafka partitions would be); each run starts 1 or 2 processes of the same
flow (one worker each, the file source, decisions collected and counted) and
takes the wall time from start to the last exit, less the same cluster's
start-up and exit on empty files. Off and on alternate, best of ``--repeat``.

    python benchmarks/bench_trained_processes.py --input F.jsonl --model DIR [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import orjson

from fraudflow.connectors.broker import free_port


def child(inputs: list[Path], model_dir: str, pid: int, addresses: list[str]) -> None:
    from fraudflow.backtest.replay import CollectSink, DiscardSink  # noqa: PLC0415
    from fraudflow.config.settings import Settings  # noqa: PLC0415
    from fraudflow.connectors.files import JsonLinesSource  # noqa: PLC0415
    from fraudflow.flows.detection import build_flow  # noqa: PLC0415
    from fraudflow.flows.io import FlowIO  # noqa: PLC0415
    from fraudflow.flows.wiring import run_flow  # noqa: PLC0415
    from fraudflow.records import Decision  # noqa: PLC0415
    from fraudflow.training.model import load_artifact_dir  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_trained_flow import Static  # noqa: PLC0415

    model = None if model_dir == "-" else load_artifact_dir(Path(model_dir))
    settings = Settings()
    out: list[Decision] = []
    io = FlowIO(source=JsonLinesSource(inputs), alerts=DiscardSink(), dead_letters=CollectSink([]),
                decisions=[("scores", CollectSink(out))], require_key=False, event_clock=True,
                models=Static(model))  # fmt: skip
    run_flow(build_flow(settings, io), settings, process_id=pid if len(addresses) > 1 else None,
             addresses=addresses if len(addresses) > 1 else None)  # fmt: skip
    if model is not None:
        assert all(d.model_version == model.version for d in out)
    print(len(out), flush=True)


def cluster(inputs: list[Path], model_dir: str, procs: int) -> tuple[float, int]:
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(procs))
    files = ",".join(str(p) for p in inputs)
    t0 = time.perf_counter()
    cmd = [sys.executable, __file__, "--child", files, model_dir]
    ps = [
        subprocess.Popen([*cmd, str(i), addresses], stdout=subprocess.PIPE)  # noqa: S603
        for i in range(procs)
    ]
    outs = [p.communicate()[0] for p in ps]
    wall = time.perf_counter() - t0
    assert all(p.returncode == 0 for p in ps)
    return wall, sum(int(o.split()[-1]) for o in outs)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        files, model_dir, pid, addresses = sys.argv[2:6]
        child([Path(f) for f in files.split(",")], model_dir, int(pid), addresses.split(";"))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-trained-"))
    parts = [work / "p0.jsonl", work / "p1.jsonl"]
    empty = [work / "e0.jsonl", work / "e1.jsonl"]
    n = 0
    with parts[0].open("wb") as a, parts[1].open("wb") as b:
        for line in args.input.open("rb"):
            user = orjson.loads(line)["user_id"]
            (a, b)[zlib.crc32(user.encode()) % 2].write(line)
            n += 1
    for e in empty:
        e.write_bytes(b"")
    figures: dict[str, float] = {}
    for procs in (1, 2):
        runs = (("off", "-"), ("on", str(args.model)))
        # start-up and exit on empty files, with the model loaded when it is on
        startup = {name: min(cluster(empty, m, procs)[0] for _ in range(2)) for name, m in runs}
        for name, secs in startup.items():
            figures[f"startup_{name}_{procs}p_s"] = round(secs, 2)
        best = {"off": 0.0, "on": 0.0}
        for _ in range(args.repeat):
            for name, m in runs:
                wall, got = cluster(parts, m, procs)
                assert got == n, (got, n)
                best[name] = max(best[name], n / max(wall - startup[name], 1e-9))
        figures[f"off_{procs}p"], figures[f"on_{procs}p"] = round(best["off"]), round(best["on"])
        figures[f"ratio_{procs}p"] = round(best["on"] / best["off"], 3)
    for procs in (1, 2):
        off, on, ratio = (figures[f"{k}_{procs}p"] for k in ("off", "on", "ratio"))
        print(f"{procs} process(es): off {off:,} rec/s, on {on:,} rec/s (ratio {ratio})")
    print(json.dumps({"records": n, **figures}))


if __name__ == "__main__":
    main()

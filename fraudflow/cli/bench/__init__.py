"""``fraudflow bench``: throughput, latency, state size and recovery, in one run.

Everything runs on an embedded Tansu broker with a deterministic generated
topic (``--transactions`` records over ``--users`` users, ``--partitions``
partitions, ``--seed``). The sections:

``ceiling``   one process consuming and decoding the topic and nothing else
              (confluent_kafka ``Consumer`` over all partitions + ``orjson.loads``).
``flow``      ``fraudflow run --from-beginning --exit-at-end`` as subprocesses,
              1 and 2 processes, snapshots (recovery) off and on. Wall time is
              process start to exit; start-up + shutdown is measured on an empty
              topic and subtracted for the net rate.
``latency``   the flow tailing a fresh topic while a paced producer offers half
              the 1-process net rate; each record carries ``_sent_at`` (ignored by
              the flow); latency = alert received by a consumer - produce call.
``state``     per-user state built with the real ``user_step`` in a fresh child
              process: RSS growth and pickled bytes per user, at several history
              lengths (the last one at the state's bounds).
``recovery``  a run with ``--recovery-dir`` killed with SIGKILL mid-run, then
              restarted: time to its first new alert, snapshot size on disk.
``profile``   (with ``--profile DIR``) the 1-process flow under py-spy; the top
              functions by own and inclusive samples.

Prints a table and one JSON line (machine, commit, command line, figures);
``--json-out FILE`` also writes the JSON there. Targets are issue 8's.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from fraudflow.cli.bench.flow import QUICK, SECTIONS, Bench, BenchConfig
from fraudflow.cli.bench.state import measure_state
from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.observability.measure import Row, format_table, git_commit, machine_info

# --- the command --------------------------------------------------------------------------


def _sections(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in names if s not in SECTIONS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown section(s) {bad}; choose from {SECTIONS}")
    return names


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="measure throughput, latency, state size and recovery on an embedded broker",
        description=(
            "Start an embedded broker, produce a deterministic topic and measure: the "
            "consume+decode ceiling, the flow's throughput with 1 and 2 processes and snapshots "
            "off/on, event-to-alert latency at half the 1-process rate, bytes of state per user, "
            "and recovery after SIGKILL. Prints a table and one JSON line. Uses the CPU heavily "
            "for several minutes; --quick for a small run. See docs/benchmarks.md."
        ),
    )
    d = BenchConfig()
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--transactions", type=int, help=f"records on the topic [{d.transactions:,}]")
    p.add_argument("--users", type=int, help=f"users in the generated population [{d.users:,}]")
    p.add_argument("--partitions", type=int, default=d.partitions, help="topic partitions [4]")
    p.add_argument("--seed", type=int, default=d.seed, help="generator seed [7]")
    p.add_argument(
        "--snapshot-interval",
        help="the flow's snapshot/epoch interval in every run [5s; --quick 1s]",
    )
    p.add_argument(
        "--latency-warmup",
        type=float,
        help=f"seconds of paced production left out of the latency figures [{d.latency_warmup:g}]",
    )
    p.add_argument(
        "--latency-seconds", type=float, help=f"paced production time [{d.latency_seconds:g}]"
    )
    p.add_argument(
        "--latency-rate", type=float, help="offered rate [half the measured 1-process rate]"
    )
    p.add_argument("--state-users", type=int, help=f"users for the state size [{d.state_users:,}]")
    p.add_argument(
        "--sections",
        type=_sections,
        default=SECTIONS,
        help=f"comma-separated subset of {','.join(SECTIONS)} [all]",
    )
    p.add_argument("--profile", type=Path, metavar="DIR", help="also profile 1 process (py-spy)")
    p.add_argument("--json-out", type=Path, metavar="FILE", help="also write the JSON here")
    p.add_argument(
        "--work-dir", type=Path, help="logs, summaries, recovery dirs [a temporary directory]"
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=main)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    base: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in (
        "transactions",
        "users",
        "latency_seconds",
        "latency_warmup",
        "state_users",
        "snapshot_interval",
    ):
        if getattr(args, name) is not None:
            base[name] = getattr(args, name)
    return BenchConfig(
        **base,
        partitions=args.partitions,
        seed=args.seed,
        latency_rate=args.latency_rate,
        sections=args.sections,
        profile=args.profile,
        work_dir=args.work_dir,
        keep=args.keep or args.work_dir is not None,
        verbose=not args.quiet,
    )


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Every selected section; returns the JSON-ready result (with ``rows`` for the table)."""
    machine = machine_info()
    with contextlib.ExitStack() as stack:
        if cfg.work_dir is not None:
            work = cfg.work_dir
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(tempfile.mkdtemp(prefix="fraudflow-bench-"))
            if not cfg.keep:
                stack.callback(shutil.rmtree, work, True)
        needs_broker = any(s != "state" for s in cfg.sections) or cfg.profile is not None
        bench: Bench
        if needs_broker:
            broker = EmbeddedBroker(log_path=work / "broker.log").start()
            stack.callback(broker.stop)
            bench = Bench(cfg, broker.bootstrap, work)
            bench.produce_input()
        else:
            bench = Bench(cfg, "", work)
        t0 = time.perf_counter()
        for name in SECTIONS:
            if name in cfg.sections:
                getattr(bench, f"section_{name}")()
        if cfg.profile is not None:
            bench.section_profile(cfg.profile)
        elapsed = time.perf_counter() - t0
    machine["commit_at_end"] = git_commit().get("commit")
    return {
        "bench": "fraudflow",
        "machine": machine,
        "config": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in cfg.__dict__.items()
            if k not in ("verbose",)
        },
        **bench.results,
        "elapsed_s": round(elapsed, 1),
        "rows": [r.__dict__ for r in bench.rows],
    }


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    result = run_bench(cfg)
    rows = [Row(**r) for r in result["rows"]]
    m = result["machine"]
    print(
        f"fraudflow bench @ {m['commit']}{' (+local changes)' if m['dirty'] else ''}: "
        f"{m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB, Python {m['python']}, "
        f"bytewax {m['bytewax']}"
    )
    print(format_table(rows))
    line = orjson.dumps(result).decode()
    print(line)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n", encoding="utf-8")
    return 0


def child(argv: Sequence[str]) -> int:
    if len(argv) == 5 and argv[0] == "state-child":
        users, txns, span, seed = int(argv[1]), int(argv[2]), float(argv[3]), int(argv[4])
        print(orjson.dumps(measure_state(users, txns, span, seed)).decode(), flush=True)
        return 0
    print("usage: python -m fraudflow.cli.bench state-child USERS TXNS SPAN_S SEED",
          file=sys.stderr)  # fmt: skip
    return 2

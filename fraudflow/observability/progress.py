"""Progress for long runs: a background ticker, the run-statistics line, a text bar."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from fraudflow.observability.stats import RunStats


@contextmanager
def ticking(tick: Callable[[], object], enabled: bool, every: float) -> Iterator[None]:
    """Call ``tick`` every ``every`` seconds from a background thread while the body runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            tick()

    thread = threading.Thread(target=loop, name="ticking", daemon=True)
    if enabled:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if enabled:
            thread.join()


@contextmanager
def progress(
    stats: RunStats, enabled: bool, every: float = 2.0, out: TextIO = sys.stderr
) -> Iterator[None]:
    """Print a progress line every ``every`` seconds while the body runs."""
    with ticking(lambda: print(stats.progress_line(), file=out, flush=True), enabled, every):
        yield


class ProgressBar:
    """``LABEL 42% |#####   | 4,200/10,000  9,000 rec/s  ETA 1s``, redrawn at most every
    ``every`` seconds on a terminal stream (stderr by default)."""

    def __init__(
        self,
        label: str,
        total: int,
        enabled: bool,
        out: TextIO = sys.stderr,
        every: float = 0.25,
        *,
        window: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.enabled, self.out, self.every = (
            label,
            total,
            enabled,
            out,
            every,
        )
        self.clock, self.window = clock, window
        self.t0 = self.last = clock()
        self.drawn = False
        self.recent: deque[tuple[float, int]] = deque([(self.t0, 0)])

    def rate(self, now: float, done: int) -> float:
        """Records per second over the last ``window`` seconds (not since the start, which
        decays while idle)."""
        self.recent.append((now, done))
        while len(self.recent) > 2 and now - self.recent[1][0] >= self.window:
            self.recent.popleft()
        t_old, d_old = self.recent[0]
        return (done - d_old) / max(now - t_old, 1e-9)

    def update(self, done: int, *, force: bool = False) -> None:
        now = self.clock()
        if not self.enabled or (now - self.last < self.every and not force):
            return
        self.last = now
        frac = min(done / self.total, 1.0) if self.total else 1.0
        rate = self.rate(now, done)
        eta = (self.total - done) / rate if rate > 0 and self.total > done else 0.0
        self.out.write(
            f"\r{self.label} {frac:4.0%} |{'#' * int(frac * 30):<30}| {done:,}/{self.total:,}  "
            f"{rate:,.0f} rec/s  ETA {eta:,.0f}s "
        )
        self.out.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.out.write("\n")
            self.out.flush()

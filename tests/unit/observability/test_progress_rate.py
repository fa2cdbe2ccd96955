"""Issue 18 item 5: the backtest's progress rate is over the last seconds, so it falls to
zero while idle instead of decaying as a running average."""

from __future__ import annotations

import io

from fraudflow.observability.progress import ProgressBar


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_covers_the_last_window_not_the_whole_run() -> None:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar("x", 10_000, True, out, every=0.0, window=5.0, clock=clock)
    for second in range(1, 11):  # 100 records a second for 10 s
        clock.now = float(second)
        bar.update(second * 100)
    assert " 100 rec/s" in out.getvalue().rsplit("\r", 1)[1]
    for second in range(11, 21):  # then idle for 10 s
        clock.now = float(second)
        bar.update(1000)
    assert " 0 rec/s" in out.getvalue().rsplit("\r", 1)[1]  # a running average says 50


def test_rate_follows_a_change_of_pace() -> None:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar("x", 100_000, True, out, every=0.0, window=2.0, clock=clock)
    done = 0
    for second in range(1, 21):
        clock.now = float(second)
        done += 100 if second <= 10 else 1000
        bar.update(done)
    assert " 1,000 rec/s" in out.getvalue().rsplit("\r", 1)[1]

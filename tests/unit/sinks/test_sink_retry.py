"""Retry/backoff and secret scrubbing of the sinks (no store needed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fraudflow.observability import metrics
from fraudflow.sinks.retry import (
    Retrier,
    SinkError,
    SinkUnavailable,
    backoff_delays,
    scrub,
    secret_parts,
)


class FakeTime:
    """A clock that only moves when the retrier sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def flaky(failures: int, exc: BaseException) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise exc
        return "ok"

    return calls, fn


def retrier(t: FakeTime, limit: float, sink: str = "unit", seed: int = 0) -> Retrier:
    return Retrier(
        sink,
        timedelta(seconds=limit),
        (ConnectionError,),
        ("s3cret-pw",),
        base=0.1,
        cap=1.0,
        seed=seed,
        clock=t.clock,
        sleep=t.sleep,
    )


def test_retries_until_success_and_counts_metrics() -> None:
    t = FakeTime()
    errors0 = metrics.value("fraudflow_sink_errors_total", {"sink": "unit-a"})
    retries0 = metrics.value("fraudflow_sink_retries_total", {"sink": "unit-a"})
    calls, fn = flaky(4, ConnectionError("refused"))
    dropped: list[int] = []
    assert retrier(t, 60, "unit-a").call(fn, on_failure=lambda: dropped.append(1)) == "ok"  # type: ignore[arg-type]
    assert len(calls) == 5
    assert len(dropped) == 4
    assert len(t.sleeps) == 4
    # exponential with jitter in [0.5, 1) of the nominal delay
    for s, nominal in zip(t.sleeps, [0.1, 0.2, 0.4, 0.8], strict=True):
        assert nominal * 0.5 <= s < nominal
    assert metrics.value("fraudflow_sink_errors_total", {"sink": "unit-a"}) - errors0 == 4
    assert metrics.value("fraudflow_sink_retries_total", {"sink": "unit-a"}) - retries0 == 4


def test_jitter_is_reproducible_with_a_seed() -> None:
    a, b, c = FakeTime(), FakeTime(), FakeTime()
    for t, seed in ((a, 7), (b, 7), (c, 8)):
        _, fn = flaky(6, ConnectionError("x"))
        retrier(t, 60, seed=seed).call(fn)  # type: ignore[arg-type]
    assert a.sleeps == b.sleeps
    assert a.sleeps != c.sleeps


def test_gives_up_after_the_limit_without_leaking_the_secret() -> None:
    t = FakeTime()
    _, fn = flaky(10**9, ConnectionError("connect to postgresql://app:s3cret-pw@db failed"))
    with pytest.raises(SinkUnavailable) as info:
        retrier(t, 5).call(fn)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "s3cret-pw" not in msg
    assert "unavailable" in msg
    assert "app:***@db" in msg
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    # it waited the limit, not more
    assert t.now - 1000.0 == pytest.approx(5.0)


def test_other_errors_raise_at_once() -> None:
    t = FakeTime()
    calls, fn = flaky(1, ValueError("bad row"))
    with pytest.raises(SinkError, match="ValueError: bad row") as info:
        retrier(t, 60).call(fn)  # type: ignore[arg-type]
    assert not isinstance(info.value, SinkUnavailable)
    assert len(calls) == 1
    assert t.sleeps == []
    assert isinstance(info.value.__cause__, ValueError)


def test_a_non_transient_error_holding_the_secret_is_not_chained() -> None:
    t = FakeTime()
    _, fn = flaky(1, ValueError("dsn password=s3cret-pw rejected"))
    with pytest.raises(SinkError) as info:
        retrier(t, 60).call(fn)  # type: ignore[arg-type]
    assert "s3cret-pw" not in str(info.value)
    assert info.value.__cause__ is None


def test_backoff_is_capped() -> None:
    gen = backoff_delays(0.5, 3.0)
    assert [next(gen) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://fraud:pa55word@db:5432/x", "pa55word"),
        ("postgres://u:p%40ss@h/db", "p@ss"),
        ("redis://:r3dispw@cache:6379/0", "r3dispw"),
        ("rediss://default:tok-123@cache:6380", "tok-123"),
        ("host=db user=u password=kvpass dbname=x", "kvpass"),
        ("host=db password='with space' dbname=x", "with space"),
    ],
)
def test_secret_parts_find_the_password(dsn: str, secret: str) -> None:
    parts = secret_parts(dsn)
    assert parts[0] == dsn
    assert secret in parts
    text = f"failed: {dsn} ({secret})"
    assert secret not in scrub(text, parts)
    assert dsn not in scrub(text, parts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("PASSWORD = hunter2 host=h", "PASSWORD = *** host=h"),
        ("no secret here", "no secret here"),
    ],
)
def test_scrub_masks_passwords_it_was_not_told_about(text: str, expected: str) -> None:
    assert scrub(text, []) == expected

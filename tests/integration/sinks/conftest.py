"""Per-test PostgreSQL databases and Redis key prefixes on the machine's servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

from fraudflow.config.settings import Secret


def _with_db(dsn: str, db: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{db}"


@pytest.fixture
def pg_dsn(postgres_dsn: str) -> Iterator[Secret]:
    """A fresh, empty database for one test, dropped afterwards."""
    db = f"fraudflow_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as c:
        c.execute(f'create database "{db}"')
    try:
        yield Secret(_with_db(postgres_dsn, db))
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as c:
            c.execute(f'drop database if exists "{db}" with (force)')


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to one test; its keys are deleted afterwards."""
    prefix = f"fraudflow-test:{uuid.uuid4().hex[:12]}:profile:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()

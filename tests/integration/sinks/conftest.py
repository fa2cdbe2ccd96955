"""Per-test PostgreSQL databases and Redis key prefixes on the machine's servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from fraudflow.config.settings import Secret


@pytest.fixture
def pg_dsn(database: str) -> Secret:
    """A fresh, empty database for one test (the ``database`` fixture), as a Secret."""
    return Secret(database)


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

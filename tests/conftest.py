"""Session fixtures: a real Kafka-protocol broker, and the machine's PostgreSQL/Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudflow.connectors.broker import EmbeddedBroker
from tests.support.system import ensure_postgres, ensure_redis, fresh_database


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """Tansu on a free loopback port with memory storage, for the whole session."""
    log = Path(tmp_path_factory.mktemp("broker")) / "tansu.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


@pytest.fixture
def topic() -> str:
    """A unique topic-name prefix per test."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    return ensure_postgres()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return ensure_redis()


@pytest.fixture
def database(postgres_dsn: str) -> Iterator[str]:
    """DSN of a fresh database for one test, dropped afterwards."""
    with fresh_database(postgres_dsn) as dsn:
        yield dsn

"""Per-test PostgreSQL databases and Redis key prefixes on the machine's servers.

``store`` is a fresh database with the decision schema in one of the two
layouts (parametrized: every test using it runs on both): ``partitioned``
(native partitions, plain PostgreSQL) and ``timescale`` (hypertables; needs
the extension, see :mod:`tests.support.timescale`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from fraudflow.config.settings import Secret
from fraudflow.sinks.postgres import migrate
from tests.support.timescale import Store, require_timescale

LAYOUTS = ("partitioned", "timescale")


@pytest.fixture
def pg_dsn(database: str) -> Secret:
    """A fresh, empty database for one test (the ``database`` fixture), as a Secret."""
    return Secret(database)


# what the TimescaleDB tests ran against, for the end-of-run summary
_TIMESCALE: dict[str, str] = {}


@pytest.fixture(scope="session")
def timescale_version(postgres_dsn: str) -> str:
    """The TimescaleDB version the tests run against (installed from the bundle if needed)."""
    try:
        version = require_timescale(postgres_dsn)
    except pytest.skip.Exception as skip:
        _TIMESCALE["skipped"] = str(skip.msg)
        raise
    _TIMESCALE["version"] = version
    return version


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the extension version in the test log (or say loudly that its tests did not run)."""
    if "version" in _TIMESCALE:
        terminalreporter.write_line(
            f"TimescaleDB tests ran against timescaledb {_TIMESCALE['version']}"
        )
    elif "skipped" in _TIMESCALE:
        terminalreporter.write_line(_TIMESCALE["skipped"], red=True, bold=True)


@pytest.fixture(params=LAYOUTS)
def store(request: pytest.FixtureRequest, database: str) -> Store:
    layout = str(request.param)
    if layout == "timescale":
        request.getfixturevalue("timescale_version")
    dsn = Secret(database)
    migrate(dsn, layout=layout)
    return Store(dsn, layout)


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

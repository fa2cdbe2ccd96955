"""Helpers and fixtures of the console tests: a fresh database with stored alerts, tokens, an app.

Fixtures are re-exported by conftest.py; tests import the helpers from here (never from a
conftest, whose module name other test folders share)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from fraudflow.config.settings import Settings, load_settings
from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.console.app import create_app
from fraudflow.console.auth import mint_token
from fraudflow.console.schema import apply_migrations
from fraudflow.sinks import schema as sink_schema
from fraudflow.sinks.columns import WRITE_COLUMNS
from fraudflow.sinks.schema import table_layout

SECRET = "test-secret-" + "x" * 32
JSON_COLUMNS = ("detector_scores", "rule_hits", "reasons")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def token(sub: str = "ana", roles: tuple[str, ...] = ("analyst",), ttl: float = 3600) -> str:
    return mint_token(SECRET, sub, roles, ttl=timedelta(seconds=ttl), now=datetime.now(UTC))


def auth(sub: str = "ana", roles: tuple[str, ...] = ("analyst",)) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, roles)}"}


def alert_row(i: int, rng: random.Random, **over: Any) -> dict[str, Any]:
    """One stored decision with every column the sink writes."""
    score = round(rng.uniform(0.5, 1.0), 6)
    user = f"u{i % 17:03d}"
    rules = ["velocity_burst"] if i % 5 == 0 else (["blocked_merchant"] if i % 7 == 0 else [])
    row = {
        "alert_id": f"a{i:06d}",
        "event_time": T0 + timedelta(minutes=i),
        "processed_at": T0 + timedelta(minutes=i, seconds=1),
        "transaction_id": f"t{i:06d}",
        "user_id": user,
        "amount": round(rng.uniform(5, 3000), 2),
        "currency": "EUR",
        "merchant_id": f"m{i % 11}",
        "country": "DE",
        "score": score,
        "tier": "block" if score >= 0.85 else "review",
        "detector_scores": {"hst": 0.2, "zscore": 0.7, "iqr": 0.4, "rules": 0.0},
        "rule_ids": rules,
        "rule_hits": [{"id": r, "score": 0.6, "tier": "review", "severity": "high"} for r in rules],
        "reasons": [
            {"code": "AMOUNT_ZSCORE", "contribution": 0.5, "detail": {"amount_zscore": 4.2}}
        ],
        "rules_version": "r1",
        "model_version": "m1",
        "late": False,
        "source_topic": "tx",
        "source_partition": 0,
        "source_offset": i,
    }
    row.update(over)
    return row


def insert(
    dsn: str, rows: list[dict[str, Any]], tables: tuple[str, ...] = ("alerts", "decisions")
) -> None:
    cols = [c for c, _ in WRITE_COLUMNS]
    with psycopg.connect(dsn) as c:
        for table in tables:
            with c.cursor().copy(f"copy {table} ({', '.join(cols)}) from stdin") as copy:
                copy.set_types([t for _, t in WRITE_COLUMNS])
                for r in rows:
                    copy.write_row([Jsonb(r[k]) if k in JSON_COLUMNS else r[k] for k in cols])


@dataclass
class Console:
    client: TestClient
    dsn: str
    settings: Settings
    rows: list[dict[str, Any]]


def console_settings(dsn: str, **extra: str) -> Settings:
    env = {"FRAUDFLOW_POSTGRES_DSN": dsn, "FRAUDFLOW_JWT_SECRET": SECRET, **extra}
    return load_settings(None, environ=env)


def make_tables(dsn: str, layout: str) -> None:
    """The sink's tables in ``layout`` (TimescaleDB hypertables, or native monthly
    partitions as on a server without the extension), then the console's."""
    with psycopg.connect(dsn, autocommit=True) as c:
        if layout == "partitioned":
            sink_schema.apply_migrations(c, layout="partitioned")
        apply_migrations(c)
        assert table_layout(c, "alerts") == layout


@pytest.fixture(params=["timescale", "partitioned"])
def layout(request: pytest.FixtureRequest) -> str:
    """Both layouts the sink makes: the console's queries must work on each."""
    return str(request.param)


@pytest.fixture
def seeded(database: str, layout: str) -> tuple[str, list[dict[str, Any]]]:
    """A fresh database with the sink's and the console's tables and 120 alerts."""
    make_tables(database, layout)
    rng = random.Random(7)
    rows = [alert_row(i, rng) for i in range(120)]
    insert(database, rows)
    return database, rows


@pytest.fixture
def console(
    seeded: tuple[str, list[dict[str, Any]]], broker: EmbeddedBroker, topic: str
) -> Iterator[Console]:
    dsn, rows = seeded
    broker.create_topic(f"{topic}-labels", 1)
    settings = console_settings(
        dsn, FRAUDFLOW_BROKERS=broker.bootstrap, FRAUDFLOW_LABELS_TOPIC=f"{topic}-labels"
    )
    with TestClient(create_app(settings)) as client:
        yield Console(client, dsn, settings, rows)

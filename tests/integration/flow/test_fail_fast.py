"""Issue 18 item 2: `fraudflow run` fails fast, with one line naming what is wrong and no
traceback, on a dead broker, a missing input topic, bad rules, a busy metrics port and an
unreachable Redis; nothing is created or migrated first."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from fraudflow.connectors.broker import EmbeddedBroker, free_port
from tests.support.system import fresh_database

pytestmark = pytest.mark.integration


def run(*flags: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "fraudflow", "run", "--exit-at-end", "--quiet", *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("fraudflow: error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    return errors[0]


def test_a_dead_broker_fails_within_the_startup_timeout_naming_it() -> None:
    dead = f"127.0.0.1:{free_port()}"
    done = run("--brokers", dead, "--startup-timeout", "3s")
    line = one_error_line(done)
    assert dead in line
    assert "kafka.brokers" in line
    assert done.stderr.count("Connection refused") < 5, "librdkafka lines are not rate-limited"


def test_a_missing_input_topic_fails_naming_it_and_is_not_created(
    broker: EmbeddedBroker, topic: str
) -> None:
    done = run("--brokers", broker.bootstrap, "--input-topic", topic)
    line = one_error_line(done)
    assert done.returncode == 2
    assert repr(topic) in line
    assert "kafka.input_topic" in line
    listed = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert topic not in listed.topics, "the run created the missing topic"


def test_bad_rules_fail_before_any_migration(
    broker: EmbeddedBroker, postgres_dsn: str, topic: str, tmp_path: Path
) -> None:
    broker.create_topic(topic, partitions=1)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.yaml").write_text("rules:\n  - id: x\n    when: amount >>> 3\n")
    with fresh_database(postgres_dsn) as db:
        done = run("--brokers", broker.bootstrap, "--input-topic", topic, "--rules", str(rules),
                   "--postgres-dsn", db)  # fmt: skip
        line = one_error_line(done)
        assert "rules.rules" in line
        with psycopg.connect(db) as c:
            tables = c.execute(
                "select count(*) from information_schema.tables where table_schema = 'public'"
            ).fetchone()
        assert tables == (0,), "a migration ran before the rules were checked"


def test_a_busy_metrics_port_fails_naming_it(broker: EmbeddedBroker, topic: str) -> None:
    broker.create_topic(topic, partitions=1)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run("--brokers", broker.bootstrap, "--input-topic", topic,
                   "--metrics-port", str(port))  # fmt: skip
    line = one_error_line(done)
    assert "sinks.metrics_port" in line
    assert str(port) in line


def test_an_unreachable_redis_fails_at_start(broker: EmbeddedBroker, topic: str) -> None:
    broker.create_topic(topic, partitions=1)
    port = free_port()
    done = run("--brokers", broker.bootstrap, "--input-topic", topic,
               "--redis-url", f"redis://:hunter2@127.0.0.1:{port}/0")  # fmt: skip
    line = one_error_line(done)
    assert "sinks.redis_url" in line
    assert str(port) in line
    assert "hunter2" not in done.stderr

"""The flow's Kafka source consumers: fetch wait default, pass-through wins."""

from __future__ import annotations

import pytest

from fraudflow.config.settings import KafkaSettings
from fraudflow.connectors.kafka import SOURCE_FETCH_WAIT_MS, topic_source


def _config(k: KafkaSettings) -> dict[str, object]:
    src = topic_source(k, "t")
    return dict(src._add_config)  # what the partitions' consumers get


def test_source_fetch_wait_defaults_to_short_wait() -> None:
    conf = _config(KafkaSettings(brokers=("b:9092",)))
    assert conf["fetch.wait.max.ms"] == SOURCE_FETCH_WAIT_MS == "100"
    assert "bootstrap.servers" not in conf


@pytest.mark.parametrize("wait", ["5", "500"])
def test_kafka_config_overrides_fetch_wait(wait: str) -> None:
    k = KafkaSettings(brokers=("b:9092",), kafka_config={"fetch.wait.max.ms": wait})
    assert _config(k)["fetch.wait.max.ms"] == wait

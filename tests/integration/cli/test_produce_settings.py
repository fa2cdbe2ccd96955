"""`fraudflow produce` to the real broker with brokers and topic from the settings surface."""

from __future__ import annotations

import pytest

from fraudflow.cli import main as cli_main
from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.topics import read_topic

pytestmark = pytest.mark.integration


def test_brokers_and_topic_from_the_environment_and_the_flag_over_them(
    broker: EmbeddedBroker, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRAUDFLOW_CONFIG", raising=False)
    monkeypatch.setenv("FRAUDFLOW_BROKERS", broker.bootstrap)
    monkeypatch.setenv("FRAUDFLOW_INPUT_TOPIC", f"{topic}-env")
    assert cli_main(["produce", "--count", "40", "--quiet"]) == 0
    assert len(read_topic(broker.bootstrap, f"{topic}-env")) == 40
    assert cli_main(["produce", "--count", "7", "--topic", f"{topic}-flag", "--quiet"]) == 0
    assert len(read_topic(broker.bootstrap, f"{topic}-flag")) == 7
    assert len(read_topic(broker.bootstrap, f"{topic}-env")) == 40

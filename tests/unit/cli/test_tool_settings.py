"""`produce`, `evaluate` and `bench` read brokers and topics through the one settings
surface (issue 14 item 5): flags, then FRAUDFLOW_* variables, then FRAUDFLOW_CONFIG's file,
with errors naming the flag or variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudflow.cli import main as cli_main
from fraudflow.cli.bench.flow import flow_client_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FRAUDFLOW_BROKERS", "FRAUDFLOW_INPUT_TOPIC", "FRAUDFLOW_CONFIG",
                 "FRAUDFLOW_KAFKA_CONFIG", "FRAUDFLOW_SOURCE_BATCH_SIZE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_produce_out_with_brokers_in_the_environment_writes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The known behaviour change: FRAUDFLOW_BROKERS used to count as a second destination
    beside --out (refused); a setting in the environment is not a choice of destination."""
    monkeypatch.setenv("FRAUDFLOW_BROKERS", "127.0.0.1:1")
    out = tmp_path / "x.jsonl"
    assert cli_main(["produce", "--out", str(out), "--count", "5", "--quiet"]) == 0
    assert len(out.read_bytes().splitlines()) == 5


def test_produce_out_with_a_brokers_flag_is_still_two_destinations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["produce", "--out", str(tmp_path / "x.jsonl"), "--brokers", "h:1", "--count", "5"]
    assert cli_main(argv) == 2
    assert "give either" in capsys.readouterr().err


def test_produce_without_any_brokers_says_where_to_give_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main(["produce", "--count", "5", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "FRAUDFLOW_BROKERS" in err
    assert "--out" in err


def test_a_bad_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FRAUDFLOW_BROKERS", "127.0.0.1:1")
    monkeypatch.setenv("FRAUDFLOW_SOURCE_BATCH_SIZE", "many")
    assert cli_main(["produce", "--count", "5", "--quiet"]) == 2
    assert "FRAUDFLOW_SOURCE_BATCH_SIZE" in capsys.readouterr().err
    truth = ["--truth", "t.jsonl", "--alerts-topic", "alerts"]
    assert cli_main(["evaluate", *truth]) == 2
    assert "FRAUDFLOW_SOURCE_BATCH_SIZE" in capsys.readouterr().err


def test_evaluate_takes_brokers_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config file's kafka.brokers counts, as for `run` (before: only the variable)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  brokers: 127.0.0.1:1\n")
    truth = ["--truth", str(tmp_path / "t.jsonl"), "--alerts-topic", "alerts", "--timeout", "1"]
    assert cli_main(["evaluate", *truth]) == 2
    assert "needs --brokers" in capsys.readouterr().err
    monkeypatch.setenv("FRAUDFLOW_CONFIG", str(cfg))
    code = cli_main(["evaluate", *truth])
    err = capsys.readouterr().err
    assert "needs --brokers" not in err  # it got as far as the broker (unreachable here)
    assert code != 0


def test_bench_records_the_flows_client_settings_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert flow_client_settings() == {"flow_kafka_config": "", "flow_source_batch_size": "1000"}
    monkeypatch.setenv("FRAUDFLOW_KAFKA_CONFIG", "linger.ms=5,sasl.password=hunter2")
    monkeypatch.setenv("FRAUDFLOW_SOURCE_BATCH_SIZE", "250")
    got = flow_client_settings()
    assert got["flow_source_batch_size"] == "250"
    assert "linger.ms=5" in got["flow_kafka_config"]
    assert "hunter2" not in got["flow_kafka_config"]

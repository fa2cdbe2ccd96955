"""Settings: precedence, coercion, validation messages, secrets, docs in sync."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from fraudflow.config.settings import FIELDS, ConfigError, Settings, load_settings, parse_duration

ROOT = Path(__file__).resolve().parents[3]


def test_yaml_then_environment_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "kafka:\n  brokers: a:1\n  input_topic: from-yaml\nensemble:\n  review_threshold: 0.4\n"
    )
    s = load_settings(f, environ={"FRAUDFLOW_INPUT_TOPIC": "from-env"})
    assert s.kafka.brokers == ("a:1",)
    assert s.kafka.input_topic == "from-env"
    assert s.ensemble.review_threshold == 0.4
    s = load_settings(
        f, {"input_topic": "from-flag"}, environ={"FRAUDFLOW_INPUT_TOPIC": "from-env"}
    )
    assert s.kafka.input_topic == "from-flag"


def test_config_file_from_environment(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("features:\n  windows: [30s, 2h]\n")
    s = load_settings(environ={"FRAUDFLOW_CONFIG": str(f)})
    assert s.features.windows == (timedelta(seconds=30), timedelta(hours=2))


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("kafka:\n  nope: 1\n", "unknown setting kafka.nope"),
        ("nosection:\n  a: 1\n", "unknown section 'nosection'"),
        (
            "ensemble:\n  review_threshold: 0.9\n  block_threshold: 0.5\n",
            "review_threshold < block_threshold",
        ),
        ("model:\n  hst_trees: many\n", "model.hst_trees"),
        ("features:\n  idle_ttl: forever\n", "not a duration"),
        ("kafka: [1, 2]\n", "must be a mapping"),
        ("kafka:\n  brokers: [a, b\n", "s.yaml"),
    ],
)
def test_bad_files_are_rejected_naming_the_setting(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(f, environ={})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="environment: FRAUDFLOW_METRICS_PORT: not an integer"):
        load_settings(environ={"FRAUDFLOW_METRICS_PORT": "ninety"})


def test_secrets_never_show() -> None:
    s = load_settings(environ={"FRAUDFLOW_POSTGRES_DSN": "postgresql://u:hunter2@h/db"})
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s)
    assert s.sinks.postgres_dsn is not None
    assert s.sinks.postgres_dsn.reveal().endswith("hunter2@h/db")


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.kafka.brokers = ("x",)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("7d", 604800), ("1h30m", 5400), ("12", 12)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_every_setting_has_documentation() -> None:
    for name, (_sec, f) in FIELDS.items():
        assert f.metadata.get("doc"), name


def test_configuration_doc_is_current() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fraudflow", "config", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert out.strip() in doc, "regenerate docs/configuration.md with `fraudflow config --markdown`"


def test_feedback_entity_fields_are_checked() -> None:
    s = Settings().replace(feedback=True, entity_fields="merchant_id,user_id,channel")
    assert s.feedback.entity_fields == ("merchant_id", "user_id", "channel")
    with pytest.raises(ConfigError, match="entity_fields: amount; choose distinct fields"):
        Settings().replace(entity_fields="merchant_id,amount")
    with pytest.raises(ConfigError, match="entity_fields: duplicates"):
        Settings().replace(entity_fields="country,country")
    with pytest.raises(ConfigError, match="whole days"):
        Settings().replace(entity_windows="36h")
    with pytest.raises(ConfigError, match="one or more"):
        Settings().replace(entity_windows="")

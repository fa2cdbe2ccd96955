"""Settings: precedence, coercion, validation messages, secrets, docs in sync."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from fraudflow.config.settings import (
    FIELDS,
    RETIRED,
    ConfigError,
    Settings,
    load_settings,
    parse_duration,
    unknown_variables,
)

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


RETIRED_MESSAGE = r"was retired with the in-flow feedback step; remove it .*docs/training\.md"


@pytest.mark.parametrize(
    ("section", "name", "value"),
    [
        ("feedback", "feedback", "true"),
        ("feedback", "feedback", "false"),  # off too: the key is gone, not only the step
        ("feedback", "label_horizon", "14d"),
        ("feedback", "early_label_horizon", "1h"),
        ("feedback", "entity_windows", "[7d, 28d]"),
        ("feedback", "supervised_warmup", "30"),
        ("ensemble", "weight_supervised", "0.5"),
        ("ensemble", "weight_entity", "1.0"),
    ],
)
def test_a_retired_setting_in_a_file_is_an_error_naming_it(
    tmp_path: Path, section: str, name: str, value: str
) -> None:
    f = tmp_path / "old.yaml"
    f.write_text(f"{section}:\n  {name}: {value}\n")
    with pytest.raises(ConfigError, match=f"{f}: {section}.{name} {RETIRED_MESSAGE}"):
        load_settings(f, environ={})


@pytest.mark.parametrize("name", sorted(RETIRED))
def test_a_retired_variable_or_override_is_an_error_not_a_warning(name: str) -> None:
    var = f"FRAUDFLOW_{name.upper()}"
    with pytest.raises(ConfigError, match=f"environment: {var}: {RETIRED[name]}.{name} "):
        load_settings(environ={var: "1"})
    assert unknown_variables({var: "1"}) == []  # reported once, as the error
    with pytest.raises(ConfigError, match=f"override: {RETIRED[name]}.{name} {RETIRED_MESSAGE}"):
        Settings().replace(**{name: "1"})
    with pytest.raises(ConfigError, match=f"flag --{name.replace('_', '-')}: "):
        load_settings(flags={name: True}, environ={})


def test_the_settings_kept_for_training_still_load(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "feedback:\n  feature_log: true\n  label_store: true\n  label_orphan_horizon: 10d\n"
    )
    s = load_settings(f, environ={"FRAUDFLOW_MODEL_PIN": "v1"})
    assert (s.feedback.feature_log, s.feedback.label_store) == (True, True)
    assert s.feedback.label_orphan_horizon == timedelta(days=10)
    assert s.feedback.model_pin == "v1"
    assert not RETIRED.keys() & FIELDS.keys()

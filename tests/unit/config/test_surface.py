"""Issue 14 item 5 / issue 18 item 4: one settings surface. Each message names the flag,
variable or file key; every problem is listed at once; typos get the closest name; unknown
FRAUDFLOW_* variables are warned about; ``config --effective`` shows each value's source."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fraudflow.config.settings import FIELDS, SECTIONS, ConfigError, load_settings, resolve


def problems_of(**kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        resolve(**kw)
    return info.value.problems


UNITS = "(use e.g. 500ms, 30s, 5m, 36h, 7d)"
KINDS = [  # (setting, bad value, what the message says about it)
    ("metrics_port", "ninety", "not an integer: 'ninety'"),
    ("hst_trees", "2.5", "not an integer: '2.5'"),
    ("weight_hst", "heavy", "not a number: 'heavy'"),
    ("from_beginning", "maybe", "not a boolean (true/false, yes/no, on/off, 1/0): 'maybe'"),
    ("idle_ttl", "forever", f"not a duration: 'forever' {UNITS}"),
    ("windows", "1m,soon", f"not a duration: 'soon' {UNITS}"),
    ("kafka_config", "acks", "not KEY=VALUE[,KEY=VALUE...] pairs"),
]


@pytest.mark.parametrize(("name", "value", "says"), KINDS)
def test_a_bad_flag_is_named_as_the_flag(name: str, value: str, says: str) -> None:
    flag = "--" + name.replace("_", "-")
    assert problems_of(flags={name: value}, environ={}) == [f"flag {flag}: {says}"]


@pytest.mark.parametrize(("name", "value", "says"), KINDS)
def test_a_bad_variable_is_named_as_the_variable(name: str, value: str, says: str) -> None:
    var = "FRAUDFLOW_" + name.upper()
    assert problems_of(environ={var: value}) == [f"environment: {var}: {says}"]


@pytest.mark.parametrize(("name", "value", "says"), KINDS)
def test_a_bad_file_key_is_named_with_file_and_section(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    sec = FIELDS[name][0]
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({sec: {name: value}}))
    assert problems_of(path=f, environ={}) == [f"{f}: {sec}.{name}: {says}"]


@pytest.mark.parametrize(
    ("yaml_value", "says"),
    [
        ("[1, 2]", "not an integer: [1, 2]"),
        ("{a: 1}", "not an integer: {'a': 1}"),
        ("true", "not an integer: True"),
    ],
)
def test_wrong_yaml_types_say_what_was_expected(tmp_path: Path, yaml_value: str, says: str) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(f"model:\n  seed: {yaml_value}\n")
    assert problems_of(path=f, environ={}) == [f"{f}: model.seed: {says}"]


def test_every_problem_of_file_environment_and_flags_at_once(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("kafka:\n  brokerz: a\n  source_batch_size: lots\nmodle:\n  seed: 1\n")
    env = {"FRAUDFLOW_SEED": "x", "FRAUDFLOW_REVIEW_THRESHOLD": "0.9"}
    with pytest.raises(ConfigError) as info:
        resolve(f, {"hst_trees": "0", "profile_ttl": "soon"}, env)
    assert info.value.problems == [
        f"{f}: unknown setting kafka.brokerz (did you mean 'brokers'?)",
        f"{f}: kafka.source_batch_size: not an integer: 'lots'",
        f"{f}: unknown section 'modle' (did you mean 'model'?) (known: {', '.join(SECTIONS)})",
        "environment: FRAUDFLOW_SEED: not an integer: 'x'",
        "flag --profile-ttl: not a duration: 'soon' (use e.g. 500ms, 30s, 5m, 36h, 7d)",
        "ensemble: need 0 < review_threshold < block_threshold <= 1, got 0.9 and 0.85 "
        "(set by env FRAUDFLOW_REVIEW_THRESHOLD)",
        "model.hst_trees: must be >= 1 (set by flag --hst-trees)",
    ]
    assert str(info.value).startswith("7 problems in the settings:\n  ")


@pytest.mark.parametrize(
    ("where", "typo", "suggestion"),
    [
        ("flag", "hst_tres", "did you mean '--hst-trees'?"),
        ("file", "featurs", "did you mean 'features'?"),
        ("file key", "alowed_lateness", "did you mean 'allowed_lateness'?"),
        ("file key", "seed", "it belongs in section 'model'"),
    ],
)
def test_typos_get_the_closest_name(
    tmp_path: Path, where: str, typo: str, suggestion: str
) -> None:
    f = tmp_path / "s.yaml"
    if where == "flag":
        (problem,) = problems_of(flags={typo: "1"}, environ={})
    else:
        body = {typo: {"x": 1}} if where == "file" else {"features": {typo: 1}}
        f.write_text(yaml.safe_dump(body))
        (problem,) = problems_of(path=f, environ={})
    assert suggestion in problem


def test_unknown_variables_are_warned_about_one_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {
        "FRAUDFLOW_BROKER": "h:9092",
        "FRAUDFLOW_SNAPSHOT_INTERVALL": "5s",
        "FRAUDFLOW_SEED_FILE": "/x",  # _FILE exists for secrets only
        "FRAUDFLOW_POSTGRES_DSN_FILE": "",  # a secret's file variable is known
        "FRAUDFLOW_TEST_PG_DSN": "x",  # the test suite's own
        "FRAUDFLOW_SEED": "3",
        "OTHER": "1",
    }
    with caplog.at_level(logging.WARNING, logger="fraudflow.config"):
        s = load_settings(environ=env)
    assert s.model.seed == 3
    assert [r.getMessage() for r in caplog.records] == [
        "FRAUDFLOW_BROKER is not a setting and is ignored (did you mean 'FRAUDFLOW_BROKERS'?)",
        "FRAUDFLOW_SEED_FILE is not a setting and is ignored (did you mean 'FRAUDFLOW_SEED'?)",
        "FRAUDFLOW_SNAPSHOT_INTERVALL is not a setting and is ignored "
        "(did you mean 'FRAUDFLOW_SNAPSHOT_INTERVAL'?)",
    ]


@given(value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=6,
))  # fmt: skip
def test_any_value_loads_or_gives_a_message_naming_the_flag(value: object) -> None:
    for name, (sec, _f) in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        try:
            load_settings(environ={}, flags={name: value})
        except ConfigError as exc:
            for p in exc.problems:
                assert p.startswith(f"flag {flag}: ") or (
                    p.startswith(sec) and p.endswith(f"flag {flag})") and name in p
                ), p
                for raw in ("object is not", "invalid literal", "unpack", "Traceback"):
                    assert raw not in p


def test_config_effective_shows_sources_and_masks_secrets(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("kafka:\n  input_topic: tx\n  kafka_config:\n    sasl.password: Pw-File-1\n")
    secret = tmp_path / "dsn"
    secret.write_text("postgresql://app:Pw-Env-2@db/fraud\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "FRAUDFLOW_CONFIG": str(f),
        "FRAUDFLOW_SEED": "9",
        "FRAUDFLOW_POSTGRES_DSN_FILE": str(secret),
        "FRAUDFLOW_REDIS_URL": "redis://:Pw-Env-3@r:6379/0",
        "FRAUDFLOW_INPUT_TOPK": "x",
    }
    done = subprocess.run(
        [sys.executable, "-m", "fraudflow", "config", "--effective", "--brokers", "b:9092",
         "--seed", "11"],
        capture_output=True, text=True, check=False, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {line.split(" = ")[0]: line for line in done.stdout.splitlines()}
    assert len(rows) == len(FIELDS)

    def shown(key: str) -> tuple[str, str]:
        value, _, source = rows[key].partition(" = ")[2].rpartition("[")
        return value.strip(), source.rstrip("]")

    assert shown("kafka.brokers") == ("b:9092", "flag --brokers")
    assert shown("model.seed") == ("11", "flag --seed")  # the flag beats the variable
    assert shown("kafka.input_topic") == ("tx", f"file {f}")
    assert shown("kafka.kafka_config") == ("sasl.password=***", f"file {f}")
    assert shown("sinks.postgres_dsn") == ("***", "env FRAUDFLOW_POSTGRES_DSN_FILE")
    assert shown("sinks.redis_url") == ("***", "env FRAUDFLOW_REDIS_URL")
    assert shown("model.hst_trees") == ("15", "default")
    for pw in ("Pw-File-1", "Pw-Env-2", "Pw-Env-3"):
        assert pw not in done.stdout + done.stderr
    assert "FRAUDFLOW_INPUT_TOPK is not a setting and is ignored " in done.stderr
    assert "(did you mean 'FRAUDFLOW_INPUT_TOPIC'?)" in done.stderr


def test_config_effective_lists_every_problem_and_exits_2() -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "FRAUDFLOW_SEED": "x"}
    done = subprocess.run(
        [sys.executable, "-m", "fraudflow", "config", "--effective", "--hst-trees", "many"],
        capture_output=True, text=True, check=False, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        "fraudflow: error: 2 problems in the settings:\n"
        "  environment: FRAUDFLOW_SEED: not an integer: 'x'\n"
        "  flag --hst-trees: not an integer: 'many'\n"
    )

"""Issue 13 item 8: no printed setting, error or documented command shows a secret."""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraudflow.config.settings import ConfigError, load_settings, masked_lines
from fraudflow.flows.wiring import check_dsns
from fraudflow.sinks.metrics import start_metrics_server
from fraudflow.tools.common import warn_secret_flags

SECRETS = ("Sasl-Pw-1x", "Ssl-Key-Pw-2y", "Pg-Pw-3z", "Redis-Pw-4w", "Oauth-Secret-5v")


def settings_file(tmp_path: Path) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(
        "kafka:\n"
        "  brokers: [b1:9092]\n"
        "  kafka_config:\n"
        f"    sasl.password: {SECRETS[0]}\n"
        f"    ssl.key.password: {SECRETS[1]}\n"
        f"    sasl.oauthbearer.client.secret: {SECRETS[4]}\n"
        "    acks: all\n"
        "sinks:\n"
        f"  postgres_dsn: postgresql://app:{SECRETS[2]}@db:5432/fraud\n",
        encoding="utf-8",
    )
    return p


def test_config_check_masks_every_secret(tmp_path: Path) -> None:
    env = {"FRAUDFLOW_REDIS_URL": f"redis://:{SECRETS[3]}@r:6379/0", "PATH": "/usr/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "fraudflow", "config", "--check", str(settings_file(tmp_path))],
        capture_output=True, text=True, check=False, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for s in SECRETS:
        assert s not in done.stdout + done.stderr
    assert "acks=all" in done.stdout  # the other pass-through options are still shown
    assert "sinks.postgres_dsn = ***" in done.stdout
    assert "kafka.brokers = b1:9092" in done.stdout


def test_repr_of_settings_masks_pass_through_secrets(tmp_path: Path) -> None:
    s = load_settings(settings_file(tmp_path), environ={})
    text = repr(s) + "\n".join(masked_lines(s))
    for secret in SECRETS[:3]:
        assert secret not in text
    assert "'acks': 'all'" in text


def test_secret_from_a_file(tmp_path: Path) -> None:
    f = tmp_path / "dsn"
    f.write_text(f"postgresql://app:{SECRETS[2]}@db/x\n", encoding="utf-8")
    s = load_settings(environ={"FRAUDFLOW_POSTGRES_DSN_FILE": str(f)})
    assert s.sinks.postgres_dsn is not None
    assert s.sinks.postgres_dsn.reveal() == f"postgresql://app:{SECRETS[2]}@db/x"
    with pytest.raises(ConfigError, match="both FRAUDFLOW_POSTGRES_DSN and"):
        load_settings(
            environ={"FRAUDFLOW_POSTGRES_DSN_FILE": str(f), "FRAUDFLOW_POSTGRES_DSN": "x"}
        )
    with pytest.raises(ConfigError, match="FRAUDFLOW_SASL_PASSWORD_FILE: cannot read"):
        load_settings(environ={"FRAUDFLOW_SASL_PASSWORD_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql//app:{pw}@db/x",  # no colon after the scheme
        "postgresql://app:{pw}%zz@db/x",  # bad percent-encoding
        "host=db password={pw} x dbname",  # a space in an unquoted password
        "host=db password='{pw}",  # unterminated quote
    ],
)
def test_a_malformed_dsn_is_never_echoed(dsn: str) -> None:
    pw = "Hunter2Secret"
    s = load_settings(environ={"FRAUDFLOW_POSTGRES_DSN": dsn.format(pw=pw)})
    with pytest.raises(ConfigError) as err:
        check_dsns(s)
    msg = str(err.value)
    assert msg.startswith("sinks.postgres_dsn: not a valid PostgreSQL DSN")
    assert "Hunter" not in msg
    assert "Secret" not in msg
    assert err.value.__cause__ is None


@given(st.text(max_size=30))
def test_no_malformed_dsn_or_url_echoes_its_password(junk: str) -> None:
    pw = "Zq9Marker"
    for name, value in (
        ("postgres_dsn", f"postgresql://u:{pw}{junk}@h/db"),
        ("postgres_dsn", f"host=h password={pw}{junk}"),
        ("redis_url", f"redis://:{pw}{junk}@h:6379/0"),
    ):
        shown = ""
        try:
            check_dsns(load_settings(environ={f"FRAUDFLOW_{name.upper()}": value}))
        except ConfigError as exc:
            shown = str(exc)
        assert pw not in shown


def test_a_password_flag_warns(caplog: pytest.LogCaptureFixture) -> None:
    args = argparse.Namespace(postgres_dsn="postgresql://u:pw@h/db", redis_url="redis://h/0")
    with caplog.at_level(logging.WARNING):
        warn_secret_flags(args)
    assert "--postgres-dsn carries a password" in caplog.text
    assert "FRAUDFLOW_POSTGRES_DSN_FILE" in caplog.text
    assert "redis-url" not in caplog.text  # no password in that one
    assert "pw@" not in caplog.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the IPv4 sockets listening on ``port`` (from /proc/net/tcp)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        hex_ip, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            out.add(socket.inet_ntoa(bytes.fromhex(hex_ip)[::-1]))
    return out


def test_metrics_bind_to_the_configured_address() -> None:
    assert load_settings(environ={}).sinks.metrics_host == "127.0.0.1"
    port = free_port()
    start_metrics_server(port, "127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert b"fraudflow_" in r.read()
    assert listening_addresses(port) == {"127.0.0.1"}
    wide = free_port()
    start_metrics_server(wide, "0.0.0.0")
    assert listening_addresses(wide) == {"0.0.0.0"}

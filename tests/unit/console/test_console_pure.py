"""Pure parts of the console: cursors, label messages, rule overlays, backtest comparison."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraudflow.config.settings import Settings, ValidationSettings
from fraudflow.console.auth import Authenticator
from fraudflow.console.jobs import RulesProposalError, check_rules, compare, overlay_rules
from fraudflow.console.labels import label_message
from fraudflow.console.store import AlertFilter, BadRequest, decode_cursor, encode_cursor
from fraudflow.operators.ingest.labels import parse_label
from fraudflow.records import Label, RuleHit

ids = st.text(min_size=1, max_size=128).filter(lambda s: s.strip() == s and s)


@given(score=st.floats(0, 1), alert_id=st.text(max_size=80))
def test_score_cursor_round_trip(score: float, alert_id: str) -> None:
    c = encode_cursor("score", {"score": score, "alert_id": alert_id})
    assert decode_cursor(c, "score") == (score, alert_id)


@given(ms=st.integers(0, 4_000_000_000_000), alert_id=st.text(max_size=80))
def test_time_cursor_round_trip(ms: int, alert_id: str) -> None:
    t = datetime.fromtimestamp(ms / 1000, UTC)
    c = encode_cursor("time", {"event_time": t, "alert_id": alert_id})
    got, aid = decode_cursor(c, "time")
    assert aid == alert_id
    assert abs((got - t).total_seconds()) < 1e-3


@given(st.text(max_size=200))
def test_any_string_is_a_cursor_or_a_bad_request(text: str) -> None:
    """Whatever a client sends as a cursor decodes or is a BadRequest naming it (never a 500)."""
    error: BadRequest | None = None
    try:
        decode_cursor(text, "score")
    except BadRequest as exc:
        error = exc
    assert error is None or "cursor" in str(error)


def test_cursor_of_another_sort_is_refused() -> None:
    c = encode_cursor("score", {"score": 0.5, "alert_id": "a"})
    with pytest.raises(BadRequest, match="another sort"):
        decode_cursor(c, "time")


@given(
    # ids as the flow accepts them (it dead-letters control characters before any alert)
    tid=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=128).filter(
        lambda s: s.strip() != ""
    ),
    label=st.sampled_from(["fraud", "legit"]),
    seconds=st.integers(1_600_000_000, 2_000_000_000),
)
def test_a_verdict_is_a_label_the_flow_reads(tid: str, label: str, seconds: int) -> None:
    at = datetime.fromtimestamp(seconds, UTC)
    msg = SimpleNamespace(
        key=b"u1", value=label_message(tid, label, at), topic="labels", partition=0, offset=1
    )
    got = parse_label(msg, ValidationSettings(), float(seconds))
    assert isinstance(got, Label), got
    assert got.transaction_id == tid
    assert got.label == (1 if label == "fraud" else 0)
    assert got.reported_at == float(seconds)


@pytest.mark.parametrize(
    "kw",
    [{"tier": "approve"}, {"status": "closed"}, {"sort": "amount"}, {"limit": 0},
     {"limit": 501}, {"min_score": 1.5}, {"since": datetime(2026, 1, 1)}],  # noqa: DTZ001
)  # fmt: skip
def test_filter_validation(kw: dict[str, object]) -> None:
    with pytest.raises(BadRequest, match=next(iter(kw)).replace("since", "since")):
        AlertFilter(**kw)  # type: ignore[arg-type]


def test_overlay_refuses_paths_outside_the_directory(tmp_path: Path) -> None:
    src = tmp_path / "rules"
    src.mkdir()
    (src / "a.yaml").write_text("rules: []\n")
    for bad in ("../x.yaml", "/etc/x.yaml", "x.txt", "", "lists/../../x.yaml"):
        with pytest.raises(RulesProposalError):
            overlay_rules(src, {bad: "rules: []\n"}, tmp_path / f"out{abs(hash(bad))}")
    out = overlay_rules(src, {"b.yaml": "rules: []\n", "a.yaml": ""}, tmp_path / "ok")
    assert sorted(p.name for p in out.iterdir()) == ["b.yaml"]


def test_check_rules_uses_the_rules_checker() -> None:
    ok = check_rules(Settings(), {})
    assert ok["ok"] is True
    assert ok["rules"] > 0
    bad = check_rules(
        Settings(),
        {"x.yaml": "rules:\n  - id: x\n    description: d\n    when: nope > 1\n    score: 0.5\n"},
    )
    assert bad["ok"] is False
    assert bad["diagnostics"][0]["file"] == "x.yaml"
    assert "nope" in bad["diagnostics"][0]["message"]


def _d(tid: str, alert: bool, score: float, rules: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        txn=SimpleNamespace(transaction_id=tid, user_id="u", amount=1.0),
        is_alert=alert,
        score=score,
        tier="review" if alert else "approve",
        rule_hits=[RuleHit(r, 0.5, None, "medium", "", {}) for r in rules],
    )


def test_compare_counts_added_dropped_and_confirmed() -> None:
    cur = [_d("t1", True, 0.9, ["r1"]), _d("t2", True, 0.6, []), _d("t3", False, 0.1, [])]
    new = [_d("t1", True, 0.9, ["r1"]), _d("t2", False, 0.4, []), _d("t3", True, 0.7, ["r2"])]
    out = compare(cur, new, {"t3": "fraud", "t2": "legit"})  # type: ignore[arg-type]
    assert (out["added"], out["dropped"]) == (1, 1)
    assert out["added_confirmed"] == {"fraud": 1, "legit": 0}
    assert out["dropped_confirmed"] == {"fraud": 0, "legit": 1}
    assert out["rules_changed"] == [{"rule_id": "r2", "hits_current": 0, "hits_proposed": 1}]
    assert out["added_alerts"][0]["score_before"] == 0.1


def test_token_command() -> None:
    env = {"FRAUDFLOW_JWT_SECRET": "s" * 40, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "fraudflow", "token", "--sub", "ana",
         "--roles", "analyst,viewer", "--ttl", "30m"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    p = Authenticator(secret="s" * 40).verify(done.stdout.strip())
    assert (p.subject, p.roles) == ("ana", ("viewer", "analyst"))
    no_secret = subprocess.run(
        [sys.executable, "-m", "fraudflow", "token", "--sub", "a", "--roles", "analyst"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False,
    )  # fmt: skip
    assert no_secret.returncode == 2
    assert "FRAUDFLOW_JWT_SECRET" in no_secret.stderr
    bad_role = subprocess.run(
        [sys.executable, "-m", "fraudflow", "token", "--sub", "a", "--roles", "root"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert bad_role.returncode == 2
    assert "unknown role" in bad_role.stderr
    assert "s" * 40 not in bad_role.stderr


def test_serve_without_a_database_or_key_names_the_setting() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fraudflow", "serve"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "FRAUDFLOW_POSTGRES_DSN" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "fraudflow", "serve"],
        capture_output=True, text=True, check=False, timeout=60,
        env={"PATH": "/usr/bin:/bin", "FRAUDFLOW_POSTGRES_DSN": "postgresql://u:pw-secret@h/db"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "FRAUDFLOW_JWT_SECRET" in done.stderr
    assert "pw-secret" not in done.stderr

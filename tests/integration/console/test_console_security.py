"""Authentication, roles, injection and audit: every /api/ route, generated from the app."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import orjson
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from fraudflow.console.app import COOKIE, UI_HEADER, create_app
from tests.integration.console.console_support import (
    SECRET,
    Console,
    alert_row,
    auth,
    insert,
    token,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def layout() -> str:
    """One storage layout here: these tests are about the API (test_console_api.py runs both)."""
    return "timescale"


def api_routes(console: Console) -> list[tuple[str, str]]:
    """(method, path) of every /api/ route of the app, path parameters filled in."""
    out = []
    for r in console.client.app.routes:  # type: ignore[attr-defined]
        if isinstance(r, APIRoute) and r.path.startswith("/api/"):
            path = r.path.replace("{alert_id}", "a000001").replace("{user_id}", "u001")
            path = path.replace("{job_id}", "0" * 32)
            out += [(m, path) for m in sorted(r.methods)]
    assert len(out) >= 10, out  # the list is the app's, not a copy that could fall behind
    return out


def _claims(**over: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "sub": "eve",
        "roles": ["admin"],
        "exp": int((now + timedelta(hours=1)).timestamp()),
        **over,
    }


def _tampered() -> str:
    head, _payload, sig = token("eve", ("viewer",)).split(".")
    payload = base64.urlsafe_b64encode(orjson.dumps(_claims())).decode().rstrip("=")
    return f"{head}.{payload}.{sig}"  # roles raised to admin, signature of the viewer token


def _rsa_token() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(_claims(), key, algorithm="RS256")


def _none_token() -> str:
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(orjson.dumps(_claims())).decode().rstrip("=")
    return f"{head}.{body}."


BAD_TOKENS = {
    "no token": None,
    "empty bearer": "",
    "garbage": "not-a-jwt",
    "expired": "EXPIRED",
    "tampered": "TAMPERED",
    "wrong key": "WRONG_KEY",
    "alg none": "NONE",
    "alg HS512": "HS512",
    "alg RS256 (server takes HS256)": "RS256",
    "no exp": "NO_EXP",
}


def _make(kind: str | None) -> str | None:
    if kind is None or kind == "":
        return kind
    return {
        "EXPIRED": lambda: token("eve", ("admin",), ttl=-3600),
        "TAMPERED": _tampered,
        "WRONG_KEY": lambda: jwt.encode(_claims(), "another-secret-" + "y" * 32, algorithm="HS256"),
        "NONE": _none_token,
        "HS512": lambda: jwt.encode(_claims(), SECRET, algorithm="HS512"),
        "RS256": _rsa_token,
        "NO_EXP": lambda: jwt.encode({"sub": "eve", "roles": ["admin"]}, SECRET, algorithm="HS256"),
    }.get(kind, lambda: kind)()


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_every_api_route_refuses_a_missing_or_bad_token(console: Console, case: str) -> None:
    tok = _make(BAD_TOKENS[case])
    headers = {} if tok is None else {"Authorization": f"Bearer {tok}"}
    for method, path in api_routes(console):
        r = console.client.request(method, path, headers=headers, json={"label": "fraud"})
        assert r.status_code == 401, (case, method, path, r.status_code, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
    # and a route that does not exist does not tell who may see it
    assert console.client.get("/api/nothing-here", headers=headers).status_code == 401
    with psycopg.connect(console.dsn) as c:
        assert c.execute("select count(*) from verdicts").fetchone() == (0,)


@pytest.mark.parametrize(
    ("roles", "method", "path", "body"),
    [
        (("viewer",), "POST", "/api/alerts/a000001/verdict", {"label": "fraud"}),
        (("rule_editor",), "POST", "/api/alerts/a000001/verdict", {"label": "fraud"}),
        ((), "GET", "/api/alerts", None),
        ((), "GET", "/api/alerts/a000001", None),
        (("viewer",), "POST", "/api/rules/check", {"files": {}}),
        (("analyst",), "POST", "/api/rules/check", {"files": {}}),
        (
            ("analyst",),
            "POST",
            "/api/rules/backtest",
            {"files": {}, "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"},
        ),
        (("analyst",), "GET", "/api/rules/backtest/" + "0" * 32, None),
        (("analyst", "rule_editor"), "GET", "/api/audit", None),
        (("superuser",), "GET", "/api/alerts", None),  # an unknown role is no role
    ],
)
def test_wrong_role_is_403(
    console: Console, roles: tuple[str, ...], method: str, path: str, body: Any
) -> None:
    claims = _claims(roles=list(roles))
    headers = {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}
    r = console.client.request(method, path, headers=headers, json=body)
    assert r.status_code == 403, r.text
    with psycopg.connect(console.dsn) as c:
        assert c.execute("select count(*) from verdicts").fetchone() == (0,)
        assert c.execute("select count(*) from audit").fetchone() == (0,)


def test_the_right_role_passes(console: Console) -> None:
    for roles in (("analyst",), ("admin",)):
        r = console.client.post(
            "/api/alerts/a000001/verdict", json={"label": "legit"}, headers=auth("x", roles)
        )
        assert r.status_code == 200, r.text
    assert console.client.get("/api/audit", headers=auth("root", ("admin",))).status_code == 200


NASTY = [
    "o'brien",
    "x' or '1'='1",
    "'; drop table alerts; --",
    'a" or "1"="1',
    "%",
    "_",
    "\\",
    "u001') or true --",
    "); delete from verdicts; --",
]


def _counts(dsn: str) -> tuple[Any, ...]:
    with psycopg.connect(dsn) as c:
        return tuple(
            c.execute(f"select count(*) from {t}").fetchone()[0]  # type: ignore[index]
            for t in ("alerts", "decisions", "verdicts", "alert_status", "audit")
        )


def test_sql_metacharacters_in_filters_match_literally_and_change_nothing(console: Console) -> None:
    rng = random.Random(5)
    odd = [
        alert_row(5000 + i, rng, user_id=v, rule_ids=[v[:80]], alert_id=f"odd{i}")
        for i, v in enumerate(NASTY)
    ]
    insert(console.dsn, odd)
    before = _counts(console.dsn)
    viewer = auth("vic", ("viewer",))
    for i, v in enumerate(NASTY):
        for param in ("user_id", "rule"):
            r = console.client.get("/api/alerts", params={param: v, "limit": 500}, headers=viewer)
            assert r.status_code == 200, (v, r.text)
            assert [a["alert_id"] for a in r.json()["alerts"]] == [f"odd{i}"], (param, v)
        r = console.client.get(f"/api/users/{v}", headers=viewer)
        assert r.status_code in (200, 404)
        assert r.status_code == 404 or {d["alert_id"] for d in r.json()["decisions"]} == {f"odd{i}"}
        assert console.client.get(f"/api/alerts/{v}", headers=viewer).status_code == 404
        for bad in (
            {"tier": v},
            {"status": v},
            {"sort": v},
            {"min_score": v},
            {"from": v},
            {"cursor": v},
        ):
            r = console.client.get("/api/alerts", params=bad, headers=viewer)
            assert r.status_code in (400, 422), (bad, r.status_code)
    assert _counts(console.dsn) == before
    # a note with metacharacters is stored as written
    note = NASTY[2]
    r = console.client.post(
        "/api/alerts/odd0/verdict", json={"label": "fraud", "note": note}, headers=auth()
    )
    assert r.status_code == 200
    with psycopg.connect(console.dsn) as c:
        assert c.execute("select note from verdicts").fetchall() == [(note,)]
        assert c.execute("select count(*) from alerts").fetchone()[0] == before[0]  # type: ignore[index]


def test_audit_records_each_verdict_with_its_author(console: Console) -> None:
    for who, aid, label in (
        ("ana", "a000001", "fraud"),
        ("bob", "a000002", "legit"),
        ("ana", "a000002", "fraud"),
    ):
        r = console.client.post(
            f"/api/alerts/{aid}/verdict", json={"label": label}, headers=auth(who)
        )
        assert r.status_code == 200
    r = console.client.get("/api/audit", headers=auth("root", ("admin",)))
    rows = [
        (a["actor"], a["action"], a["target"], a["detail"]["label"], a["roles"])
        for a in r.json()["audit"]
    ]
    assert rows == [
        ("ana", "verdict", "alert:a000002", "fraud", ["analyst"]),
        ("bob", "verdict", "alert:a000002", "legit", ["analyst"]),
        ("ana", "verdict", "alert:a000001", "fraud", ["analyst"]),
    ]
    assert r.json()["audit"][0]["detail"]["previous"] == "legit"


def test_ui_signs_in_with_a_cookie_that_the_api_takes_only_with_the_ui_header(
    console: Console,
) -> None:
    c = console.client
    r = c.get("/", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login")
    bad = c.post("/login", data={"token": "nope", "next": "/"}, follow_redirects=False)
    assert bad.status_code == 401
    assert COOKIE not in bad.cookies
    ok = c.post(
        "/login", data={"token": token("ana"), "next": "//evil.example/"}, follow_redirects=False
    )
    assert ok.status_code == 303
    assert ok.headers["location"] == "/"  # never off-site
    assert "httponly" in ok.headers["set-cookie"].lower()
    assert "samesite=strict" in ok.headers["set-cookie"].lower()
    page = c.get("/")
    assert page.status_code == 200
    assert "a000001" in page.text or "a0000" in page.text
    # the cookie alone (a cross-site form could send it) is not enough for the API
    assert c.post("/api/alerts/a000001/verdict", json={"label": "fraud"}).status_code == 401
    r = c.post("/api/alerts/a000001/verdict", json={"label": "fraud"}, headers={UI_HEADER: "1"})
    assert r.status_code == 200
    c.post("/logout")
    assert c.get("/", follow_redirects=False).status_code == 303


def test_rs256_public_key(console: Console, tmp_path: Any) -> None:
    """RS256 with a PEM public key: its tokens pass; HS256 signed with that public key
    (the algorithm-confusion attack) does not."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    settings = console.settings.replace(jwt_secret=None, jwt_public_key=str(tmp_path / "pub.pem"))
    good = jwt.encode(_claims(roles=["viewer"]), key, algorithm="RS256")
    with TestClient(create_app(settings)) as client:
        assert (
            client.get("/api/alerts", headers={"Authorization": f"Bearer {good}"}).status_code
            == 200
        )
        forged = _hs256_with(pem, _claims())
        assert (
            client.get("/api/alerts", headers={"Authorization": f"Bearer {forged}"}).status_code
            == 401
        )
        hs = token("eve", ("admin",))
        assert (
            client.get("/api/alerts", headers={"Authorization": f"Bearer {hs}"}).status_code == 401
        )


def _hs256_with(key: bytes, claims: dict[str, Any]) -> str:
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(orjson.dumps(claims)).decode().rstrip("=")
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}." + base64.urlsafe_b64encode(sig).decode().rstrip("=")

"""Tokens and roles (pure: no server)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fraudflow.config.settings import ConfigError
from fraudflow.console.auth import (
    READ,
    RULES,
    VERDICT,
    Authenticator,
    AuthError,
    Principal,
    mint_token,
)

SECRET = "k" * 40


def now() -> datetime:
    """The time a token is minted: at the call, never at import (a suite can run for long)."""
    return datetime.now(UTC)


def _tok(roles: object = ("analyst",), **claims: object) -> str:
    body = {"sub": "ana", "roles": roles, "exp": int((now() + timedelta(hours=1)).timestamp())}
    body.update(claims)
    return jwt.encode(body, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("roles", "read", "verdict", "rules"),
    [
        (("viewer",), True, False, False),
        (("analyst",), True, True, False),
        (("rule_editor",), True, False, True),
        (("admin",), True, True, True),
        (("analyst", "rule_editor"), True, True, True),
        ((), False, False, False),
    ],
)
def test_roles(roles: tuple[str, ...], read: bool, verdict: bool, rules: bool) -> None:
    p = Principal("x", roles)
    assert (p.allows(READ), p.allows(VERDICT), p.allows(RULES)) == (read, verdict, rules)


@pytest.mark.parametrize(
    ("claim", "roles"),
    [
        (["analyst", "viewer"], ("viewer", "analyst")),
        ("analyst viewer", ("viewer", "analyst")),
        (["root", "analyst"], ("analyst",)),  # unknown roles are dropped
        (42, ()),
        ([1, None], ()),
    ],
)
def test_roles_claim(claim: object, roles: tuple[str, ...]) -> None:
    assert Authenticator(secret=SECRET).verify(_tok(claim)).roles == roles


def test_mint_and_verify() -> None:
    t = mint_token(SECRET, "bob", ["rule_editor"], ttl=timedelta(minutes=5), now=now())
    assert Authenticator(secret=SECRET).verify(t) == Principal("bob", ("rule_editor",))
    with pytest.raises(ValueError, match="unknown role"):
        mint_token(SECRET, "bob", ["god"], ttl=timedelta(minutes=5), now=now())


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (
            lambda: mint_token(SECRET, "a", ["viewer"], ttl=timedelta(hours=-1), now=now()),
            "expired",
        ),
        (
            lambda: jwt.encode({"sub": "a", "exp": 9_999_999_999}, "z" * 40, algorithm="HS256"),
            "invalid",
        ),
        (
            lambda: jwt.encode({"sub": "a", "exp": 9_999_999_999}, SECRET, algorithm="HS384"),
            "algorithm",
        ),
        (lambda: jwt.encode({"sub": "a"}, SECRET, algorithm="HS256"), "exp"),
        (lambda: jwt.encode({"exp": 9_999_999_999}, SECRET, algorithm="HS256"), "sub"),
        (lambda: "abc.def", "malformed"),
        (
            lambda: (
                base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
                + "."
                + base64.urlsafe_b64encode(orjson.dumps({"sub": "a", "exp": 9_999_999_999}))
                .decode()
                .rstrip("=")
                + "."
            ),
            "algorithm",
        ),
    ],
)
def test_bad_tokens(token: object, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        Authenticator(secret=SECRET).verify(token())  # type: ignore[operator]


def test_audience_and_issuer() -> None:
    a = Authenticator(secret=SECRET, audience="console", issuer="idp")
    good = mint_token(
        SECRET, "a", ["viewer"], ttl=timedelta(hours=1), now=now(), audience="console", issuer="idp"
    )
    assert a.verify(good).subject == "a"
    for aud, iss in (("other", "idp"), ("console", "other"), (None, None)):
        t = mint_token(
            SECRET, "a", ["viewer"], ttl=timedelta(hours=1), now=now(), audience=aud, issuer=iss
        )
        with pytest.raises(AuthError):
            a.verify(t)


def test_rs256_only_accepts_rs256() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    a = Authenticator(public_key=pem)
    assert a.algorithms == ("RS256",)
    claims = {"sub": "a", "roles": ["viewer"], "exp": 9_999_999_999}
    assert a.verify(jwt.encode(claims, key, algorithm="RS256")).roles == ("viewer",)
    with pytest.raises(AuthError, match="algorithm"):
        a.verify(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_configuration_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="FRAUDFLOW_JWT_SECRET"):
        Authenticator()
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Authenticator(secret="short")

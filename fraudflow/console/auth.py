"""Bearer-token authentication and roles for the console.

Tokens are JWTs checked with PyJWT: HS256 with ``jwt_secret``, or RS256 with a
PEM public key (``jwt_public_key``) or the keys of an identity provider's JWKS
URL (``jwt_jwks_url``). Only the algorithms of the configured keys are
accepted, so an ``alg: none`` token or an HS256 token signed with the public
key is refused. ``exp`` and ``sub`` are required; ``aud``/``iss`` when set.
The roles come from the ``roles`` claim (a list, or a space-separated string).

>>> auth = Authenticator(secret="s" * 32)
>>> from datetime import UTC
>>> token = mint_token("s" * 32, "ana", ("analyst",), ttl=timedelta(hours=1), now=datetime.now(UTC))
>>> p = auth.verify(token)
>>> p.subject, p.roles, p.allows("analyst"), p.allows("rule_editor")
('ana', ('analyst',), True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from fraudflow.config.settings import ConfigError, ConsoleSettings

ROLES = ("viewer", "analyst", "rule_editor", "admin")
# what each action needs: any one of these roles
READ = ("viewer", "analyst", "rule_editor", "admin")
VERDICT = ("analyst", "admin")
RULES = ("rule_editor", "admin")
LEEWAY = timedelta(seconds=30)


class AuthError(Exception):
    """The token is missing, malformed, expired, tampered or signed with another key."""


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's subject and its known roles."""

    subject: str
    roles: tuple[str, ...]

    def allows(self, action: Sequence[str]) -> bool:
        """True when the principal holds one of the roles ``action`` needs.

        ``action`` is a tuple of roles (``READ``, ``VERDICT``, ``RULES``) or one role name.
        """
        needed = (action,) if isinstance(action, str) else tuple(action)
        return "admin" in self.roles or any(r in self.roles for r in needed)


def _roles(claim: Any) -> tuple[str, ...]:
    if isinstance(claim, str):
        items = claim.split()
    elif isinstance(claim, list):
        items = [r for r in claim if isinstance(r, str)]
    else:
        items = []
    return tuple(r for r in ROLES if r in items)


class Authenticator:
    """Verifies tokens against the configured keys; see the module docstring."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        if not (secret or public_key or jwks_url):
            raise ConfigError(
                "console: no token key configured: set FRAUDFLOW_JWT_SECRET (HS256), "
                "FRAUDFLOW_JWT_PUBLIC_KEY or FRAUDFLOW_JWT_JWKS_URL (RS256)"
            )
        if secret is not None and len(secret.encode()) < 32:
            raise ConfigError("console.jwt_secret: must be at least 32 bytes for HS256")
        self._secret = secret
        self._public_key = public_key
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None
        self._audience = audience
        self._issuer = issuer

    @classmethod
    def from_settings(cls, s: ConsoleSettings) -> Authenticator:
        public_key = None
        if s.jwt_public_key is not None:
            try:
                public_key = Path(s.jwt_public_key).read_text(encoding="utf-8")
            except OSError as exc:
                msg = f"console.jwt_public_key: cannot read {s.jwt_public_key}: {exc.strerror}"
                raise ConfigError(msg) from None
        return cls(
            secret=s.jwt_secret.reveal() if s.jwt_secret is not None else None,
            public_key=public_key,
            jwks_url=s.jwt_jwks_url,
            audience=s.jwt_audience,
            issuer=s.jwt_issuer,
        )

    @property
    def algorithms(self) -> tuple[str, ...]:
        algs = []
        if self._secret:
            algs.append("HS256")
        if self._public_key or self._jwks:
            algs.append("RS256")
        return tuple(algs)

    def _key(self, token: str, alg: str) -> Any:
        if alg == "HS256" and self._secret:
            return self._secret
        if alg == "RS256" and self._public_key:
            return self._public_key
        if alg == "RS256" and self._jwks is not None:
            try:
                return self._jwks.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientError as exc:
                raise AuthError(f"no signing key for this token: {exc}") from None
        raise AuthError(f"token algorithm {alg!r} is not accepted")

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; ``AuthError`` naming what is wrong otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthError(f"token algorithm {alg!r} is not accepted")
        try:
            claims = jwt.decode(
                token,
                self._key(token, alg),
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthError("token has no subject")
        return Principal(subject, _roles(claims.get("roles")))


def mint_token(
    secret: str,
    subject: str,
    roles: Sequence[str],
    *,
    ttl: timedelta,
    now: datetime,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token for development and tests (``fraudflow token``)."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}; choose from {', '.join(ROLES)}")
    claims: dict[str, Any] = {
        "sub": subject,
        "roles": list(roles),
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


__all__ = [
    "READ",
    "ROLES",
    "RULES",
    "VERDICT",
    "AuthError",
    "Authenticator",
    "Principal",
    "mint_token",
]

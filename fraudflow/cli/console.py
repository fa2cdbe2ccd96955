"""``fraudflow serve`` (the analyst console) and ``fraudflow token`` (a development token)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from fraudflow.cli.common import add_settings_flags, fail, settings_from_args, warn_secret_flags
from fraudflow.config.settings import ConfigError, parse_duration
from fraudflow.console.auth import ROLES, mint_token

SERVE_FLAGS = (
    "postgres_dsn",
    "brokers",
    "labels_topic",
    "redis_url",
    "rules",
    "serve_host",
    "serve_port",
    "jwt_public_key",
    "jwt_jwks_url",
    "jwt_audience",
    "jwt_issuer",
)
TOKEN_FLAGS = ("jwt_audience", "jwt_issuer")


def register(sub: Any) -> None:
    serve: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="the analyst console: review API and web UI",
        description=(
            "Serve the review API (/api, OpenAPI at /docs) and the web UI (/) over the flow's "
            "PostgreSQL, Redis and labels topic. Requests need a bearer JWT with a 'roles' claim "
            "(viewer, analyst, rule_editor, admin): HS256 with FRAUDFLOW_JWT_SECRET (environment "
            "only), or RS256 with --jwt-public-key or --jwt-jwks-url. Verdicts are recorded in "
            "PostgreSQL and published to the labels topic when --brokers is set. See "
            "docs/console.md."
        ),
    )
    add_settings_flags(serve, SERVE_FLAGS)
    serve.add_argument("--port", dest="serve_port", default=None, help="alias of --serve-port")
    serve.set_defaults(func=serve_main)

    token: argparse.ArgumentParser = sub.add_parser(
        "token",
        help="mint a development token for the console",
        description=(
            "Print an HS256 JWT signed with FRAUDFLOW_JWT_SECRET (environment only) for the "
            "console; use an identity provider's tokens (RS256) in production."
        ),
    )
    token.add_argument("--sub", required=True, help="the token's subject (who acts)")
    token.add_argument(
        "--roles",
        required=True,
        help=f"comma-separated roles among {', '.join(ROLES)}",
    )
    token.add_argument("--ttl", default="8h", help="lifetime, e.g. 30m, 8h, 7d [8h]")
    add_settings_flags(token, TOKEN_FLAGS)
    token.set_defaults(func=token_main)


def serve_main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    warn_secret_flags(args)
    try:
        settings = settings_from_args(args, SERVE_FLAGS)
        # FastAPI and uvicorn are loaded by `serve` only, as cli.py loads each command's
        # module by name: every other fraudflow command starts without them
        app = importlib.import_module("fraudflow.console.app").create_app(settings)
    except ConfigError as exc:
        return fail(str(exc))
    uvicorn = importlib.import_module("uvicorn")
    c = settings.console
    uvicorn.run(app, host=c.serve_host, port=c.serve_port, log_level="info", access_log=False)
    return 0


def token_main(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args, TOKEN_FLAGS)
        ttl = parse_duration(args.ttl)
    except (ConfigError, ValueError) as exc:
        return fail(str(exc))
    secret = settings.console.jwt_secret
    if secret is None:
        return fail("console.jwt_secret: set FRAUDFLOW_JWT_SECRET to mint a token")
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    try:
        token = mint_token(
            secret.reveal(),
            args.sub,
            roles,
            ttl=ttl,
            now=datetime.now(UTC),
            audience=settings.console.jwt_audience,
            issuer=settings.console.jwt_issuer,
        )
    except ValueError as exc:
        return fail(f"--roles: {exc}")
    print(token, file=sys.stdout)
    return 0

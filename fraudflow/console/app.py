"""The console's FastAPI application: JSON API under ``/api``, web UI at ``/``.

Every ``/api/`` request is authenticated before anything else is read (a
middleware: no token, or a bad, expired or tampered one, is 401 on every
route, even one that does not exist); each route then checks the role it
needs (403). The web UI signs in by storing the token in an HttpOnly,
SameSite=Strict cookie; the UI's scripts call the same ``/api`` routes with
that cookie and a custom header a cross-site form cannot send.
"""

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import orjson
import redis
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from fraudflow import __version__
from fraudflow.config.settings import ConfigError, Settings
from fraudflow.console.auth import READ, RULES, VERDICT, Authenticator, AuthError, Principal
from fraudflow.console.jobs import BacktestJobs, RulesProposalError, check_rules
from fraudflow.console.labels import LabelPublisher, PublishError
from fraudflow.console.store import AlertFilter, BadRequest, NotFound, Row, Store, jsonable
from fraudflow.operators.features.catalogue import feature_catalogue
from fraudflow.rules.loader import load_directory

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
COOKIE = "fraudflow_token"
UI_HEADER = "x-fraudflow-console"


class AlertQuery(BaseModel):
    """The review queue's filters (query parameters)."""

    tier: Literal["review", "block", ""] | None = None
    status: Literal["open", "fraud", "legit", "any"] = "open"
    from_: datetime | None = Field(None, alias="from", description="event time >= (RFC 3339)")
    to: datetime | None = Field(None, description="event time < (RFC 3339)")
    user_id: str | None = Field(None, max_length=128)
    rule: str | None = Field(None, max_length=80, description="alerts where this rule fired")
    min_score: float | None = Field(None, ge=0.0, le=1.0)
    sort: Literal["score", "time"] = "score"
    limit: int = Field(50, ge=1, le=500)


class VerdictIn(BaseModel):
    label: Literal["fraud", "legit"]
    note: str = Field("", max_length=2000)


class RulesIn(BaseModel):
    files: dict[str, str] = Field(
        ..., description="rule files (relative .yaml path -> text) written over the rules in force"
    )


class BacktestIn(RulesIn):
    from_: datetime = Field(..., alias="from", description="start of the stored range (RFC 3339)")
    to: datetime = Field(..., description="end of the stored range, exclusive")


@dataclass
class Services:
    """What the routes use; built from settings by ``create_app`` or given by tests."""

    settings: Settings
    store: Store
    auth: Authenticator
    publisher: LabelPublisher | None
    redis: redis.Redis | None
    jobs: BacktestJobs


def _redis(settings: Settings) -> redis.Redis | None:
    url = settings.sinks.redis_url
    if url is None:
        return None
    return redis.Redis.from_url(url.reveal(), socket_timeout=2, decode_responses=True)


def build_services(settings: Settings) -> Services:
    """Services from settings: PostgreSQL is required, Kafka and Redis optional."""
    dsn = settings.sinks.postgres_dsn
    if dsn is None:
        raise ConfigError("sinks.postgres_dsn: the console needs FRAUDFLOW_POSTGRES_DSN")
    store = Store(dsn.reveal())
    publisher = LabelPublisher(settings.kafka) if settings.kafka.brokers else None
    return Services(
        settings=settings,
        store=store,
        auth=Authenticator.from_settings(settings.console),
        publisher=publisher,
        redis=_redis(settings),
        jobs=BacktestJobs(settings, store),
    )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    return None


def _token(request: Request, *, api: bool) -> str | None:
    """The request's token: the bearer header, or (UI) the cookie; the cookie counts on
    ``/api`` only with the UI's header, which a cross-site form cannot add."""
    bearer = _bearer(request)
    if bearer is not None:
        return bearer
    cookie = request.cookies.get(COOKIE)
    if cookie and (not api or request.headers.get(UI_HEADER) == "1"):
        return cookie
    return None


def _unauthorized(message: str) -> JSONResponse:
    return JSONResponse(
        {"detail": message}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="api"'}
    )


# declares the bearer scheme in the OpenAPI document (the "Authorize" button of /docs);
# the token itself is verified by the middleware, before any route runs
BEARER = HTTPBearer(auto_error=False, description="a JWT with a 'roles' claim")


def need(action: Sequence[str]) -> Callable[..., Principal]:
    """A dependency: the request's principal, or 403 when it lacks the roles of ``action``."""

    def check(
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None,
    ) -> Principal:
        p: Principal | None = getattr(request.state, "principal", None)
        if p is None:  # the middleware runs first; this is a second lock on the door
            raise HTTPException(401, "authentication required")
        if not p.allows(action):
            raise HTTPException(403, f"needs one of the roles: {', '.join(action)}")
        return p

    return check


def _fast_json(body: dict[str, Any]) -> Response:
    """A JSON response encoded by orjson: the queue's pages are the hot path, and
    FastAPI's generic encoder costs more than the query on them."""
    return Response(orjson.dumps(body), media_type="application/json")


def _alert_json(row: Row) -> dict[str, Any]:
    out = jsonable(row)
    out["rule_ids"] = list(row.get("rule_ids") or [])
    return out


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """The application; ``services`` built from ``settings`` when not given."""
    svc = services if services is not None else build_services(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        applied = svc.store.open()
        if applied:
            log.info("applied console migrations: %s", ", ".join(applied))
        try:
            yield
        finally:
            svc.store.close()
            if svc.publisher is not None:
                svc.publisher.close()

    app = FastAPI(
        title="fraudflow console",
        version=__version__,
        description="Review alerts, record verdicts (published as labels), inspect users and "
        "rules. Authenticate with a bearer JWT whose `roles` claim holds viewer, analyst, "
        "rule_editor or admin.",
        lifespan=lifespan,
    )
    app.state.services = svc
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Response:
        path = request.url.path
        api = path.startswith("/api/") or path == "/api"
        if api or not _public(path):
            token = _token(request, api=api)
            principal = None
            error = "authentication required: send 'Authorization: Bearer <token>'"
            if token:
                try:
                    principal = svc.auth.verify(token)
                except AuthError as exc:
                    error = str(exc)
            if principal is None:
                if api:
                    return _unauthorized(error)
                resp = RedirectResponse(
                    "/login?" + urlencode({"next": str(request.url.path), "why": error}), 303
                )
                if token:
                    resp.delete_cookie(COOKIE)
                return resp
            request.state.principal = principal
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    # --- health --------------------------------------------------------------

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """PostgreSQL answers (and Redis and the labels topic when configured)."""
        checks: dict[str, str] = {}
        ok = True
        try:
            svc.store.ping()
            checks["postgres"] = "ok"
        except Exception as exc:  # any failure means not ready; the message says which
            ok, checks["postgres"] = False, type(exc).__name__
        if svc.redis is not None:
            try:
                svc.redis.ping()
                checks["redis"] = "ok"
            except redis.RedisError as exc:
                ok, checks["redis"] = False, type(exc).__name__
        if svc.publisher is not None:
            try:
                svc.publisher.check()
                checks["labels_topic"] = "ok"
            except PublishError as exc:
                ok, checks["labels_topic"] = False, str(exc)
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    # --- API -----------------------------------------------------------------

    def alert_filter(q: Annotated[AlertQuery, Query()]) -> AlertFilter:
        # a time without a zone (the UI's datetime inputs) is UTC
        since = q.from_.replace(tzinfo=UTC) if q.from_ and q.from_.tzinfo is None else q.from_
        until = q.to.replace(tzinfo=UTC) if q.to and q.to.tzinfo is None else q.to
        try:
            return AlertFilter(
                tier=q.tier or None,
                status=q.status,
                since=since,
                until=until,
                user_id=q.user_id or None,
                rule=q.rule or None,
                min_score=q.min_score,
                sort=q.sort,
                limit=q.limit,
            )
        except BadRequest as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/api/me", tags=["auth"])
    def me(p: Annotated[Principal, Depends(need(READ))]) -> dict[str, Any]:
        """The token's subject and roles."""
        return {"sub": p.subject, "roles": list(p.roles)}

    @app.get("/api/alerts", tags=["alerts"])
    def list_alerts(
        _p: Annotated[Principal, Depends(need(READ))],
        f: Annotated[AlertFilter, Depends(alert_filter)],
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> Response:
        """The review queue: filtered, sorted by score or time, cursor-paginated.

        Returns ``{"alerts": [...], "next_cursor": str | null}``; pass ``next_cursor``
        back as ``cursor`` (with the same filters) for the next page."""
        try:
            rows, next_cursor = svc.store.list_alerts(f, cursor)
        except BadRequest as exc:
            raise HTTPException(400, str(exc)) from None
        return _fast_json({"alerts": [_alert_json(r) for r in rows], "next_cursor": next_cursor})

    def alert_detail(alert_id: str) -> dict[str, Any]:
        try:
            row = svc.store.alert(alert_id)
        except NotFound:
            raise HTTPException(404, f"no alert {alert_id!r}") from None
        out = _alert_json(row)
        out["verdicts"] = [jsonable(v) for v in svc.store.verdicts(alert_id)]
        out["timeline"] = [
            _alert_json(t) for t in svc.store.timeline(row["user_id"], row["event_time"])
        ]
        return out

    @app.get("/api/alerts/{alert_id}", tags=["alerts"])
    def get_alert(alert_id: str, _p: Annotated[Principal, Depends(need(READ))]) -> Response:
        """The transaction, score, tier, reasons, detector scores, rule hits, versions,
        the verdict history and the user's decisions around it."""
        return _fast_json(alert_detail(alert_id))

    @app.post("/api/alerts/{alert_id}/verdict", tags=["alerts"])
    def post_verdict(
        alert_id: str, body: VerdictIn, p: Annotated[Principal, Depends(need(VERDICT))]
    ) -> dict[str, Any]:
        """Record a verdict (who, when) and publish it as a label; repeating the current
        label changes nothing and publishes nothing again."""
        try:
            verdict, created = svc.store.record_verdict(
                alert_id, body.label, body.note, p.subject, p.roles
            )
        except NotFound:
            raise HTTPException(404, f"no alert {alert_id!r}") from None
        published = verdict["published_at"] is not None
        if not published and svc.publisher is not None:
            try:
                svc.publisher.publish(
                    verdict["user_id"],
                    verdict["transaction_id"],
                    verdict["label"],
                    verdict["created_at"],
                )
            except PublishError as exc:
                raise HTTPException(
                    503,
                    f"verdict {verdict['id']} recorded, but not published: {exc}; "
                    "send it again to retry",
                ) from None
            verdict["published_at"] = svc.store.mark_published(int(verdict["id"]))
            published = True
        return {"verdict": jsonable(verdict), "created": created, "published": published}

    @app.get("/api/users/{user_id}", tags=["users"])
    def get_user(user_id: str, _p: Annotated[Principal, Depends(need(READ))]) -> dict[str, Any]:
        """The user's Redis profile (null without Redis) and recent decisions."""
        return user_detail(user_id)

    def user_detail(user_id: str) -> dict[str, Any]:
        profile: dict[str, Any] | None = None
        if svc.redis is not None:
            try:
                raw = svc.redis.hgetall(settings.sinks.redis_key_prefix + user_id)
                profile = dict(raw) if raw else {}  # type: ignore[arg-type]
            except redis.RedisError as exc:
                raise HTTPException(503, f"redis: {type(exc).__name__}") from None
        return {
            "user_id": user_id,
            "profile": profile,
            "decisions": [_alert_json(r) for r in svc.store.recent_decisions(user_id)],
        }

    def rules_in_force() -> dict[str, Any]:
        s = svc.settings
        result = load_directory(s.rules.rules, feature_catalogue(s.features.windows))
        rules = []
        if result.ruleset is not None:
            rules = [
                {
                    "id": r.id,
                    "description": r.description,
                    "when": r.when,
                    "score": r.score,
                    "tier": r.tier,
                    "severity": r.severity,
                    "enabled": r.enabled,
                    "tags": list(r.tags),
                    "owner": r.owner,
                    "file": _relative(r.file, s.rules.rules),
                    "line": r.line,
                }
                for r in result.ruleset.rules
            ]
        return {
            "version": result.version,
            "ok": result.ruleset is not None,
            "rules": rules,
            "diagnostics": [str(d) for d in result.diagnostics],
        }

    @app.get("/api/rules", tags=["rules"])
    def get_rules(_p: Annotated[Principal, Depends(need(READ))]) -> dict[str, Any]:
        """The rules in force (the configured directory) with their version."""
        return rules_in_force()

    @app.post("/api/rules/check", tags=["rules"])
    def post_rules_check(
        body: RulesIn, p: Annotated[Principal, Depends(need(RULES))]
    ) -> dict[str, Any]:
        """Check proposed rule files (written over the rules in force) with the checker of
        ``fraudflow rules check``."""
        try:
            out = check_rules(svc.settings, body.files)
        except RulesProposalError as exc:
            raise HTTPException(400, str(exc)) from None
        detail = {"files": sorted(body.files), "ok": out["ok"]}
        svc.store.audit(p.subject, p.roles, "rules_check", "rules", detail)
        return out

    @app.post("/api/rules/backtest", tags=["rules"], status_code=202)
    def post_backtest(
        body: BacktestIn, p: Annotated[Principal, Depends(need(RULES))]
    ) -> dict[str, Any]:
        """Start a job replaying the stored decisions of [from, to) with the proposed rules;
        poll ``GET /api/rules/backtest/{job_id}`` for progress and the result."""
        if body.from_.tzinfo is None or body.to.tzinfo is None or body.to <= body.from_:
            raise HTTPException(400, "from/to: need times with a zone and from < to")
        try:
            check = check_rules(svc.settings, body.files)
        except RulesProposalError as exc:
            raise HTTPException(400, str(exc)) from None
        if not check["ok"]:
            raise HTTPException(422, {"message": "the proposed rules do not check", **check})
        job = svc.jobs.start(p.subject, body.from_, body.to, body.files)
        detail = {"files": sorted(body.files), "from": body.from_.isoformat()}
        detail["to"] = body.to.isoformat()
        svc.store.audit(p.subject, p.roles, "rules_backtest", f"job:{job.id}", detail)
        return job.to_json()

    @app.get("/api/rules/backtest/{job_id}", tags=["rules"])
    def get_backtest(job_id: str, _p: Annotated[Principal, Depends(need(RULES))]) -> dict[str, Any]:
        """A backtest job's status, progress in [0, 1] and, when done, its result."""
        job = svc.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no backtest job {job_id!r}")
        return job.to_json()

    @app.get("/api/audit", tags=["audit"])
    def get_audit(
        _p: Annotated[Principal, Depends(need(("admin",)))],
        target: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """The audit trail, newest first (admin)."""
        return {"audit": [jsonable(r) for r in svc.store.audit_log(limit, target)]}

    # --- web UI --------------------------------------------------------------

    def page(request: Request, name: str, **ctx: Any) -> HTMLResponse:
        p: Principal = request.state.principal
        return templates.TemplateResponse(
            request,
            name,
            {"me": p, "can_verdict": p.allows(VERDICT), "can_rules": p.allows(RULES), **ctx},
        )

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request, next: str = "/", why: str = "") -> HTMLResponse:
        return templates.TemplateResponse(
            request, "login.html", {"next": _safe_next(next), "why": why, "me": None}
        )

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request, token: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
    ) -> Response:
        try:
            svc.auth.verify(token.strip())
        except AuthError as exc:
            return templates.TemplateResponse(
                request,
                "login.html",
                {"next": _safe_next(next), "why": str(exc), "me": None},
                status_code=401,
            )
        resp = RedirectResponse(_safe_next(next), 303)
        resp.set_cookie(
            COOKIE,
            token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return resp

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        resp = RedirectResponse("/login", 303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    @app.get("/", include_in_schema=False)
    def queue_page(
        request: Request,
        _p: Annotated[Principal, Depends(need(READ))],
        f: Annotated[AlertFilter, Depends(alert_filter)],
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> HTMLResponse:
        try:
            rows, next_cursor = svc.store.list_alerts(f, cursor)
        except BadRequest as exc:
            raise HTTPException(400, str(exc)) from None
        q = _query_of(request, drop=("cursor",))
        return page(
            request,
            "queue.html",
            f=f,
            alerts=[_alert_json(r) for r in rows],
            next_cursor=next_cursor,
            paged=cursor is not None,
            q=q,
        )

    @app.get("/alerts/{alert_id}", include_in_schema=False)
    def alert_page(
        request: Request,
        alert_id: str,
        _p: Annotated[Principal, Depends(need(READ))],
        f: Annotated[AlertFilter, Depends(alert_filter)],
    ) -> HTMLResponse:
        a = alert_detail(alert_id)
        row = {"alert_id": a["alert_id"], "score": a["score"]}
        row["event_time"] = datetime.fromisoformat(a["event_time"])
        nxt = svc.store.neighbour(f, row, after=True)
        prev = svc.store.neighbour(f, row, after=False)
        if nxt is None and f.status == "open" and a["status"] != "open":
            # the alert just left the open queue: its place is gone; take the top one
            first, _ = svc.store.list_alerts(AlertFilter(**{**f.__dict__, "limit": 1}))
            nxt = first[0]["alert_id"] if first else None
        return page(
            request,
            "alert.html",
            a=a,
            next_id=nxt,
            prev_id=prev,
            q=_query_of(request, drop=("done",)),
            done=request.query_params.get("done", ""),
        )

    @app.get("/users/{user_id}", include_in_schema=False)
    def user_page(
        request: Request, user_id: str, _p: Annotated[Principal, Depends(need(READ))]
    ) -> HTMLResponse:
        return page(request, "user.html", u=user_detail(user_id))

    @app.get("/rules", include_in_schema=False)
    def rules_page(request: Request, _p: Annotated[Principal, Depends(need(READ))]) -> HTMLResponse:
        return page(request, "rules.html", r=rules_in_force())

    return app


_PUBLIC = ("/healthz", "/readyz", "/login", "/logout", "/docs", "/redoc", "/openapi.json")


def _public(path: str) -> bool:
    return path in _PUBLIC or path.startswith(("/static/", "/docs/"))


def _relative(file: str, root: Path) -> str:
    """A rule file's name inside the rule directory (no server paths in answers)."""
    try:
        return Path(file).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(file).name


def _safe_next(target: str) -> str:
    """Only local paths: a login link cannot send the browser elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _query_of(request: Request, drop: Sequence[str] = ()) -> str:
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in drop and v != ""]
    return urlencode(items)


def now_utc() -> datetime:
    return datetime.now(UTC)

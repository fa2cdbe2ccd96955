"""SQL over the flow's ``alerts``/``decisions`` tables and the console's own tables.

Every value reaches PostgreSQL as a bind parameter; only fixed SQL fragments
chosen from the code are joined. The review queue pages with a keyset cursor
on ``(sort key, alert_id)``: an alert that arrives while someone pages lands
at its own place in the order and never shifts the rows of later pages (no
OFFSET), and each page is one index range scan (``alerts_console_*_idx``).
The statements use only plain SQL, so they run unchanged on the natively
partitioned layout and on TimescaleDB hypertables.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from fraudflow.console.schema import apply_migrations

Row = dict[str, Any]
TIERS = ("review", "block")
STATUSES = ("open", "fraud", "legit", "any")
SORTS = ("score", "time")
LABELS = ("fraud", "legit")

ALERT_COLUMNS = sql.SQL(
    "a.alert_id, a.event_time, a.processed_at, a.transaction_id, a.user_id, a.amount,"
    " a.currency, a.merchant_id, a.country, a.score, a.tier, a.detector_scores, a.rule_ids,"
    " a.rule_hits, a.reasons, a.rules_version, a.model_version, a.late,"
    " coalesce(s.status, 'open') as status, s.updated_by as verdict_by,"
    " s.updated_at as verdict_at"
)
DECISION_COLUMNS = sql.SQL(
    "d.alert_id, d.event_time, d.transaction_id, d.amount, d.currency, d.merchant_id,"
    " d.country, d.score, d.tier, d.rule_ids"
)
QUEUE_FROM = sql.SQL("from alerts a left join alert_status s on s.alert_id = a.alert_id")
# A decided alert's status row repeats its score and event time, so the fraud/legit
# queues walk alert_status's own indexes and fetch each alert by its primary key (the
# LATERAL ... LIMIT 1 keeps the planner from hashing the whole alerts table instead).
DECIDED_FROM = sql.SQL(
    "from alert_status s cross join lateral (select * from alerts a0"
    " where a0.alert_id = s.alert_id and a0.event_time = s.event_time limit 1) a"
)


def _plan(f: AlertFilter) -> tuple[sql.Composable, sql.Composable, sql.Composable]:
    """(FROM clause, sort column, the alias of the sort column's id) for a filter."""
    t = "s" if f.status in LABELS else "a"
    col = "score" if f.sort == "score" else "event_time"
    source = DECIDED_FROM if f.status in LABELS else QUEUE_FROM
    return source, sql.SQL(f"{t}.{col}"), sql.SQL(f"{t}.alert_id")


LIST_COLUMNS = sql.SQL(
    "a.alert_id, a.event_time, a.transaction_id, a.user_id, a.amount, a.currency,"
    " a.merchant_id, a.country, a.score, a.tier, a.rule_ids, a.reasons,"
    " coalesce(s.status, 'open') as status"
)


class BadRequest(ValueError):
    """A filter or cursor value is not acceptable; the message names the parameter."""


class NotFound(LookupError):
    """No such alert."""


@dataclass(frozen=True)
class AlertFilter:
    """The review queue's filters and order; every field optional."""

    tier: str | None = None
    status: str = "open"
    since: datetime | None = None
    until: datetime | None = None
    user_id: str | None = None
    rule: str | None = None
    min_score: float | None = None
    sort: str = "score"
    limit: int = 50

    def __post_init__(self) -> None:
        if self.tier is not None and self.tier not in TIERS:
            raise BadRequest(f"tier: must be one of {', '.join(TIERS)}")
        if self.status not in STATUSES:
            raise BadRequest(f"status: must be one of {', '.join(STATUSES)}")
        if self.sort not in SORTS:
            raise BadRequest(f"sort: must be one of {', '.join(SORTS)}")
        if not 1 <= self.limit <= 500:
            raise BadRequest("limit: must be within 1..500")
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise BadRequest("min_score: must be within [0, 1]")
        for name in ("since", "until"):
            v = getattr(self, name)
            if v is not None and v.tzinfo is None:
                raise BadRequest(f"{name}: needs a time zone (RFC 3339, e.g. ...Z)")


def encode_cursor(sort: str, row: Row) -> str:
    """An opaque cursor after ``row`` in the ``sort`` order.

    >>> c = encode_cursor("score", {"score": 0.5, "alert_id": "a1"})
    >>> decode_cursor(c, "score")
    (0.5, 'a1')
    """
    key = row["score"] if sort == "score" else row["event_time"].timestamp()
    raw = orjson.dumps([sort, key, row["alert_id"]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, str]:
    """(sort key, alert_id) of a cursor; ``BadRequest`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, key, alert_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise BadRequest("cursor: not a cursor returned by this API") from None
    if kind != sort or not isinstance(alert_id, str) or not isinstance(key, int | float):
        raise BadRequest("cursor: made for another sort order; start again without it")
    if sort == "time":
        return datetime.fromtimestamp(float(key), UTC), alert_id
    return float(key), alert_id


def _where(f: AlertFilter) -> tuple[list[sql.Composable], list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    if f.tier is not None:
        clauses.append(sql.SQL("a.tier = %s"))
        params.append(f.tier)
    if f.status == "open":
        clauses.append(sql.SQL("s.alert_id is null"))
    elif f.status in LABELS:
        clauses.append(sql.SQL("s.status = %s"))
        params.append(f.status)
    if f.since is not None:
        clauses.append(sql.SQL("a.event_time >= %s"))
        params.append(f.since)
    if f.until is not None:
        clauses.append(sql.SQL("a.event_time < %s"))
        params.append(f.until)
    if f.user_id is not None:
        clauses.append(sql.SQL("a.user_id = %s"))
        params.append(f.user_id)
    if f.rule is not None:
        clauses.append(sql.SQL("a.rule_ids @> array[%s]::text[]"))
        params.append(f.rule)
    if f.min_score is not None:
        clauses.append(sql.SQL("a.score >= %s"))
        params.append(f.min_score)
    return clauses, params


def _and(clauses: Sequence[sql.Composable]) -> sql.Composable:
    return sql.SQL(" where ") + sql.SQL(" and ").join(clauses) if clauses else sql.SQL("")


def _prepare(f: AlertFilter) -> bool | None:
    """Prepared, except with a time range: planned for its values every time, chunk or
    partition pruning leaves only the chunks in range, which beats any generic plan."""
    return False if (f.since is not None or f.until is not None) else None


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def jsonable(row: Row) -> Row:
    """Datetimes as RFC 3339 strings."""
    return {k: _iso(v) for k, v in row.items()}


class Store:
    """A connection pool and the console's queries."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 8) -> None:
        self._dsn = dsn
        self.pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row, "application_name": "fraudflow"},
            configure=self._configure,
            name="console",
        )

    @staticmethod
    def _configure(conn: psycopg.Connection[Row]) -> None:
        """Prepare every statement at once: after five executions PostgreSQL keeps a
        generic plan when it costs no more than the custom ones, and planning over a
        hypertable's chunks costs more than running the queue's index scans."""
        conn.prepare_threshold = 0

    def open(self, migrate: bool = True) -> list[str]:
        self.pool.open(wait=True, timeout=30)
        if not migrate:
            return []
        with psycopg.connect(self._dsn, autocommit=True, connect_timeout=10) as conn:
            return apply_migrations(conn)

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def conn(self) -> Iterator[psycopg.Connection[Row]]:
        with self.pool.connection() as c:
            yield c

    def ping(self) -> None:
        with self.conn() as c:
            c.execute("select 1 from alerts limit 0")

    # --- queue -------------------------------------------------------------

    def list_alerts(
        self, f: AlertFilter, cursor: str | None = None
    ) -> tuple[list[Row], str | None]:
        """One page of the queue and the cursor of the next (None at the end)."""
        clauses, params = _where(f)
        source, col, aid = _plan(f)
        if cursor is not None:
            key, alert_id = decode_cursor(cursor, f.sort)
            clauses.append(sql.SQL("({}, {}) < (%s, %s)").format(col, aid))
            params += [key, alert_id]
        query = sql.SQL("select {} {}{} order by {} desc, {} desc limit %s").format(
            LIST_COLUMNS, source, _and(clauses), col, aid
        )
        with self.conn() as c:
            rows = c.execute(query, [*params, f.limit + 1], prepare=_prepare(f)).fetchall()
        more = len(rows) > f.limit
        rows = rows[: f.limit]
        next_cursor = encode_cursor(f.sort, rows[-1]) if more and rows else None
        return rows, next_cursor

    def neighbour(self, f: AlertFilter, row: Row, *, after: bool) -> str | None:
        """The alert_id next to ``row`` in the queue order (``after``) or before it."""
        clauses, params = _where(f)
        source, col, aid = _plan(f)
        key = row["score"] if f.sort == "score" else row["event_time"]
        op, direction = (sql.SQL("<"), sql.SQL("desc")) if after else (sql.SQL(">"), sql.SQL("asc"))
        clauses.append(sql.SQL("({}, {}) {} (%s, %s)").format(col, aid, op))
        params += [key, row["alert_id"]]
        query = sql.SQL("select a.alert_id {}{} order by {} {}, {} {} limit 1").format(
            source, _and(clauses), col, direction, aid, direction
        )
        with self.conn() as c:
            got = c.execute(query, params, prepare=_prepare(f)).fetchone()
        return None if got is None else str(got["alert_id"])

    # --- one alert ---------------------------------------------------------

    def alert(self, alert_id: str) -> Row:
        with self.conn() as c:
            query = sql.SQL("select {} {} where a.alert_id = %s limit 1").format(
                ALERT_COLUMNS, QUEUE_FROM
            )
            row = c.execute(query, (alert_id,)).fetchone()
        if row is None:
            raise NotFound(alert_id)
        return row

    def verdicts(self, alert_id: str) -> list[Row]:
        with self.conn() as c:
            return c.execute(
                "select id, label, note, author, created_at, published_at from verdicts"
                " where alert_id = %s order by id desc",
                (alert_id,),
            ).fetchall()

    def timeline(
        self, user_id: str, around: datetime, *, before: int = 12, after: int = 5
    ) -> list[Row]:
        """The user's decisions around ``around``: up to ``before`` at or before it and
        ``after`` after it (from ``decisions``, or from ``alerts`` when the flow writes
        alerts only), newest first. Two index range scans on (user_id, event_time)."""
        earlier = sql.SQL(
            "select {} from {} d where d.user_id = %s and d.event_time <= %s"
            " order by d.event_time desc limit %s"
        )
        later = sql.SQL(
            "select {} from {} d where d.user_id = %s and d.event_time > %s"
            " order by d.event_time asc limit %s"
        )
        with self.conn() as c:
            for table in ("decisions", "alerts"):
                t = sql.Identifier(table)
                rows = c.execute(
                    earlier.format(DECISION_COLUMNS, t), (user_id, around, before)
                ).fetchall()
                if rows:
                    newer = c.execute(
                        later.format(DECISION_COLUMNS, t), (user_id, around, after)
                    ).fetchall()
                    return [*reversed(newer), *rows]
        return []

    def recent_decisions(self, user_id: str, limit: int = 25) -> list[Row]:
        with self.conn() as c:
            for table in ("decisions", "alerts"):
                query = sql.SQL(
                    "select {} from {} d where d.user_id = %s order by d.event_time desc limit %s"
                ).format(DECISION_COLUMNS, sql.Identifier(table))
                rows = c.execute(query, (user_id, limit)).fetchall()
                if rows:
                    return rows
        return []

    def decisions_between(self, since: datetime, until: datetime, limit: int) -> list[Row]:
        """The stored decisions of a time range, in event-time order (for a rule backtest)."""
        with self.conn() as c:
            return c.execute(
                "select transaction_id, user_id, amount, currency, merchant_id, country,"
                " event_time, tier from decisions where event_time >= %s and event_time < %s"
                " order by event_time, transaction_id limit %s",
                (since, until, limit),
            ).fetchall()

    def labels_of(self, transaction_ids: Sequence[str]) -> dict[str, str]:
        """The latest analyst verdict of each of these transactions."""
        with self.conn() as c:
            rows = c.execute(
                "select transaction_id, status from alert_status where transaction_id = any(%s)",
                (list(transaction_ids),),
            ).fetchall()
        return {str(r["transaction_id"]): str(r["status"]) for r in rows}

    # --- verdicts ----------------------------------------------------------

    def record_verdict(
        self, alert_id: str, label: str, note: str, author: str, roles: Sequence[str]
    ) -> tuple[Row, bool]:
        """Record a verdict; (the verdict row, whether it is new).

        Repeating the alert's current label records nothing new (the existing
        row is returned). One transaction writes the verdict, the alert's
        status and the audit row; the alert's status row is locked so two
        analysts deciding at once are serialized.
        """
        if label not in LABELS:
            raise BadRequest("label: must be 'fraud' or 'legit'")
        with self.conn() as c, c.transaction():
            alert = c.execute(
                "select alert_id, transaction_id, user_id, score, event_time from alerts"
                " where alert_id = %s limit 1",
                (alert_id,),
            ).fetchone()
            if alert is None:
                raise NotFound(alert_id)
            c.execute("select pg_advisory_xact_lock(hashtext(%s))", (alert_id,))
            current = c.execute(
                "select v.* from alert_status s join verdicts v on v.id = s.verdict_id"
                " where s.alert_id = %s",
                (alert_id,),
            ).fetchone()
            if current is not None and current["label"] == label:
                return current, False
            verdict = c.execute(
                "insert into verdicts (alert_id, transaction_id, user_id, label, note, author)"
                " values (%s, %s, %s, %s, %s, %s) returning *",
                (alert_id, alert["transaction_id"], alert["user_id"], label, note, author),
            ).fetchone()
            assert verdict is not None
            c.execute(
                "insert into alert_status (alert_id, transaction_id, user_id, score, event_time,"
                " status, verdict_id, updated_by, updated_at)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " on conflict (alert_id) do update set status = excluded.status,"
                " verdict_id = excluded.verdict_id, updated_by = excluded.updated_by,"
                " updated_at = excluded.updated_at",
                (
                    alert_id,
                    alert["transaction_id"],
                    alert["user_id"],
                    alert["score"],
                    alert["event_time"],
                    label,
                    verdict["id"],
                    author,
                    verdict["created_at"],
                ),
            )
            self._audit(
                c,
                actor=author,
                roles=roles,
                action="verdict",
                target=f"alert:{alert_id}",
                detail={
                    "label": label,
                    "note": note,
                    "verdict_id": verdict["id"],
                    "previous": None if current is None else current["label"],
                },
            )
        return verdict, True

    def mark_published(self, verdict_id: int) -> datetime:
        with self.conn() as c:
            row = c.execute(
                "update verdicts set published_at = coalesce(published_at, now())"
                " where id = %s returning published_at",
                (verdict_id,),
            ).fetchone()
        assert row is not None
        at: datetime = row["published_at"]
        return at

    # --- audit -------------------------------------------------------------

    @staticmethod
    def _audit(
        c: psycopg.Connection[Row],
        *,
        actor: str,
        roles: Sequence[str],
        action: str,
        target: str,
        detail: dict[str, Any],
    ) -> None:
        c.execute(
            "insert into audit (actor, roles, action, target, detail)"
            " values (%s, %s, %s, %s, %s::jsonb)",
            (actor, list(roles), action, target, orjson.dumps(detail).decode()),
        )

    def audit(
        self, actor: str, roles: Sequence[str], action: str, target: str, detail: dict[str, Any]
    ) -> None:
        with self.conn() as c:
            self._audit(c, actor=actor, roles=roles, action=action, target=target, detail=detail)

    def audit_log(self, limit: int = 100, target: str | None = None) -> list[Row]:
        with self.conn() as c:
            if target is None:
                return c.execute(
                    "select * from audit order by id desc limit %s", (limit,)
                ).fetchall()
            return c.execute(
                "select * from audit where target = %s order by id desc limit %s", (target, limit)
            ).fetchall()

"""The feature log: every decision's exact model inputs, where training reads them.

A record holds the numeric features the decision was scored on (detector
scores included: ``hst_score``, ``zscore_score``, ``iqr_score``, and the rule
score as ``rules_score``), the entity fields the risk tables are keyed by, the
decision's score and the model and rule versions. Training uses these values,
never features recomputed later (docs/training.md).

Two writers: :class:`FeatureLogSink` (the ``feature_log`` table, one COPY per
batch, idempotent on ``(alert_id, event_time)``) and :func:`write_feature_log`
(JSON lines, a backtest's ``--feature-log FILE``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from psycopg import sql

from fraudflow.config.settings import Secret
from fraudflow.records import Decision
from fraudflow.sinks.retry import Retrier, secret_parts
from fraudflow.sinks.schema import (
    create_stage,
    ensure_month_partition,
    month_start,
    partition_name,
    table_layout,
)
from fraudflow.training.model import model_inputs
from fraudflow.training.schema import FEATURE_LOG, FEATURE_LOG_WRITE, ensure_training_schema

log = logging.getLogger(__name__)

ENTITY_FIELDS = ("user_id", "merchant_id", "device_id", "country")
STAGE = "fraudflow_feature_stage"


def logged_features(d: Decision) -> dict[str, float]:
    """The numeric model inputs of a decision (bools as 0/1, non-finite dropped).

    >>> from fraudflow.records import Transaction
    >>> t = Transaction("t1", "u1", 5.0, 0.0, "USD")
    >>> d = Decision("a", t, 0.1, "approve", {"rules": 0.5}, [], [], "r", "m",
    ...              features={"amount": 5.0, "new_device": True, "hour_name": "x"})
    >>> logged_features(d)
    {'amount': 5.0, 'new_device': 1.0, 'rules_score': 0.5}
    """
    return model_inputs(d.features, d.detector_scores.get("rules", 0.0))


def log_record(d: Decision) -> dict[str, Any]:
    """One feature-log record (a JSON line in a file; the same fields as the table)."""
    t = d.txn
    return {
        "alert_id": d.alert_id,
        "ts": t.ts,
        "transaction_id": t.transaction_id,
        "user_id": t.user_id,
        "merchant_id": t.merchant_id,
        "device_id": t.device_id,
        "country": t.country,
        "amount": t.amount,
        "features": logged_features(d),
        "score": d.score,
        "model_version": d.model_version,
        "rules_version": d.rules_version,
    }


def write_feature_log(path: Path, decisions: Iterable[Decision]) -> int:
    """Write one JSON line per decision; the number written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("wb") as f:
        for d in decisions:
            f.write(orjson.dumps(log_record(d)) + b"\n")
            n += 1
    return n


def read_feature_log(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a feature-log file."""
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def _row(d: Decision, now: datetime) -> tuple[Any, ...]:
    t = d.txn
    return (
        d.alert_id,
        datetime.fromtimestamp(t.ts, UTC),
        t.transaction_id,
        t.user_id,
        t.merchant_id,
        t.device_id,
        t.country,
        t.amount,
        logged_features(d),
        d.score,
        d.model_version,
        d.rules_version,
        now,
    )


class _FeatureLogPartition(StatelessSinkPartition[Decision]):
    def __init__(self, dsn: Secret, retrier: Retrier) -> None:
        self._dsn = dsn
        self._retrier = retrier
        self._conn: psycopg.Connection[Any] | None = None
        self._partitioned = False
        self._known: set[str] = set()
        cols = sql.SQL(", ").join(sql.Identifier(c) for c, _ in FEATURE_LOG_WRITE)
        self._copy = sql.SQL("copy {} ({}) from stdin").format(sql.Identifier(STAGE), cols)
        self._insert = sql.SQL(
            "insert into {t} ({c}) select {c} from {s} on conflict do nothing"
        ).format(t=sql.Identifier(FEATURE_LOG), c=cols, s=sql.Identifier(STAGE))
        self._types = [t for _, t in FEATURE_LOG_WRITE]

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = psycopg.connect(
            self._dsn.reveal(), autocommit=True, connect_timeout=5, application_name="fraudflow"
        )
        try:
            ensure_training_schema(conn)
            self._partitioned = table_layout(conn, FEATURE_LOG) == "partitioned"
            create_stage(conn, STAGE, FEATURE_LOG_WRITE)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def _write(self, rows: Sequence[tuple[Any, ...]], months: set[tuple[int, int]]) -> None:
        conn = self._connection()
        if self._partitioned:
            for year, month in sorted(months):
                name = partition_name(FEATURE_LOG, year, month)
                if name not in self._known:
                    ensure_month_partition(conn, FEATURE_LOG, year, month)
                    self._known.add(name)
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(self._copy) as copy:
                copy.set_types(self._types)
                for row in rows:
                    copy.write_row(row)
            cur.execute(self._insert)

    def write_batch(self, items: list[Decision]) -> None:
        if not items:
            return
        now = datetime.now(UTC)
        rows = [_row(d, now) for d in items]
        months = {month_start(d.txn.ts) for d in items}
        self._retrier.call(lambda: self._write(rows, months), on_failure=self._drop)

    def close(self) -> None:
        self._drop()


class FeatureLogSink(DynamicSink[Decision]):
    """Every worker writes its decisions' model inputs to ``feature_log``."""

    def __init__(self, dsn: Secret, *, retry_limit: timedelta = timedelta(seconds=60)) -> None:
        self.dsn = dsn
        self.retry_limit = retry_limit

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FeatureLogPartition:
        retrier = Retrier(
            "feature_log",
            self.retry_limit,
            (psycopg.OperationalError, psycopg.InterfaceError),
            tuple(secret_parts(self.dsn.reveal())),
            seed=worker_index,
        )
        return _FeatureLogPartition(self.dsn, retrier)

    def __repr__(self) -> str:
        return f"FeatureLogSink(dsn={self.dsn!r})"

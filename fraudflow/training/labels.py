"""The labels store: labels from the labels topic in PostgreSQL, for training.

One row per transaction; a label is upserted so the latest ``reported_at``
wins, and writing the same label again (a replay after a restart) changes
nothing: the sink is idempotent. A label is stored whether or not its
transaction has been scored yet: training joins ``labels`` with
``feature_log`` at its cutoff, so a label read ahead of its transaction (a
catch-up run reads the labels topic faster) is applied as soon as the
transaction's decision is logged. Nothing is lost on the way.

A label whose transaction never reaches the feature log is dead-lettered by
:func:`sweep_orphans` (``fraudflow train`` runs it): its ``dead_at`` is set
once it was received more than the orphan horizon ago
(``label_orphan_horizon``, 30 days by default) with no logged decision. It
stays in the table, and un-dies if the transaction arrives after all.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from fraudflow.config.settings import Secret
from fraudflow.records import Label
from fraudflow.sinks.retry import Retrier, secret_parts
from fraudflow.training.schema import ensure_training_schema

UPSERT = (
    "insert into labels (transaction_id, label, reported_at, source_topic, source_partition,"
    " source_offset) values (%s, %s, %s, %s, %s, %s)"
    " on conflict (transaction_id) do update set label = excluded.label,"
    " reported_at = excluded.reported_at, received_at = now(),"
    " source_topic = excluded.source_topic, source_partition = excluded.source_partition,"
    " source_offset = excluded.source_offset"
    " where excluded.reported_at > labels.reported_at"
)


def label_row(lab: Label) -> tuple[Any, ...]:
    """The upsert parameters of one label."""
    return (
        lab.transaction_id,
        lab.label,
        datetime.fromtimestamp(lab.reported_at, UTC),
        lab.topic or None,
        lab.partition if lab.partition >= 0 else None,
        lab.offset if lab.offset >= 0 else None,
    )


def latest(labels: list[Label]) -> list[Label]:
    """One label per transaction: the latest ``reported_at`` (then the later in the batch).

    >>> a = Label("t1", 1, 2.0, b""); b = Label("t1", 0, 1.0, b""); c = Label("t2", 0, 1.0, b"")
    >>> [(x.transaction_id, x.label) for x in latest([a, b, c])]
    [('t1', 1), ('t2', 0)]
    """
    best: dict[str, Label] = {}
    for lab in labels:
        have = best.get(lab.transaction_id)
        if have is None or lab.reported_at >= have.reported_at:
            best[lab.transaction_id] = lab
    return list(best.values())


class _LabelPartition(StatelessSinkPartition[Label]):
    def __init__(self, dsn: Secret, retrier: Retrier) -> None:
        self._dsn = dsn
        self._retrier = retrier
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(
                self._dsn.reveal(), autocommit=True, connect_timeout=5, application_name="fraudflow"
            )
            try:
                ensure_training_schema(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(UPSERT, rows)

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def write_batch(self, items: list[Label]) -> None:
        # sorted: concurrent workers lock rows in the same order (no deadlock)
        rows = sorted((label_row(x) for x in latest(items)), key=lambda r: str(r[0]))
        if rows:
            self._retrier.call(lambda: self._write(rows), on_failure=self._drop)

    def close(self) -> None:
        self._drop()


class LabelStoreSink(DynamicSink[Label]):
    """Every worker upserts the labels it reads into ``labels``."""

    def __init__(self, dsn: Secret, *, retry_limit: timedelta = timedelta(seconds=60)) -> None:
        self.dsn = dsn
        self.retry_limit = retry_limit

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _LabelPartition:
        retrier = Retrier(
            "labels",
            self.retry_limit,
            (psycopg.OperationalError, psycopg.InterfaceError),
            tuple(secret_parts(self.dsn.reveal())),
            seed=worker_index,
        )
        return _LabelPartition(self.dsn, retrier)

    def __repr__(self) -> str:
        return f"LabelStoreSink(dsn={self.dsn!r})"


def sweep_orphans(conn: psycopg.Connection[Any], horizon: timedelta, now: datetime) -> int:
    """Dead-letter labels received over ``horizon`` ago whose transaction was never logged;
    revive those whose transaction arrived since. The number dead-lettered now."""
    with conn.transaction():
        conn.execute(
            "update labels l set dead_at = null where dead_at is not null and exists"
            " (select 1 from feature_log f where f.transaction_id = l.transaction_id)"
        )
        cur = conn.execute(
            "update labels l set dead_at = %s where dead_at is null and received_at < %s"
            " and not exists (select 1 from feature_log f"
            " where f.transaction_id = l.transaction_id)",
            (now, now - horizon),
        )
        return cur.rowcount

"""The model registry: versioned artifacts and their risk tables in PostgreSQL.

``model_registry`` holds one row per published model: the booster in
LightGBM's text format (``model``), the artifact's data (``artifact``: inputs,
calibration, risk parameters, training window, holdout metrics), the cutoff
and whether it was promoted. ``entity_risk`` holds its risk tables, one row
per (field, entity). The serving version is the pinned one
(``FRAUDFLOW_MODEL_PIN``) or else the newest promoted one; rollback is a pin,
or un-promoting the bad version (docs/training.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

from fraudflow.training.model import LIBRARY, TrainedModel

Conn = psycopg.Connection[Any]


def publish(conn: Conn, model: TrainedModel, *, promoted: bool) -> None:
    """Store ``model`` and its risk tables in one transaction (again: no change)."""
    art = model.to_artifact()
    with conn.transaction():
        cur = conn.execute(
            "insert into model_registry (version, library, model, artifact, cutoff, metrics,"
            " promoted) values (%s, %s, %s, %s::jsonb, %s, %s::jsonb, %s)"
            " on conflict (version) do nothing",
            (
                model.version,
                LIBRARY,
                model.model_text(),
                orjson.dumps(art).decode(),
                datetime.fromtimestamp(model.risk.cutoff, UTC),
                orjson.dumps(art.get("metrics", {})).decode(),
                promoted,
            ),
        )
        if cur.rowcount == 0:
            return
        with conn.cursor().copy(
            "copy entity_risk (version, field, entity, risk) from stdin"
        ) as copy:
            copy.set_types(["text", "text", "text", "jsonb"])
            for field, table in model.risk.tables.items():
                for entity, values in table.items():
                    copy.write_row((model.version, field, entity, list(values)))


def serving_version(conn: Conn, pin: str | None = None) -> str | None:
    """The version every worker should score with: ``pin``, else the newest promoted."""
    if pin:
        return pin
    row = conn.execute(
        "select version from model_registry where promoted"
        " order by created_at desc, version desc limit 1"
    ).fetchone()
    return None if row is None else str(row[0])


def load(conn: Conn, version: str) -> TrainedModel:
    """The published model ``version`` (LookupError when there is none)."""
    row = conn.execute(
        "select artifact, model from model_registry where version = %s", (version,)
    ).fetchone()
    if row is None:
        raise LookupError(f"model registry: no version {version!r}")
    artifact, text = row
    tables: dict[str, dict[str, tuple[float, ...]]] = {}
    for field, entity, risk in conn.execute(
        "select field, entity, risk from entity_risk where version = %s", (version,)
    ):
        tables.setdefault(str(field), {})[str(entity)] = tuple(float(x) for x in risk)
    return TrainedModel.from_artifact(artifact, str(text), tables)


def versions(conn: Conn) -> list[dict[str, Any]]:
    """Every published version, newest first (for ``fraudflow train --list``)."""
    rows = conn.execute(
        "select version, created_at, cutoff, promoted, metrics from model_registry"
        " order by created_at desc, version desc"
    ).fetchall()
    return [
        {"version": v, "created_at": c.isoformat(), "cutoff": k.isoformat(), "promoted": p,
         "metrics": m}
        for v, c, k, p, m in rows
    ]  # fmt: skip

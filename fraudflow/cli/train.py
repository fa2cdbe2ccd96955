"""``fraudflow train``: train on the feature log and the labels known at a cutoff, publish.

From PostgreSQL (``--postgres-dsn`` / ``FRAUDFLOW_POSTGRES_DSN``): the
``feature_log`` and ``labels`` tables; the new model is published to the
registry, promoted only when it beats the serving model on the holdout. From
files (``--feature-log FILE`` of a backtest, labels from ``--labels FILE`` or
the input's ``_label`` fields): the artifact goes to ``--out DIR``.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from fraudflow.backtest.labels import label_of, parse_time
from fraudflow.cli.common import fail
from fraudflow.config.settings import ConfigError, Secret, parse_duration
from fraudflow.training import registry
from fraudflow.training.featurelog import read_feature_log
from fraudflow.training.labels import sweep_orphans
from fraudflow.training.model import TrainedModel
from fraudflow.training.risk import DAY, RiskParams
from fraudflow.training.schema import ensure_training_schema
from fraudflow.training.simulate import retrain_report
from fraudflow.training.trainer import Frame, Labels, TrainParams, TrainResult, train

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "train",
        help="train a model on the feature log and the labels known at a cutoff; publish it",
        description=(
            "Build a training set from the decisions' logged model inputs and the labels known "
            "at --cutoff, train a LightGBM model with entity risk features, calibrate it, "
            "evaluate it on the latest --holdout, and publish it to the PostgreSQL model "
            "registry (promoted only when it beats the serving model there), or write it to "
            "--out DIR when training from files. See docs/training.md."
        ),
    )
    p.add_argument("--postgres-dsn", metavar="DSN", help="env FRAUDFLOW_POSTGRES_DSN")
    p.add_argument("--feature-log", type=Path, metavar="FILE", help="a backtest's feature log")
    p.add_argument(
        "--labels", type=Path, metavar="FILE",
        help='with --feature-log: JSON lines {"transaction_id", "label", "label_time"?} '
        "(e.g. the backtest's input with its _label fields)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, metavar="DIR", help="with --feature-log: write here")
    p.add_argument("--cutoff", metavar="TIME", help="RFC 3339 or epoch ms [now]")
    p.add_argument(
        "--label-delay", type=parse_duration, default=timedelta(days=7), metavar="DURATION",
        help="labels arrive this late: risk windows end this long before a row, and in files "
        "a label without label_time is known this long after its transaction [7d]",
    )  # fmt: skip
    p.add_argument(
        "--window", type=parse_duration, default=timedelta(days=60), metavar="DURATION",
        help="train on rows of this long before the cutoff [60d]",
    )  # fmt: skip
    p.add_argument(
        "--holdout", type=parse_duration, default=timedelta(days=3), metavar="DURATION",
        help="the latest labelled period held out for evaluation and promotion [3d]",
    )  # fmt: skip
    p.add_argument(
        "--horizon", type=parse_duration, default=timedelta(days=14), metavar="DURATION",
        help="an unlabelled row older than this counts as legit [14d]",
    )  # fmt: skip
    p.add_argument("--min-gain", type=float, default=0.0, help="holdout AP to beat by [0]")
    p.add_argument(
        "--orphan-horizon", type=parse_duration, default=timedelta(days=30), metavar="DURATION",
        help="dead-letter stored labels whose transaction was not logged this long [30d]",
    )  # fmt: skip
    p.add_argument(
        "--simulate", type=parse_duration, metavar="DURATION",
        help="with --feature-log: simulate retraining every DURATION of event time (1d) and "
        "print off vs on, and the offline reference on the last week (docs/training.md)",
    )  # fmt: skip
    p.add_argument(
        "--simulate-from", metavar="TIME",
        help="with --simulate: the first training (RFC 3339); earlier rows keep the replay's "
        "score [the second day]",
    )  # fmt: skip
    p.add_argument("--list", action="store_true", help="list the registry's versions and exit")
    p.set_defaults(func=main)


def params_from(args: argparse.Namespace) -> TrainParams:
    return TrainParams(
        window=args.window.total_seconds(),
        holdout=args.holdout.total_seconds(),
        horizon=args.horizon.total_seconds(),
        min_gain=args.min_gain,
        risk=RiskParams(delay=args.label_delay.total_seconds()),
    )


def _cutoff(text: str | None) -> float:
    if text is None:
        return time.time()
    if text.isdigit():
        return int(text) / 1000.0
    t = parse_time(text)
    if t is None:
        raise ConfigError(f"--cutoff: not a time: {text!r} (RFC 3339 with a zone, or epoch ms)")
    return t


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    dsn_text = args.postgres_dsn or os.environ.get("FRAUDFLOW_POSTGRES_DSN")
    try:
        cutoff = _cutoff(args.cutoff)
        p = params_from(args)
    except (ConfigError, ValueError) as exc:
        return fail(str(exc))
    if args.feature_log is not None:
        return _from_files(args, p, cutoff)
    if not dsn_text:
        return fail("give --postgres-dsn (or FRAUDFLOW_POSTGRES_DSN), or --feature-log FILE")
    dsn = Secret(dsn_text)
    try:
        with psycopg.connect(dsn.reveal(), autocommit=True, connect_timeout=10) as conn:
            ensure_training_schema(conn)
            if args.list:
                for v in registry.versions(conn):
                    print(orjson.dumps(v, default=str).decode())
                return 0
            return _from_postgres(conn, args, p, cutoff)
    except psycopg.OperationalError as exc:
        return fail(f"train: PostgreSQL: {type(exc).__name__} (DSN not shown)")


def _from_postgres(
    conn: psycopg.Connection[Any], args: argparse.Namespace, p: TrainParams, cutoff: float
) -> int:
    now = datetime.fromtimestamp(cutoff, UTC)
    dead = sweep_orphans(conn, args.orphan_horizon, datetime.now(UTC))
    if dead:
        log.warning("labels: %d dead-lettered (no logged transaction after %s)",
                    dead, args.orphan_horizon)  # fmt: skip
    since = cutoff - p.window - p.risk.delay - max(p.risk.windows) * DAY
    frame = Frame.from_records(_pg_records(conn, since, cutoff))
    labels: Labels = {
        str(tid): (int(lab), float(at))
        for tid, lab, at in conn.execute(
            "select transaction_id, label, extract(epoch from reported_at)::float8 from labels"
            " where reported_at <= %s",
            (now,),
        )
    }
    version = registry.serving_version(conn)
    current = registry.load(conn, version) if version else None
    result = train(frame, labels, cutoff, p, current)
    if result.model is not None:
        registry.publish(conn, result.model, promoted=result.promoted)
    if result.refreshed is not None:  # the serving booster with fresh risk tables
        registry.publish(conn, result.refreshed, promoted=True)
    _report(result, len(frame), len(labels))
    if result.refreshed is not None:
        print(f"risk tables refreshed: {result.refreshed.version} serves"
              f" (the model of {current.version if current else '-'})")  # fmt: skip
    return 0 if result.model is not None or result.refreshed is not None else 1


def _pg_records(
    conn: psycopg.Connection[Any], since: float, cutoff: float
) -> Iterator[dict[str, Any]]:
    """Feature-log rows of ``[since, cutoff)``: the first decision of each transaction."""
    with conn.cursor() as cur:
        cur.execute(
            "select distinct on (transaction_id) extract(epoch from event_time)::float8,"
            " transaction_id, user_id, merchant_id, device_id, country, features"
            " from feature_log where event_time >= %s and event_time < %s"
            " order by transaction_id, processed_at",
            (datetime.fromtimestamp(since, UTC), datetime.fromtimestamp(cutoff, UTC)),
        )
        for ts, tid, uid, mid, dev, country, feats in cur:
            yield {"ts": ts, "transaction_id": tid, "user_id": uid, "merchant_id": mid,
                   "device_id": dev, "country": country, "features": feats}  # fmt: skip


def file_labels(path: Path, delay: float) -> Labels:
    """Labels of a JSON-lines file: ``label`` or ``_label``; known at ``label_time``, else
    at the transaction's ``timestamp`` plus ``delay``."""
    out: dict[str, tuple[int, float]] = {}
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # not a record (the backtest dead-letters it too)
            tid, lab = rec.get("transaction_id"), label_of(rec)
            if not isinstance(tid, str) or lab is None or tid in out:
                continue
            at = parse_time(rec.get("label_time"))
            if at is None:
                ts = parse_time(rec.get("timestamp"))
                if ts is None:
                    continue
                at = ts + delay
            out[tid] = (int(lab), at)
    return out


def _from_files(args: argparse.Namespace, p: TrainParams, cutoff: float) -> int:
    if args.labels is None:
        return fail("--feature-log needs --labels FILE")
    if args.out is None and args.simulate is None:
        return fail("--feature-log needs --out DIR or --simulate (the registry is in PostgreSQL)")
    frame = Frame.from_records(read_feature_log(args.feature_log))
    labels = file_labels(args.labels, p.risk.delay)
    if args.simulate is not None:
        every = args.simulate.total_seconds()
        start = None if args.simulate_from is None else _cutoff(args.simulate_from)
        text, figures = retrain_report(
            frame, labels, replace(p, step=every), every=every, start=start
        )
        print(text)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "simulation.json").write_bytes(
                orjson.dumps(figures, option=orjson.OPT_INDENT_2)
            )
        return 0
    result = train(frame, labels, cutoff, p)
    if result.model is not None:
        write_artifact(args.out, result.model)
    _report(result, len(frame), len(labels))
    return 0 if result.model is not None else 1


def write_artifact(out: Path, m: TrainedModel) -> None:
    """``model.txt`` (LightGBM text), ``artifact.json``, ``risk.json``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.txt").write_text(m.model_text())
    (out / "artifact.json").write_bytes(
        orjson.dumps(m.to_artifact(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    (out / "risk.json").write_bytes(orjson.dumps(m.risk.tables))


def _report(result: TrainResult, rows: int, labels: int) -> None:
    m = result.metrics
    if result.model is None:
        print(f"no model: {result.reason} ({rows} logged rows, {labels} labels)")
        return
    print(
        f"model {result.model.version}: {'promoted' if result.promoted else 'not promoted'}"
        f" ({result.reason}); holdout AP {m.get('average_precision')}, ROC AUC"
        f" {m.get('roc_auc')}, {m.get('holdout_rows')} rows / {m.get('holdout_frauds')} frauds;"
        f" trained on {m.get('train_rows')} rows / {m.get('train_frauds')} frauds"
        f" in {m.get('seconds')} s"
    )

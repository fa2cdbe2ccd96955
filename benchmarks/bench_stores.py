"""PostgreSQL sink: write throughput to each layout, and table size after compression.

For each layout (``partitioned``: native monthly partitions; ``timescale``:
hypertables) a fresh database on the server of ``--dsn`` gets ``--rows``
generated decisions through ``PostgresSink.write_batch`` in batches of
``--batch`` (tier mix 97 % approve, 2 % review, 1 % block; event times spread
over ``--days`` days ending now; ~20,000 users), into ``decisions`` and
``alerts`` as the flow writes them. Reported: decisions/s for the whole load
(one worker, one connection), the size of ``decisions`` with its indexes, and
on TimescaleDB the size after compressing every chunk (``compress_chunk``, as
the compression policy does after 7 days). The databases are dropped at the end.
Prints a table and one JSON line.

    python benchmarks/bench_stores.py [--rows 1000000] [--batch 1000] [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import time
import uuid
from typing import Any

import psycopg

from fraudflow.config.settings import Secret
from fraudflow.records import Decision, Reason, RuleHit, Transaction
from fraudflow.sinks.postgres import PostgresSink, migrate

TIERS = (("approve", 0.97), ("review", 0.02), ("block", 0.01))


def decisions(n: int, days: int, seed: int = 7) -> list[Decision]:
    rnd = random.Random(seed)  # noqa: S311 - synthetic data, not crypto
    end = time.time()
    start = end - days * 86400
    out = []
    for i in range(n):
        ts = start + (end - start) * i / n
        user = f"u{rnd.randrange(20_000)}"
        r = rnd.random()
        tier = "approve" if r < TIERS[0][1] else ("review" if r < 0.99 else "block")
        hits = [] if tier == "approve" else [RuleHit("R_VELOCITY", 0.5, None, "medium", "", {})]
        tid = f"t{i}"
        txn = Transaction(
            transaction_id=tid,
            user_id=user,
            amount=round(rnd.lognormvariate(3, 0.8), 2),
            ts=ts,
            currency="EUR",
            merchant_id=f"m{rnd.randrange(5000)}",
            country=rnd.choice(("FR", "DE", "ES", "IT")),
            topic="transactions",
            partition=i % 4,
            offset=i // 4,
        )
        score = {"approve": 0.1, "review": 0.6, "block": 0.9}[tier] + rnd.random() / 20
        out.append(
            Decision(
                alert_id=hashlib.blake2b(tid.encode(), digest_size=16).hexdigest(),
                txn=txn,
                score=score,
                tier=tier,
                detector_scores={
                    "hst": rnd.random(),
                    "zscore": rnd.random(),
                    "iqr": rnd.random(),
                    "rules": 0.5 if hits else 0.0,
                },
                rule_hits=hits,
                reasons=[Reason("AMOUNT_ZSCORE", round(rnd.random(), 2), {"amount_z": 1.5})],
                rules_version="rules-bench",
                model_version="model-bench",
                processed_at=ts + 0.2,
            )
        )
    return out


def one(conn: psycopg.Connection[tuple[Any, ...]], sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def run_layout(server: str, layout: str, ds: list[Decision], batch: int) -> dict[str, Any]:
    name = f"fraudflow_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as c:
        c.execute(f'create database "{name}"')
    dsn = f"{server.rpartition('/')[0]}/{name}"
    try:
        migrate(Secret(dsn), layout=layout)
        part = PostgresSink(Secret(dsn)).build("bench", 0, 1)
        started = time.perf_counter()
        for i in range(0, len(ds), batch):
            part.write_batch(ds[i : i + batch])
        seconds = time.perf_counter() - started
        part.close()
        out: dict[str, Any] = {
            "layout": layout,
            "rows": len(ds),
            "seconds": round(seconds, 2),
            "decisions_per_s": round(len(ds) / seconds),
        }
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("vacuum analyze decisions")
            out["alerts"] = one(c, "select count(*) from alerts")
            if layout == "timescale":
                out["bytes_before"] = one(c, "select hypertable_size('decisions')")
                t0 = time.perf_counter()
                c.execute("select count(compress_chunk(c)) from show_chunks('decisions') c")
                out["compress_seconds"] = round(time.perf_counter() - t0, 1)
                out["bytes_after"] = one(c, "select hypertable_size('decisions')")
                out["chunks"] = one(c, "select count(*) from show_chunks('decisions')")
            else:
                out["bytes_before"] = one(
                    c,
                    "select sum(pg_total_relation_size(inhrelid))::bigint from pg_inherits"
                    " where inhparent = 'decisions'::regclass",
                )
            out["version"] = one(c, "select version()").split(" on ")[0]
        return out
    finally:
        with psycopg.connect(server, autocommit=True) as c:
            c.execute(f'drop database if exists "{name}" with (force)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--layouts", default="partitioned,timescale")
    args = ap.parse_args()
    ds = decisions(args.rows, args.days)
    results = [run_layout(args.dsn, lay, ds, args.batch) for lay in args.layouts.split(",")]
    mb = 1024 * 1024
    print(f"{'layout':<12} {'rows':>9} {'s':>7} {'dec/s':>8} {'MB':>8} {'MB compr.':>10}")
    for r in results:
        after = f"{r['bytes_after'] / mb:10.1f}" if "bytes_after" in r else f"{'-':>10}"
        print(
            f"{r['layout']:<12} {r['rows']:>9,} {r['seconds']:>7} {r['decisions_per_s']:>8,}"
            f" {r['bytes_before'] / mb:8.1f} {after}"
        )
    info = {"machine": platform.platform(), "python": platform.python_version(), "args": vars(args)}
    print(json.dumps({**info, "results": results}))


if __name__ == "__main__":
    main()

"""``GET /api/alerts`` latency over 1,000,000 stored alerts (the console's review queue).

Creates a fresh database on the server of ``--dsn``, applies the sink's and the
console's migrations (TimescaleDB hypertables when the extension is preloaded,
monthly partitions otherwise), bulk-loads ``--alerts`` alerts with COPY
(90 days of event time, 20,000 users, 1% with an analyst verdict), starts
``fraudflow serve`` on a free port and times each queue query with one
keep-alive HTTP client: the default queue, each filter, both sorts and 20-page
cursor walks. Prints a table, each query's plan, and one JSON line (also
written to ``--out``); the database is dropped at the end unless ``--keep``.

    python benchmarks/bench_console.py [--alerts 1000000] [--requests 300] [--out FILE]

Target (issue 19): p99 <= 50 ms for every query.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from fraudflow.console.auth import mint_token
from fraudflow.console.schema import apply_migrations
from fraudflow.sinks.columns import WRITE_COLUMNS
from fraudflow.sinks.schema import table_layout

SECRET = "bench-" + "s" * 40
RULES = ("velocity_burst", "blocked_merchant", "account_takeover", "impossible_travel", "big")
END = datetime(2026, 11, 30, tzinfo=UTC)
SPAN = timedelta(days=90)


def _line(i: int, rng: random.Random) -> str:
    ts = END - SPAN * rng.random()
    score = 0.5 + 0.5 * rng.random() ** 2
    rules = [r for r in RULES if rng.random() < 0.04]
    hits = [{"id": r, "score": 0.6, "tier": "review", "severity": "high"} for r in rules]
    reasons = [{"code": "AMOUNT_ZSCORE", "contribution": round(score, 4),
                "detail": {"amount": 912.5, "amount_mean": 80.1, "amount_z": 5.2}}]  # fmt: skip
    user = f"u{rng.randrange(20000):06d}"
    fields = [
        f"b{i:09d}",
        ts.isoformat(),
        ts.isoformat(),
        f"t{i:09d}",
        user,
        f"{rng.uniform(1, 5000):.2f}",
        "EUR",
        f"m{rng.randrange(5000):05d}",
        "DE",
        f"{score:.6f}",
        "block" if score >= 0.85 else "review",
        orjson.dumps({"hst": 0.3, "zscore": 0.8, "iqr": 0.4, "rules": 0.0}).decode(),
        "{" + ",".join(rules) + "}",
        orjson.dumps(hits).decode(),
        orjson.dumps(reasons).decode(),
        "r1",
        "m1",
        "f",
        "transactions",
        "0",
        str(i),
    ]
    return "\t".join(fields) + "\n"


def load(dsn: str, n: int, seed: int) -> dict[str, Any]:
    """Migrate and COPY ``n`` alerts (and 1% verdicts); what was loaded and how long it took."""
    with psycopg.connect(dsn, autocommit=True) as c:
        apply_migrations(c)
        layout = table_layout(c, "alerts")
    rng = random.Random(seed)  # noqa: S311 - synthetic benchmark data, not security
    cols = ", ".join(c for c, _ in WRITE_COLUMNS)
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as c, c.cursor() as cur:
        with cur.copy(f"copy alerts ({cols}) from stdin") as copy:
            buf = io.StringIO()
            for i in range(n):
                buf.write(_line(i, rng))
                if i % 20000 == 19999:
                    copy.write(buf.getvalue())
                    buf = io.StringIO()
            copy.write(buf.getvalue())
        loaded = time.perf_counter() - t0
        # 1% of the alerts have a verdict: the open queue's anti-join has work to do
        cur.execute(
            "insert into verdicts (alert_id, transaction_id, user_id, label, author, published_at)"
            " select alert_id, transaction_id, user_id,"
            " case when random() < 0.3 then 'fraud' else 'legit' end, 'bench', now()"
            " from alerts tablesample bernoulli (1) repeatable (7)"
        )
        cur.execute(
            "insert into alert_status (alert_id, transaction_id, user_id, score, event_time,"
            " status, verdict_id, updated_by, updated_at) select v.alert_id, v.transaction_id,"
            " v.user_id, a.score, a.event_time, v.label, v.id, v.author, v.created_at"
            " from verdicts v join alerts a on a.alert_id = v.alert_id"
        )
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("analyze")
        verdicts = c.execute("select count(*) from verdicts").fetchone()
    return {
        "layout": layout,
        "load_s": round(loaded, 1),
        "verdicts": verdicts[0] if verdicts else 0,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _percentiles(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)

    def q(p: float) -> float:
        return round(xs[min(len(xs) - 1, int(p * len(xs)))] * 1000, 2)

    return {"p50_ms": q(0.50), "p95_ms": q(0.95), "p99_ms": q(0.99), "max_ms": q(1.0)}


def scenarios(user: str) -> dict[str, Callable[[httpx.Client], Any]]:
    day = (END - timedelta(days=30)).isoformat()
    day_end = (END - timedelta(days=29)).isoformat()

    def get(params: dict[str, Any]) -> Callable[[httpx.Client], Any]:
        def run(c: httpx.Client) -> Any:
            r = c.get("/api/alerts", params=params)
            r.raise_for_status()
            return r.json()

        return run

    def walk(params: dict[str, Any], pages: int) -> Callable[[httpx.Client], Any]:
        """One request per call, following the cursor; restarts after ``pages`` pages."""
        state: dict[str, Any] = {"cursor": None, "page": 0}

        def run(c: httpx.Client) -> Any:
            q = dict(params)
            if state["cursor"] and state["page"] < pages:
                q["cursor"] = state["cursor"]
            else:
                state["page"] = 0
            r = c.get("/api/alerts", params=q)
            r.raise_for_status()
            body = r.json()
            state["cursor"], state["page"] = body["next_cursor"], state["page"] + 1
            return body

        return run

    return {
        "queue (open, by score)": get({}),
        "queue by time": get({"sort": "time"}),
        "tier=block": get({"tier": "block"}),
        "min_score=0.95": get({"min_score": 0.95}),
        "user_id": get({"user_id": user, "status": "any"}),
        "rule": get({"rule": "blocked_merchant"}),
        "1-day range by score": get({"from": day, "to": day_end}),
        "status=fraud": get({"status": "fraud"}),
        "any status, limit 200": get({"status": "any", "limit": 200}),
        "cursor walk, 20 pages by score": walk({}, 20),
        "cursor walk, 20 pages by time": walk({"sort": "time"}, 20),
    }


def explain(dsn: str) -> str:
    with psycopg.connect(dsn) as c:
        rows = c.execute(
            "explain (analyze, costs off, timing off, summary on)"
            " select a.alert_id from alerts a left join alert_status s on s.alert_id = a.alert_id"
            " where s.alert_id is null order by a.score desc, a.alert_id desc limit 51"
        ).fetchall()
    return "\n".join(r[0] for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--alerts", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=300, help="timed requests per query")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--out", type=Path, help="also write the JSON result here")
    args = ap.parse_args()

    name = f"fraudflow_bench_console_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.dsn, autocommit=True) as c:
        c.execute(f'create database "{name}"')
    dsn = f"{args.dsn.rpartition('/')[0]}/{name}"
    proc = None
    try:
        loaded = load(dsn, args.alerts, args.seed)
        print(f"loaded {args.alerts:,} alerts ({loaded['layout']}) in {loaded['load_s']}s",
              file=sys.stderr)  # fmt: skip
        port = _free_port()
        env = {**os.environ, "FRAUDFLOW_POSTGRES_DSN": dsn, "FRAUDFLOW_JWT_SECRET": SECRET}
        env.pop("FRAUDFLOW_BROKERS", None)
        env.pop("FRAUDFLOW_REDIS_URL", None)
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "fraudflow", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        tok = mint_token(SECRET, "bench", ["viewer"], ttl=timedelta(hours=2), now=datetime.now(UTC))
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {tok}"},
            timeout=30,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("fraudflow serve did not become ready")
            time.sleep(0.2)
        user = client.get("/api/alerts", params={"limit": 1}).json()["alerts"][0]["user_id"]
        results: dict[str, Any] = {}
        for label, run in scenarios(user).items():
            for _ in range(20):  # warm the pool and the caches
                run(client)
            times = []
            rows = 0
            for _ in range(args.requests):
                t = time.perf_counter()
                body = run(client)
                times.append(time.perf_counter() - t)
                rows += len(body["alerts"])
            results[label] = {
                **_percentiles(times),
                "rows_per_page": round(rows / args.requests, 1),
            }
        plan = explain(dsn)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        if not args.keep:
            with psycopg.connect(args.dsn, autocommit=True) as c:
                c.execute(f'drop database if exists "{name}" with (force)')

    print(f"{'query':<34}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'rows':>7}")
    for label, r in results.items():
        print(f"{label:<34}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['p99_ms']:>9}{r['max_ms']:>9}"
              f"{r['rows_per_page']:>7}")  # fmt: skip
    print("\nplan of the default queue query:\n" + plan)
    out = {
        "bench": "console",
        "alerts": args.alerts,
        "requests_per_query": args.requests,
        **loaded,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "worst_p99_ms": max(r["p99_ms"] for r in results.values()),
        "queries": results,
    }
    line = json.dumps(out)
    print(line)
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0 if out["worst_p99_ms"] <= 50 else 1


if __name__ == "__main__":
    sys.exit(main())

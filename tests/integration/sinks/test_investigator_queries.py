"""The investigator queries of docs/sinks.md, as written there, on both layouts:
same results, and (with sequential scans priced out, as on a large table)
plans that read the indexes."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fraudflow.config.settings import Secret
from fraudflow.sinks.postgres import PostgresSink, migrate
from tests.support.system import fresh_database
from tests.unit.sinks.factory import make_decision

pytestmark = pytest.mark.integration
DOC = Path(__file__).resolve().parents[3] / "docs" / "sinks.md"


def doc_queries() -> list[str]:
    """The statements of the ``Investigator queries`` section's sql block."""
    text = DOC.read_text()
    section = text.split("### Investigator queries", 1)[1]
    block = section.split("```sql", 1)[1].split("```", 1)[0]
    body = "\n".join(line for line in block.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def decisions(now: float) -> list[Any]:
    out = []
    for i in range(60):
        tier = ("review", "block")[i % 2]
        rules = ("R_VELOCITY",) if i % 3 else ("R_VELOCITY", "R_GEO")
        user = "alice" if i % 5 == 0 else f"u{i % 7}"
        out.append(make_decision(i, user=user, tier=tier, rules=rules, at=now - 300 * i))
    out.append(make_decision(99, user="alice", tier="block", at=now - 40 * 86400))
    return out


def test_the_documented_queries_give_the_same_rows_and_use_the_indexes(
    postgres_dsn: str, timescale_version: str
) -> None:
    del timescale_version
    queries = doc_queries()
    assert len(queries) == 4
    now = time.time()
    results: dict[str, list[list[tuple[Any, ...]]]] = {}
    for layout in ("partitioned", "timescale"):
        with fresh_database(postgres_dsn) as dsn:
            migrate(Secret(dsn), layout=layout)
            part = PostgresSink(Secret(dsn)).build("pg", 0, 1)
            part.write_batch(decisions(now))
            part.close()
            with psycopg.connect(dsn) as c:
                c.execute("analyze alerts")
                c.execute("set enable_seqscan = off")  # as on a table of millions of rows
                results[layout] = []
                for sql in queries:
                    # a fixed now(), so both layouts answer for the same instant
                    fixed = sql.replace("now()", f"to_timestamp({now})")
                    cur = c.execute(fixed.replace("$1", "%s"), ("alice",) * sql.count("$1"))
                    names = [d.name for d in cur.description or []]
                    results[layout].append(
                        sorted(
                            tuple(
                                str(v) for n, v in zip(names, r, strict=True) if n != "written_at"
                            )
                            for r in cur.fetchall()
                        )
                    )
                    plan = "\n".join(
                        str(r[0])
                        for r in c.execute(
                            "explain " + fixed.replace("$1", "%s"), ("alice",) * sql.count("$1")
                        )
                    )
                    assert "Seq Scan" not in plan, (layout, sql, plan)
                    assert re.search(r"Index (Only )?Scan|Bitmap Index Scan", plan), plan
    assert results["timescale"] == results["partitioned"]
    assert all(results["partitioned"][:3])  # alice's alerts, blocks of the hour, rule hits

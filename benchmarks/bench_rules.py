"""Rule engine throughput: 100 rules over feature records, ``RuleSet.evaluate_batch``.

Builds a 100-rule directory (the bundled defaults plus generated variants with
other thresholds, scopes, lists and functions), generates feature records whose
values look like normal traffic with a few anomalies, and times the compiled
batch path at several batch sizes, plus the reference (closure) evaluator.
Prints a table and one JSON line. Target: >= 50,000 records/s on one core.

    python benchmarks/bench_rules.py [--rows 20000] [--rules 100] [--engines]

``--engines`` also times one expression in each candidate engine that is
importable (``cel`` = common-expression-language, ``rule_engine``), for the
engine choice recorded in docs/rules.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from fraudflow.config.settings import DEFAULT_RULES_DIR
from fraudflow.operators.features.catalogue import feature_catalogue
from fraudflow.rules import RuleSet, load_rules
from fraudflow.rules.expr import NUMBER, parse_expr
from fraudflow.rules.ruleset import Rule
from fraudflow.rules.testing import base_record

WINDOWS = (timedelta(minutes=1), timedelta(hours=1), timedelta(hours=24))

TEMPLATES: tuple[tuple[str, str | None], ...] = (
    ("count_1m >= {n} and amount <= {a}", None),
    ("amount_z > {z} and txn_count >= {n}", None),
    ("travel_kmh > {k}", None),
    ("new_device and new_country and amount_z > {z}", None),
    ("distinct_countries_24h >= {n}", None),
    ("unusual_hour and amount >= {a} and amount > {m} * amount_mean", None),
    ("new_category and merchant_category in high_risk_categories and amount >= {a}", None),
    ("device_id != '' and device_id in blocked_devices", None),
    ("count_1h >= {n} and count_1h * 2 > count_24h and user_id not in velocity_allowlist", None),
    ("new_merchant and amount > {a}", 'channel == "online"'),
    ("sum_1h > {s} and count_1h >= {n}", None),
    ("lower(country) in ['kp', 'ir', 'sy'] and amount > {a}", None),
    ("hst_score > {h} and zscore_score > {h}", None),
    ("max(amount_z, amount_iqr_excess) > {z} and txn_count >= {n}", None),
    ("startswith(ip, '10.66.') and new_device", 'channel == "online"'),
    ("secs_since_prev < {q} and count_1m >= {n} and amount / (amount_mean + 1) > {m}", None),
)


def make_rules(directory: Path, n_rules: int, rng: random.Random) -> None:
    """The bundled default rules plus generated variants, ``n_rules`` in all."""
    shutil.copytree(DEFAULT_RULES_DIR, directory, dirs_exist_ok=True)
    have = len(load_rules(directory, feature_catalogue(WINDOWS)))
    lines = ["rules:"]
    for i in range(n_rules - have):
        when, scope = TEMPLATES[i % len(TEMPLATES)]
        expr = when.format(
            n=rng.randint(3, 9),
            a=rng.choice([5, 50, 200, 500, 1000]),
            z=round(rng.uniform(3, 5), 2),
            k=rng.choice([500, 900, 1500]),
            m=rng.randint(2, 6),
            s=rng.choice([500, 2000, 5000]),
            h=round(rng.uniform(0.7, 0.95), 2),
            q=rng.choice([2, 10, 30]),
        )
        lines += [
            f"  - id: generated_{i:03d}",
            f"    description: generated variant {i} of template {i % len(TEMPLATES)}",
            f"    when: {json.dumps(expr)}",
            f"    score: {round(rng.uniform(0.2, 0.9), 2)}",
            f"    severity: {rng.choice(['low', 'medium', 'high'])}",
        ]
        if scope:
            lines.append(f"    scope: {json.dumps(scope)}")
    (directory / "zz_generated.yaml").write_text("\n".join(lines) + "\n")


def make_rows(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Feature records of mostly normal traffic (a few percent unusual)."""
    base = base_record(feature_catalogue(WINDOWS))
    cats = ["grocery", "restaurants", "fuel", "retail", "travel", "gambling", "crypto"]
    rows = []
    for i in range(n):
        odd = rng.random() < 0.03
        amount = rng.lognormvariate(3.5, 1.0) if not odd else rng.choice([1.0, 2000.0, 4.0])
        r = dict(base)
        r.update(
            transaction_id=f"t{i}",
            user_id=f"u{rng.randint(1, 5000)}",
            amount=amount,
            currency="USD",
            merchant_id=f"m{rng.randint(1, 20000)}",
            merchant_category=rng.choice(cats[:5] if not odd else cats),
            country=rng.choice(["NL", "DE", "FR", "US"] if not odd else ["KP", "SG", "BR"]),
            payment_method="credit_card",
            device_id=f"d-u{i % 5000}-0",
            channel=rng.choice(["online", "pos"]),
            ip=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.1",
            hour=rng.randint(0, 23),
            txn_count=rng.randint(0, 200),
            secs_since_prev=rng.uniform(1, 86400),
            amount_mean=rng.lognormvariate(3.5, 0.5),
            amount_z=rng.gauss(0, 1) + (4 if odd else 0),
            amount_iqr_excess=rng.gauss(0, 1),
            new_merchant=rng.random() < 0.1,
            new_country=odd and rng.random() < 0.5,
            new_device=rng.random() < (0.5 if odd else 0.005),
            new_payment_method=rng.random() < 0.01,
            new_category=rng.random() < (0.5 if odd else 0.02),
            hour_share=rng.random(),
            unusual_hour=rng.random() < 0.02,
            travel_kmh=rng.uniform(0, 60) if not odd else rng.uniform(0, 3000),
            distinct_merchants_24h=rng.randint(1, 6),
            distinct_countries_24h=1 + odd,
            hst_score=rng.random() * (1.0 if odd else 0.6),
            zscore_score=rng.random() * 0.5,
            iqr_score=rng.random() * 0.5,
            count_1m=1 + (rng.randint(0, 8) if odd else 0),
            count_1h=rng.randint(1, 4),
            count_24h=rng.randint(4, 12),
        )
        r["sum_1m"], r["sum_1h"], r["sum_24h"] = (
            amount,
            amount * r["count_1h"],
            amount * r["count_24h"],
        )
        rows.append(r)
    return rows


def best_rate(fn: Callable[[], object], n: int, repeat: int = 3) -> float:
    """Best records/s over ``repeat`` runs of ``fn`` (which handles ``n`` records)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def batched(rs: RuleSet, rows: Sequence[dict[str, Any]], size: int) -> Callable[[], object]:
    def run() -> object:
        out = 0
        for i in range(0, len(rows), size):
            out += sum(map(len, rs.evaluate_batch(rows[i : i + size])))
        return out

    return run


def reference(rs: RuleSet, rows: Sequence[dict[str, Any]]) -> Callable[[], object]:
    def run() -> object:
        return sum(r.matches(row) for row in rows for r in rs.rules)

    return run


def engines(rows: Sequence[dict[str, Any]]) -> list[tuple[str, float]]:
    """One expression (``count_1m >= 4 and amount < 5``) per engine, evaluations/s."""
    expr = parse_expr("count_1m >= 4 and amount < 5", {"count_1m": NUMBER, "amount": NUMBER})
    rule = Rule("x", "x", expr.text, 0.5, None, "low", True, (), "", None, "", 0, expr)
    one = RuleSet("x", [rule])
    closure = expr.closure
    n = len(rows)
    out = [
        ("fraudflow generated code (batch)", best_rate(lambda: one.evaluate_batch(rows), n)),
        ("fraudflow closures", best_rate(lambda: [closure(r) for r in rows], n)),
    ]
    try:
        cel = importlib.import_module("cel")
        prog = cel.compile("count_1m >= 4 && amount < 5.0")
        out.append(
            ("common-expression-language", best_rate(lambda: [prog.execute(r) for r in rows], n))
        )
    except ImportError:
        pass
    try:
        rule_engine = importlib.import_module("rule_engine")
        re_rule = rule_engine.Rule("count_1m >= 4 and amount < 5")
        out.append(("rule-engine", best_rate(lambda: [re_rule.matches(r) for r in rows], n)))
    except ImportError:
        pass
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--engines", action="store_true", help="also time candidate engines, if installed"
    )
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)  # noqa: S311 - synthetic benchmark data, not security
    with tempfile.TemporaryDirectory() as tmp:
        rules_dir = Path(tmp) / "rules"
        make_rules(rules_dir, args.rules, rng)
        t0 = time.perf_counter()
        rs = load_rules(rules_dir, feature_catalogue(WINDOWS))
        load_ms = (time.perf_counter() - t0) * 1000
    rows = make_rows(args.rows, rng)
    hits = sum(map(len, rs.evaluate_batch(rows)))
    results: dict[str, float] = {}
    for size in (1, 64, 512, 4096):
        results[f"batch_{size}"] = best_rate(batched(rs, rows, size), len(rows))
    ref_rows = rows[: max(1, len(rows) // 10)]
    results["reference_closures"] = best_rate(reference(rs, ref_rows), len(ref_rows), repeat=1)
    print(
        f"{len(rs)} rules (version {rs.version}, loaded in {load_ms:.0f} ms), {len(rows)} records, "
        f"{hits} hits ({hits / len(rows):.3f}/record)"
    )
    print(f"{'path':<28} {'records/s':>12} {'us/record':>10} {'rule evals/s':>14}")
    for name, rate in results.items():
        print(f"{name:<28} {rate:>12,.0f} {1e6 / rate:>10.2f} {rate * len(rs):>14,.0f}")
    extra: dict[str, float] = {}
    if args.engines:
        print(f"\n{'engine (1 expression)':<36} {'evals/s':>12}")
        for name, rate in engines(rows):
            extra[name] = rate
            print(f"{name:<36} {rate:>12,.0f}")
    summary = {
        "bench": "rules",
        "rules": len(rs),
        "rows": len(rows),
        "hits": hits,
        "load_ms": round(load_ms, 1),
        "records_per_s": {k: round(v) for k, v in results.items()},
        "engines_evals_per_s": {k: round(v) for k, v in extra.items()},
        "target_records_per_s": 50_000,
        "meets_target": results["batch_512"] >= 50_000,
        "cpu": cpu_model(),
        "python": platform.python_version(),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

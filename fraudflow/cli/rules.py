"""``fraudflow rules check|test|features``: what analysts run before deploying a rule change."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fraudflow.cli.common import add_retired_flags, add_settings_flags, fail, settings_from_args
from fraudflow.config.settings import ConfigError
from fraudflow.operators.features.catalogue import FeatureSpec, feature_catalogue
from fraudflow.rules.errors import RuleError
from fraudflow.rules.loader import load_rules
from fraudflow.rules.testing import load_cases, run_cases, untested

_SETTINGS = ("windows",)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "rules",
        help="check and test rule files, list the features rules can use",
        description="Work with YAML rule directories (see docs/rules.md).",
    )
    cmds = p.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = cmds.add_parser(
        "check",
        help="validate a rule directory",
        description="Check every rule file in DIR; print each problem as file:line:column: message "
        "and exit 1, or print a summary (rule count, version) and exit 0.",
    )
    check.add_argument("directory", type=Path, metavar="DIR")
    add_settings_flags(check, _SETTINGS)
    add_retired_flags(check, ("feedback",))
    check.set_defaults(func=_check)
    test = cmds.add_parser(
        "test",
        help="run the rule test cases in DIR/tests/*.yaml",
        description="Check DIR, then run its test cases (DIR/tests/*.yaml); exit 1 on any failure.",
    )
    test.add_argument("directory", type=Path, metavar="DIR")
    test.add_argument(
        "--strict",
        action="store_true",
        help="also fail when an enabled rule has no case expecting it to fire",
    )
    test.add_argument(
        "-q", "--quiet", action="store_true", help="print only failures and the summary"
    )
    add_settings_flags(test, _SETTINGS)
    add_retired_flags(test, ("feedback",))
    test.set_defaults(func=_test)
    feats = cmds.add_parser(
        "features",
        help="list the feature names rules can use",
        description="Print every feature name with its type and meaning "
        "(window features follow --windows).",
    )
    feats.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    add_settings_flags(feats, _SETTINGS)
    add_retired_flags(feats, ("feedback",))
    feats.set_defaults(func=_features)


def _catalogue(args: argparse.Namespace) -> dict[str, FeatureSpec]:
    settings = settings_from_args(args, _SETTINGS)
    return feature_catalogue(settings.features.windows)


def _check(args: argparse.Namespace) -> int:
    try:
        catalogue = _catalogue(args)
    except ConfigError as e:
        return fail(str(e))
    try:
        rs = load_rules(args.directory, catalogue)
    except RuleError as e:
        for d in e.diagnostics:
            print(d, file=sys.stderr)
        print(f"{args.directory}: {len(e.diagnostics)} problem(s)", file=sys.stderr)
        return 1
    enabled = sum(r.enabled for r in rs.rules)
    print(
        f"{args.directory}: ok: {len(rs)} rules ({enabled} enabled, {len(rs.lists)} lists), "
        f"version {rs.version}"
    )
    return 0


def _test(args: argparse.Namespace) -> int:
    try:
        catalogue = _catalogue(args)
    except ConfigError as e:
        return fail(str(e))
    try:
        rs = load_rules(args.directory, catalogue)
        cases = load_cases(args.directory, catalogue, rs)
    except RuleError as e:
        for d in e.diagnostics:
            print(d, file=sys.stderr)
        return 1
    if not cases:
        print(
            f"{args.directory}: no test cases in {args.directory / 'tests'}/*.yaml", file=sys.stderr
        )
        return 1
    results = run_cases(rs, cases)
    failed = 0
    for r in results:
        where = f"{r.case.file}:{r.case.line}"
        if r.passed:
            if not args.quiet:
                print(f"PASS {where}: {r.case.name}")
            continue
        failed += 1
        print(f"FAIL {where}: {r.case.name}")
        for p in r.problems:
            print(f"    {p}")
    missing = untested(rs, cases)
    if missing:
        print(
            f"{'error' if args.strict else 'warning'}: "
            "no case expects these enabled rules to fire: "
            f"{', '.join(missing)}",
            file=sys.stderr,
        )
    print(f"rules {rs.version}: {len(results) - failed} passed, {failed} failed")
    return 1 if failed or (args.strict and missing) else 0


def _features(args: argparse.Namespace) -> int:
    try:
        catalogue = _catalogue(args)
    except ConfigError as e:
        return fail(str(e))
    print(format_catalogue(catalogue, args.format))
    return 0


def format_catalogue(catalogue: Mapping[str, FeatureSpec], fmt: str = "text") -> str:
    """The catalogue as a text table, a Markdown table or JSON."""
    kind = {bool: "bool", int: "int", float: "float", str: "string"}
    if fmt == "json":
        return json.dumps(
            [
                {"name": s.name, "type": kind[s.type], "description": s.description}
                for s in catalogue.values()
            ],
            indent=1,
        )
    if fmt == "markdown":
        rows = ["| feature | type | meaning |", "|---|---|---|"]
        rows += [f"| `{s.name}` | {kind[s.type]} | {s.description} |" for s in catalogue.values()]
        return "\n".join(rows)
    width = max(len(n) for n in catalogue)
    return "\n".join(
        f"{s.name:<{width}}  {kind[s.type]:<6}  {s.description}" for s in catalogue.values()
    )

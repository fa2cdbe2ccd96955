"""``fraudflow config``: every setting with its variable, default and meaning."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fraudflow.cli.common import add_retired_flags, add_settings_flags, fail, warn_secret_flags
from fraudflow.config.settings import (
    FIELDS,
    RETIRED,
    ConfigError,
    describe,
    load_settings,
    masked_lines,
    resolve,
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "config",
        help="list settings, or check a settings file",
        description="Without --check: print every setting (YAML section.name, environment "
        "variable, default, meaning). With --check FILE: load FILE plus FRAUDFLOW_* variables "
        "and report errors, then print every setting with secrets masked. With --effective: "
        "resolve the settings file (--config or FRAUDFLOW_CONFIG), the FRAUDFLOW_* variables "
        "and the setting flags given here as 'run' would, and print every setting with where "
        "its value came from (default, file, env, flag), secrets masked.",
    )
    p.add_argument("--check", type=Path, metavar="FILE", help="validate this settings file")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (docs)")
    p.add_argument(
        "--effective",
        action="store_true",
        help="print the resolved settings with the source of each value, secrets masked",
    )
    add_settings_flags(p, list(FIELDS))
    add_retired_flags(p, list(RETIRED))
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.effective:
        return effective(args)
    if args.check is not None:
        try:
            s = load_settings(args.check)
        except ConfigError as exc:
            return fail(str(exc))
        print(f"{args.check}: ok")
        for line in masked_lines(s):  # secrets, secret-like librdkafka keys, DSN passwords
            print(line)
        return 0
    rows = describe()
    if args.markdown:
        print("| setting | environment variable | default | meaning |")
        print("|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(f"`{c}`" if i < 3 else c for i, c in enumerate(r)) + " |")
    else:
        for name, env, default, doc in rows:
            print(f"{name:<34} {env:<36} {default:<18} {doc}")
    return 0


def effective(args: argparse.Namespace) -> int:
    """``config --effective``: each setting, its masked value and its source."""
    warn_secret_flags(args)
    flags = {n: getattr(args, n) for n in (*FIELDS, *RETIRED) if getattr(args, n, None) is not None}
    try:
        r = resolve(args.config or args.check, flags)
    except ConfigError as exc:
        return fail(str(exc))
    for line in r.warnings:
        print(f"fraudflow: warning: {line}", file=sys.stderr)
    for line in r.effective_lines():
        print(line)
    return 0

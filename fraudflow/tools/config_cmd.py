"""``fraudflow config``: every setting with its variable, default and meaning."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fraudflow.config.settings import ConfigError, describe, load_settings, masked_lines
from fraudflow.tools.common import fail


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "config",
        help="list settings, or check a settings file",
        description="Without --check: print every setting (YAML section.name, environment "
        "variable, default, meaning). With --check FILE: load FILE plus FRAUDFLOW_* variables "
        "and report errors, then print every setting with secrets masked.",
    )
    p.add_argument("--check", type=Path, metavar="FILE", help="validate this settings file")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (docs)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
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

"""The ``fraudflow`` command: one sub-command per module in COMMANDS.

Each module listed in COMMANDS exposes ``register(subparsers)``, which adds its
sub-command and sets ``func`` (called with the parsed namespace, returning the
exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fraudflow import __version__

# module paths, in the order their commands are listed in --help
COMMANDS: tuple[str, ...] = (
    "fraudflow.cli.demo",
    "fraudflow.cli.run",
    "fraudflow.cli.produce",
    "fraudflow.cli.evaluate",
    "fraudflow.cli.backtest",
    "fraudflow.cli.bench",
    "fraudflow.cli.rules",
    "fraudflow.cli.config",
    "fraudflow.cli.console",
    "fraudflow.cli.train",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraudflow",
        description=(
            "Real-time transaction anomaly and fraud detection: one Bytewax dataflow "
            "(parse, validate, per-user features, Half-Space Trees, z-score/IQR, YAML "
            "rules, ensemble) from Kafka to alerts."
        ),
        epilog="Run 'fraudflow COMMAND --help' for a command's options. Docs: README.md.",
    )
    parser.add_argument("--version", action="version", version=f"fraudflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in COMMANDS:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

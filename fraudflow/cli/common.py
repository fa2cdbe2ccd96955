"""Shared pieces of the commands: settings flags, progress printing, summaries."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from fraudflow.config.settings import (
    FIELDS,
    RETIRED,
    ConfigError,
    Resolved,
    Settings,
    _fmt,
    resolve,
)
from fraudflow.observability.progress import progress
from fraudflow.observability.stats import RunStats
from fraudflow.sinks.retry import secret_parts

_BOOL = {name for name, (_sec, f) in FIELDS.items() if f.type in (bool, "bool")}


def add_settings_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """``--config`` plus one flag per named setting, documented with its variable and default."""
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="settings YAML (env FRAUDFLOW_CONFIG)"
    )
    for name in names:
        _sec, f = FIELDS[name]
        flag = "--" + name.replace("_", "-")
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        shown = "" if f.metadata.get("secret") else f" [default: {_fmt(default)}]"
        help_text = f"{f.metadata.get('doc', '')} (env FRAUDFLOW_{name.upper()}){shown}"
        if name in _BOOL:
            parser.add_argument(
                flag, dest=name, action="store_const", const=True, default=None, help=help_text
            )
        else:
            parser.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=help_text)


def add_retired_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """Hidden flags of retired settings (:data:`~fraudflow.config.settings.RETIRED`) this
    command had: given, they fail with the retirement message, not argparse's 'unrecognized
    arguments'."""
    for name in names:
        flag = "--" + name.replace("_", "-")
        if name == "feedback":  # the one switch among them; the others took a value
            parser.add_argument(
                flag, dest=name, action="store_const", const=True, default=None,
                help=argparse.SUPPRESS,
            )  # fmt: skip
        else:
            parser.add_argument(flag, dest=name, default=None, help=argparse.SUPPRESS)


def settings_from_args(args: argparse.Namespace, names: Sequence[str], **fixed: Any) -> Settings:
    """YAML, then environment, then these flags (and ``fixed`` values)."""
    return resolved_from_args(args, names, **fixed).settings


def resolved_from_args(args: argparse.Namespace, names: Sequence[str], **fixed: Any) -> Resolved:
    """As :func:`settings_from_args`, with where each value came from (``config
    --effective``); unknown ``FRAUDFLOW_*`` variables are warned about as by ``load_settings``."""
    given = (*names, *RETIRED)  # a retired flag given (add_retired_flags) is an error
    flags = {n: getattr(args, n) for n in given if getattr(args, n, None) is not None}
    flags.update(fixed)
    r = resolve(getattr(args, "config", None), flags)
    for line in r.warnings:
        logging.getLogger("fraudflow.config").warning("%s", line)
    return r


def warn_secret_flags(args: argparse.Namespace) -> None:
    """Warn when a secret setting came with a password on the command line, where every
    user of the machine sees it (``ps``, ``/proc/PID/cmdline``)."""
    for name, (_sec, f) in FIELDS.items():
        value = getattr(args, name, None)
        if not f.metadata.get("secret") or not isinstance(value, str):
            continue
        if name.endswith("password") or len(secret_parts(value)) > 1:
            var = f"FRAUDFLOW_{name.upper()}"
            logging.getLogger("fraudflow").warning(
                "--%s carries a password on the command line, visible to every user in ps: "
                "use %s or %s_FILE instead",
                name.replace("_", "-"),
                var,
                var,
            )


def fail(message: str, code: int = 2) -> int:
    print(f"fraudflow: error: {message}", file=sys.stderr)
    return code


def print_summary(
    stats: RunStats, outputs: dict[str, str], out: TextIO = sys.stdout, *, cluster: bool = False
) -> bool:
    """The end-of-run table; returns whether every record is accounted for.

    In a cluster a record is received by one process and may be scored by
    another, so the balance holds for the sum over processes (the metrics),
    not per process: there it is reported, not checked.
    """
    s = stats.snapshot()
    balanced: bool = s["received"] == s["valid"] + s["labels"] + s["dead_lettered"]
    ok = balanced or cluster
    if cluster:
        accounted = "per cluster: sum the fraudflow_records_* metrics over processes"
    else:
        accounted = "yes" if balanced else "NO: received != valid + labels + dead-lettered"
    t = s["tiers"]
    lines = [
        "",
        "fraudflow run summary",
        f"  received        {s['received']:>10,}",
        f"  valid (scored)  {s['valid']:>10,}",
        f"  labels stored   {s['labels']:>10,}   ({s['label_frauds']:,} fraud; labels store)",
        f"  dead-lettered   {s['dead_lettered']:>10,}   {_codes(s['dead_by_code'])}",
        f"  accounted for   {accounted}",
        f"  late records    {s['late']:>10,}   (scored, flagged, not learned from)",
        f"  decisions       approve {t['approve']:,} | review {t['review']:,} "
        f"| block {t['block']:,}",
        f"  alert rate      {(t['review'] + t['block']) / max(s['valid'], 1):.2%}",
        f"  top reasons     {', '.join(f'{c} ({n})' for c, n in s['top_reasons']) or '-'}",
        f"  versions        rules {s['rules_version']} | model {s['model_version']}",
        f"  throughput      {s['records_per_s']:,.0f} records/s over {s['elapsed_s']}s",
    ]
    if outputs:
        lines.append("  outputs")
        lines.extend(f"    {k:<14}{v}" for k, v in outputs.items())
    print("\n".join(lines), file=out, flush=True)
    return ok


def _codes(codes: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(codes.items())) if codes else ""


__all__ = [
    "ConfigError",
    "add_retired_flags",
    "add_settings_flags",
    "fail",
    "print_summary",
    "progress",
    "settings_from_args",
]

"""TimescaleDB on the test machine: find it, install it from the bundle, say which.

The bundle is ``../shared/timescaledb/install.sh`` next to the repository
(``/work/shared/timescaledb`` on CI, where the repository is ``/work/main``),
or the file named by ``FRAUDFLOW_TIMESCALEDB_INSTALL``. ``make test`` runs
``python -m tests.support.timescale`` first: it installs the extension (as
root, idempotent) when the bundle is there and the server does not have it
usable yet, then prints the version. The TimescaleDB tests use
:func:`require_timescale`: they fail when the bundle is there but the
extension is not usable, and are skipped, loudly, only on a machine with
neither (a laptop without the bundle).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from fraudflow.config.settings import Secret
from tests.support.system import PG_DSN

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Store:
    """A migrated database in one layout (``partitioned`` or ``timescale``)."""

    dsn: Secret
    layout: str


def bundle() -> Path | None:
    """The bundle's ``install.sh``, if this machine has it."""
    override = os.environ.get("FRAUDFLOW_TIMESCALEDB_INSTALL")
    path = Path(override) if override else REPO.parent / "shared" / "timescaledb" / "install.sh"
    return path if path.is_file() else None


@dataclass(frozen=True)
class ServerTimescale:
    """What the shared server offers: available version, and whether it is preloaded."""

    version: str | None
    preloaded: bool

    @property
    def usable(self) -> bool:
        return self.version is not None and self.preloaded


def probe(dsn: str = PG_DSN) -> ServerTimescale:
    with psycopg.connect(dsn, connect_timeout=5) as c:
        row = c.execute(
            "select default_version from pg_available_extensions where name = 'timescaledb'"
        ).fetchone()
        pre = c.execute("select current_setting('shared_preload_libraries')").fetchone()
    preload = str(pre[0]) if pre else ""
    return ServerTimescale(
        None if row is None else str(row[0]),
        any(p.strip().startswith("timescaledb") for p in preload.split(",")),
    )


def ensure(dsn: str = PG_DSN) -> ServerTimescale:
    """Install from the bundle when it is there and the server lacks a usable extension."""
    state = probe(dsn)
    if state.usable:
        return state
    script = bundle()
    if script is None:
        return state
    res = subprocess.run([str(script)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(
            f"TimescaleDB install ({script}) failed with {res.returncode}: "
            f"{(res.stderr or res.stdout).strip()[-2000:]}"
        )
    state = probe(dsn)
    if not state.usable:
        raise RuntimeError(f"TimescaleDB install ({script}) ran but the server still has {state}")
    return state


def require_timescale(dsn: str = PG_DSN) -> str:
    """The usable TimescaleDB version; fails if the bundle exists but it is not usable."""
    state = ensure(dsn)
    if state.usable:
        assert state.version is not None
        return state.version
    where = REPO.parent / "shared" / "timescaledb" / "install.sh"
    msg = (
        f"TIMESCALEDB TESTS NOT RUN: the server at {dsn} has no usable timescaledb "
        f"(available: {state.version}, preloaded: {state.preloaded}) and there is no bundle "
        f"at {where} (or FRAUDFLOW_TIMESCALEDB_INSTALL). CI has the bundle; they run there."
    )
    print(f"\n*** {msg}", file=sys.stderr)
    pytest.skip(msg)


def main() -> int:
    try:
        state = ensure()
    except (RuntimeError, OSError, psycopg.Error) as exc:
        print(f"TimescaleDB: {exc}", file=sys.stderr)
        return 1
    if state.usable:
        print(f"TimescaleDB {state.version}: available and preloaded on {PG_DSN}")
    else:
        print(
            f"TimescaleDB: NOT usable on {PG_DSN} (available: {state.version}, preloaded:"
            f" {state.preloaded}) and no bundle at {REPO.parent / 'shared' / 'timescaledb'}:"
            " the TimescaleDB tests will be skipped"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

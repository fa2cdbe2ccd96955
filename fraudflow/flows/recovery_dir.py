"""Create the Bytewax recovery partitions so that an interrupted first start never
leaves a directory that every later start refuses.

Bytewax's ``init_db_dir`` opens ``part-N.sqlite3`` in place and then writes its
schema: a SIGKILL or a full disk in between leaves an empty or half-made file,
and every later start fails with ``NoPartitionsError``. Here the partitions are
built in a hidden temporary directory inside the recovery directory (same file
system, so the rename is atomic; the recovery directory itself may be a mount
point that cannot be renamed) and renamed into place. A store that holds no
snapshot but is not a complete set of valid partitions is what an interrupted
first start leaves: it is rebuilt with a log line. A store that holds any
execution, commit or snapshot row is never touched: a damaged one is an error
for a person to look at, as is one that holds the snapshot of a retired step (the
in-flow feedback step, issue 17: docs/recovery.md).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bytewax.recovery import init_db_dir

from fraudflow.config.settings import ConfigError

log = logging.getLogger(__name__)

PART_GLOB = "part-*.sqlite3"
_TMP_PREFIX = ".fraudflow-init-"
_LOCK = ".fraudflow-init.lock"
_SIDECARS = ("-journal", "-wal", "-shm")
# stateful steps of earlier flows whose state no step reads any more (step_id suffixes)
RETIRED_STEPS = (".feedback",)


class RecoveryDirError(ConfigError):
    """The recovery directory holds snapshots but cannot be used as it is."""


@dataclass(frozen=True)
class PartState:
    """What one ``part-N.sqlite3`` holds: ``index``/``count`` from its ``parts`` row
    (``None`` when the file is empty, not a database or has no schema) and whether it
    holds any execution, commit or snapshot (real recovery data)."""

    index: int | None
    count: int | None
    has_data: bool
    retired: tuple[str, ...] = ()  # step ids of RETIRED_STEPS with a snapshot here


def inspect_part(path: Path) -> PartState:
    """Read one partition file without writing to it."""
    if path.stat().st_size == 0:
        return PartState(None, None, has_data=False)
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return PartState(None, None, has_data=False)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        has_data = any(
            con.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() is not None  # noqa: S608
            for t in ("exs", "commits", "snaps", "fronts")
            if t in tables
        )
        retired: tuple[str, ...] = ()
        if "snaps" in tables:
            retired = tuple(
                r[0]
                for suffix in RETIRED_STEPS
                for r in con.execute(
                    "SELECT DISTINCT step_id FROM snaps WHERE step_id LIKE ?", ("%" + suffix,)
                )
            )
        if "parts" not in tables:
            return PartState(None, None, has_data, retired)
        row = con.execute("SELECT part_index, part_count FROM parts LIMIT 1").fetchone()
        if row is None:
            return PartState(None, None, has_data, retired)
        return PartState(int(row[0]), int(row[1]), has_data, retired)
    except sqlite3.Error:  # not a database, or truncated mid-write
        return PartState(None, None, has_data=False)
    finally:
        con.close()


def _complete(states: dict[Path, PartState]) -> bool:
    """Every file valid and together exactly the partitions ``0..count-1``."""
    counts = {s.count for s in states.values()}
    indexes = [s.index for s in states.values() if s.index is not None]
    if not states or len(indexes) != len(states) or len(counts) != 1:
        return False
    (count,) = counts
    return count is not None and sorted(indexes) == list(range(count))


def _remove_part(path: Path) -> None:
    for p in (path, *(path.with_name(path.name + s) for s in _SIDECARS)):
        p.unlink(missing_ok=True)


def _build(directory: Path, partitions: int) -> None:
    """Build ``partitions`` fresh partitions in a temporary directory, then rename
    them into ``directory`` (one rename per partition; each is atomic)."""
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=directory))
    try:
        init_db_dir(tmp, partitions)
        for f in sorted(tmp.glob(PART_GLOB)):
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            f.rename(directory / f.name)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare_recovery_dir(directory: Path, partitions: int = 1) -> None:
    """Make ``directory`` a usable recovery store: create it on first start, reuse a
    complete one, rebuild one an interrupted first start left (with a log line), and
    refuse (``RecoveryDirError``) to touch one that holds recovery data but is damaged."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / _LOCK, "a+b") as lock:  # processes sharing the directory
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in directory.glob(_TMP_PREFIX + "*"):  # a build that was killed
            shutil.rmtree(stale, ignore_errors=True)
        states = {p: inspect_part(p) for p in sorted(directory.glob(PART_GLOB))}
        retired = sorted({step for s in states.values() for step in s.retired})
        if retired:
            raise RecoveryDirError(
                f"recovery.recovery_dir: {directory} holds the state of the retired feedback "
                f"step ({', '.join(retired)}): a flow run with feedback on; discard it (start "
                "with a new, empty directory; see docs/recovery.md)"
            )
        if _complete(states):
            return
        if not states:
            _build(directory, partitions)
            return
        bad = sorted(p.name for p, s in states.items() if s.index is None)
        if any(s.has_data for s in states.values()):
            raise RecoveryDirError(
                f"recovery.recovery_dir: {directory} holds snapshots but its partitions are "
                f"incomplete or damaged (unreadable: {', '.join(bad) or 'none'}; "
                f"files: {len(states)}); not rebuilding it: restore it from a backup or "
                "start with a new directory (see docs/recovery.md)"
            )
        log.warning(
            "recovery directory %s was left half-made by an interrupted first start "
            "(%d partition files, unusable: %s) and holds no snapshot: rebuilding it",
            directory,
            len(states),
            ", ".join(bad) or "set incomplete",
        )
        for p in states:
            _remove_part(p)
        _build(directory, partitions)

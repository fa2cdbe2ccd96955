"""Issue 13 item 3: an interrupted first start never leaves a recovery directory that
every later start refuses, and a store holding snapshots is never wiped."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import input as bw_input
from bytewax.operators import output as bw_output
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from fraudflow.flows.recovery_dir import RecoveryDirError, inspect_part, prepare_recovery_dir


def runs_on(d: Path) -> list[int]:
    """Bytewax accepts ``d`` as a recovery store and runs a flow on it."""
    out: list[int] = []
    flow = Dataflow("recovery_dir_check")
    s = bw_input("inp", flow, TestingSource([1, 2, 3]))
    bw_output("out", s, TestingSink(out))
    run_main(flow, recovery_config=RecoveryConfig(str(d)))
    return out


def empty_file(d: Path) -> None:  # SIGKILL after sqlite created the file
    (d / "part-0.sqlite3").write_bytes(b"")


def schema_without_parts_row(d: Path) -> None:  # killed between schema and the parts row
    con = sqlite3.connect(d / "part-0.sqlite3")
    con.execute("CREATE TABLE parts (part_index INTEGER, part_count INTEGER)")
    con.commit()
    con.close()


def truncated(d: Path) -> None:  # full disk mid-write
    init_db_dir(d, 1)
    p = d / "part-0.sqlite3"
    p.write_bytes(p.read_bytes()[:100])


def one_of_two(d: Path) -> None:  # killed between two partitions
    init_db_dir(d, 2)
    (d / "part-1.sqlite3").unlink()


def killed_build(d: Path) -> None:  # our own temporary build, killed
    t = d / ".fraudflow-init-abc"
    t.mkdir()
    (t / "part-0.sqlite3").write_bytes(b"")


@pytest.mark.parametrize(
    "half_made", [empty_file, schema_without_parts_row, truncated, one_of_two, killed_build]
)
def test_a_half_made_store_is_rebuilt_with_a_log_line(
    half_made: Callable[[Path], None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / "rec"
    d.mkdir()
    half_made(d)
    with caplog.at_level(logging.WARNING):
        prepare_recovery_dir(d, 1)
    if half_made is not killed_build:
        assert "half-made" in caplog.text
    assert [p.name for p in d.glob("part-*.sqlite3")] == ["part-0.sqlite3"]
    assert not list(d.glob(".fraudflow-init-*"))
    assert runs_on(d) == [1, 2, 3]


def test_first_start_creates_the_directory_and_a_second_start_reuses_it(tmp_path: Path) -> None:
    d = tmp_path / "a" / "rec"
    prepare_recovery_dir(d, 1)
    assert runs_on(d) == [1, 2, 3]
    before = (d / "part-0.sqlite3").read_bytes()
    assert inspect_part(d / "part-0.sqlite3").has_data
    prepare_recovery_dir(d, 1)
    assert (d / "part-0.sqlite3").read_bytes() == before


def test_a_damaged_store_with_snapshots_is_refused_not_wiped(tmp_path: Path) -> None:
    d = tmp_path / "rec"
    d.mkdir()
    init_db_dir(d, 2)
    assert runs_on(d) == [1, 2, 3]
    (d / "part-1.sqlite3").write_bytes(b"")  # damaged after real use
    kept = (d / "part-0.sqlite3").read_bytes()
    with pytest.raises(RecoveryDirError, match=r"recovery\.recovery_dir: .* holds snapshots"):
        prepare_recovery_dir(d, 1)
    assert (d / "part-0.sqlite3").read_bytes() == kept


def with_snapshot(d: Path, step_id: str) -> None:
    init_db_dir(d, 1)
    con = sqlite3.connect(d / "part-0.sqlite3")
    con.execute(
        "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, 'k', 1, x'00')",
        (step_id,),
    )
    con.commit()
    con.close()


def test_a_store_with_the_retired_feedback_step_is_refused_and_kept(tmp_path: Path) -> None:
    """A flow run with feedback on (issue 17) left its step's state: refused, not touched."""
    with_snapshot(tmp_path, "fraudflow.feedback")
    before = (tmp_path / "part-0.sqlite3").read_bytes()
    with pytest.raises(RecoveryDirError, match=r"retired feedback step \(fraudflow\.feedback\)"):
        prepare_recovery_dir(tmp_path, 1)
    assert (tmp_path / "part-0.sqlite3").read_bytes() == before


def test_a_store_of_a_normal_flow_is_reused(tmp_path: Path) -> None:
    with_snapshot(tmp_path, "fraudflow.score")
    before = (tmp_path / "part-0.sqlite3").read_bytes()
    prepare_recovery_dir(tmp_path, 1)
    assert (tmp_path / "part-0.sqlite3").read_bytes() == before
    assert inspect_part(tmp_path / "part-0.sqlite3").retired == ()

"""Issue 18 item 6: `demo --out-dir` never deletes files it did not write."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudflow.cli import main as cli_main
from fraudflow.cli.demo import MARKER, prepare_out_dir


def test_a_non_empty_directory_it_did_not_make_is_refused_and_kept(tmp_path: Path) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("the user's file")
    message = prepare_out_dir(tmp_path)
    assert message is not None
    assert str(tmp_path) in message
    assert "not empty" in message
    assert mine.read_text() == "the user's file"
    assert not (tmp_path / MARKER).exists()


def test_the_command_exits_2_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.csv").write_text("a,b\n")
    code = cli_main(["demo", "--out-dir", str(tmp_path), "--quiet"])
    assert code == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.csv").read_text() == "a,b\n"
    assert not (tmp_path / "broker.log").exists()


def test_a_new_or_empty_directory_is_used(tmp_path: Path) -> None:
    new = tmp_path / "a" / "b"
    assert prepare_out_dir(new) is None
    assert (new / MARKER).exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_out_dir(empty) is None


def test_a_previous_demo_directory_has_only_its_outputs_replaced(tmp_path: Path) -> None:
    assert prepare_out_dir(tmp_path) is None
    (tmp_path / "alerts.jsonl").write_text("old\n")
    (tmp_path / "analysis.ipynb").write_text("the user's notebook")
    assert prepare_out_dir(tmp_path) is None
    assert not (tmp_path / "alerts.jsonl").exists()
    assert (tmp_path / "analysis.ipynb").read_text() == "the user's notebook"


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "out"
    f.write_text("x")
    assert prepare_out_dir(f) is not None
    assert f.read_text() == "x"

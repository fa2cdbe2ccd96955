"""The import contract (pyproject.toml, [tool.importlinter]): layers and independent stages.

cli -> backtest -> flows -> stages (operators, rules, sinks, connectors,
generator) -> observability -> state -> config -> records; nothing imports
upwards, so there is no cycle between the sub-packages.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_import_contract_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 broken" in out, out

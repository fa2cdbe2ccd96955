"""Fixtures for the rule engine tests: the default catalogue and a rule-directory writer."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fraudflow.operators.features.catalogue import FeatureSpec, feature_catalogue
from fraudflow.rules.testing import base_record

WINDOWS = (timedelta(minutes=1), timedelta(hours=1), timedelta(hours=24))
CATALOGUE = feature_catalogue(WINDOWS)

WriteRules = Callable[..., Path]


@pytest.fixture
def catalogue() -> dict[str, FeatureSpec]:
    return dict(CATALOGUE)


@pytest.fixture
def record() -> dict[str, Any]:
    """A complete feature record of neutral values."""
    return base_record(CATALOGUE)


@pytest.fixture
def write_rules(tmp_path: Path) -> WriteRules:
    """write_rules({"a.yaml": text, "lists/x.txt": text}) -> the rule directory (dedented texts)."""
    root = tmp_path / "rules"
    root.mkdir()

    def write(files: dict[str, str]) -> Path:
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return root

    return write

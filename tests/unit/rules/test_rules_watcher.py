"""Live reload: at most once per interval, on content change only, last good set kept."""

from __future__ import annotations

import logging
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from fraudflow.operators.catalogue import FeatureSpec
from fraudflow.rules import RuleError, RuleWatcher
from tests.unit.rules.conftest import WriteRules

RULE = (
    "rules:\n  - id: big\n    description: big amount\n    when: amount > {limit}\n    score: 0.5\n"
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def watcher(directory: Path, catalogue: dict[str, FeatureSpec], clock: Clock) -> RuleWatcher:
    return RuleWatcher(directory, catalogue, timedelta(seconds=5), clock=clock, background=False)


def test_reloads_on_change_at_most_every_interval(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec], clock: Clock
) -> None:
    d = write_rules({"a.yaml": RULE.format(limit=100)})
    w = watcher(d, catalogue, clock)
    first = w.current()
    (d / "a.yaml").write_text(RULE.format(limit=200))
    clock.now += 4.9
    assert w.current() is first  # not yet time to look
    clock.now += 0.2
    second = w.current()
    assert second.version != first.version
    assert second.rules[0].when == "amount > 200"
    assert w.reloads == 1
    clock.now += 60
    assert w.current() is second  # unchanged content: same object, no reload


def test_mtime_alone_does_not_reload(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec], clock: Clock
) -> None:
    d = write_rules({"a.yaml": RULE.format(limit=100)})
    w = watcher(d, catalogue, clock)
    first = w.current()
    os.utime(d / "a.yaml", (1, 1))
    (d / "a.yaml").write_text(RULE.format(limit=100))
    clock.now += 10
    assert w.current() is first
    assert w.reloads == 0


def test_invalid_change_keeps_last_good_and_logs_once(
    write_rules: WriteRules,
    catalogue: dict[str, FeatureSpec],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = write_rules({"a.yaml": RULE.format(limit=100)})
    w = watcher(d, catalogue, clock)
    good = w.current()
    (d / "a.yaml").write_text(RULE.format(limit="'x'"))
    with caplog.at_level(logging.ERROR, logger="fraudflow.rules.watcher"):
        for _ in range(5):
            clock.now += 10
            assert w.current() is good
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert (
        f"{d / 'a.yaml'}:4:11: when: '>' needs numbers on both sides, got a string"
        in errors[0].getMessage()
    )
    assert good.version in errors[0].getMessage()
    assert w.failed_changes == 1
    assert [str(e) for e in w.last_errors] == [
        f"{d / 'a.yaml'}:4:11: when: '>' needs numbers on both sides, got a string"
    ]
    # a second, different bad change is logged again
    (d / "a.yaml").write_text(RULE.format(limit="amout"))
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="fraudflow.rules.watcher"):
        clock.now += 10
        assert w.current() is good
    assert len(caplog.records) == 1
    # fixed: picked up
    (d / "a.yaml").write_text(RULE.format(limit=300))
    clock.now += 10
    fixed = w.current()
    assert fixed.rules[0].when == "amount > 300"
    assert w.last_errors == []
    # back to the original content: the original version again
    (d / "a.yaml").write_text(RULE.format(limit=100))
    clock.now += 10
    assert w.current().version == good.version


def test_list_file_change_reloads(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec], clock: Clock
) -> None:
    d = write_rules(
        {
            "a.yaml": "lists: {bad: {file: lists/bad.txt}}\n"
            "rules: [{id: b, description: d, when: 'device_id in bad', tier: block}]\n",
            "lists/bad.txt": "d1\n",
        }
    )
    w = watcher(d, catalogue, clock)
    assert w.current().lists["bad"].values == frozenset({"d1"})
    (d / "lists/bad.txt").write_text("d1\nd2\n")
    clock.now += 10
    assert w.current().lists["bad"].values == frozenset({"d1", "d2"})
    (d / "lists/bad.txt").unlink()
    clock.now += 10
    assert w.current().lists["bad"].values == frozenset({"d1", "d2"})
    assert "is missing or unreadable" in str(w.last_errors[0])
    (d / "lists/bad.txt").write_text("d3\n")
    clock.now += 10
    assert w.current().lists["bad"].values == frozenset({"d3"})


def test_new_and_removed_rule_files(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec], clock: Clock
) -> None:
    d = write_rules({"a.yaml": RULE.format(limit=100)})
    w = watcher(d, catalogue, clock)
    (d / "b.yaml").write_text(RULE.replace("id: big", "id: big2").format(limit=5))
    clock.now += 10
    assert w.current().rule_ids == ("big", "big2")
    (d / "a.yaml").unlink()
    clock.now += 10
    assert w.current().rule_ids == ("big2",)


def test_directory_removed_keeps_rules(
    write_rules: WriteRules,
    catalogue: dict[str, FeatureSpec],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = write_rules({"a.yaml": RULE.format(limit=100)})
    w = watcher(d, catalogue, clock)
    good = w.current()
    shutil.rmtree(d)
    with caplog.at_level(logging.ERROR, logger="fraudflow.rules.watcher"):
        for _ in range(3):
            clock.now += 10
            assert w.current() is good
    assert len(caplog.records) == 1
    assert "does not exist" in caplog.records[0].getMessage()


def test_initial_load_must_succeed(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec], clock: Clock
) -> None:
    d = write_rules({"a.yaml": RULE.format(limit="nope")})
    with pytest.raises(RuleError) as info:
        watcher(d, catalogue, clock)
    assert "unknown feature or list 'nope'" in str(info.value)

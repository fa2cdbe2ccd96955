"""Issue 13 item 7: the rule directory yields only regular files inside it (no symlink
out, no FIFO or device, nothing that blocks), and a large rule set reloads in the
background while scoring goes on."""

from __future__ import annotations

import os
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fraudflow.operators.catalogue import FeatureSpec
from fraudflow.rules import RuleWatcher
from fraudflow.rules.loader import LoadResult, load_directory
from tests.unit.rules.conftest import WriteRules

DEFAULT_RULES = Path(__file__).resolve().parents[3] / "fraudflow" / "rules" / "default"
RULE = """
rules:
  - id: r1
    description: a test rule
    when: amount > 100 {extra}
    score: 0.5
    tier: review
    severity: low
    owner: tests
"""


def load_bounded(d: Path, catalogue: dict[str, FeatureSpec], limit_s: float = 60) -> LoadResult:
    """``load_directory`` in a thread, waited for at most ``limit_s``: a hang fails the
    test instead of hanging it."""
    out: list[LoadResult] = []
    t = threading.Thread(target=lambda: out.append(load_directory(d, catalogue)), daemon=True)
    t.start()
    t.join(limit_s)
    assert not t.is_alive(), "loading the rule directory blocked"
    return out[0]


def messages(result: LoadResult) -> list[str]:
    return [f"{Path(d.file).name}:{d.line}: {d.message}" for d in result.diagnostics]


def test_a_rule_file_symlinked_outside_is_refused(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec], tmp_path: Path
) -> None:
    d = write_rules({"a.yaml": RULE.format(extra="")})
    outside = tmp_path / "outside.yaml"
    outside.write_text(RULE.format(extra="").replace("r1", "stolen"))
    (d / "b.yaml").symlink_to(outside)
    result = load_bounded(d, catalogue)
    assert result.ruleset is None
    assert messages(result) == ["b.yaml:0: a symlink to a file outside the rule directory"]


def test_a_list_file_symlinked_outside_is_refused(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec], tmp_path: Path
) -> None:
    d = write_rules({"a.yaml": "lists:\n  bad: {type: string, file: lists/x.txt}\n"})
    (tmp_path / "secret.txt").write_text("x\n")
    (d / "lists").mkdir()
    (d / "lists" / "x.txt").symlink_to(tmp_path / "secret.txt")
    result = load_bounded(d, catalogue)
    assert result.ruleset is None
    assert len(messages(result)) == 1
    assert "outside the rule directory" in messages(result)[0]


def test_symlinks_inside_the_directory_work_like_a_kubernetes_configmap(
    catalogue: dict[str, FeatureSpec], tmp_path: Path
) -> None:
    """A ConfigMap volume: DIR/a.yaml -> ..data/a.yaml, ..data -> ..2026_11_30/."""
    d = tmp_path / "rules"
    (d / "..2026_11_30").mkdir(parents=True)
    (d / "..2026_11_30" / "a.yaml").write_text(RULE.format(extra=""))
    (d / "..data").symlink_to("..2026_11_30")
    (d / "a.yaml").symlink_to("..data/a.yaml")
    result = load_bounded(d, catalogue)
    assert result.ruleset is not None, messages(result)
    assert result.ruleset.rule_ids == ("r1",)


@pytest.mark.parametrize("where", ["rule file", "list file"])
def test_a_fifo_is_refused_without_blocking(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec], where: str
) -> None:
    if where == "rule file":
        d = write_rules({"a.yaml": RULE.format(extra="")})
        os.mkfifo(d / "b.yaml")
        expected = "b.yaml:0: not a regular file (a FIFO, device or socket)"
    else:
        d = write_rules({"a.yaml": "lists:\n  bad: {type: string, file: x.txt}\n"})
        os.mkfifo(d / "x.txt")
        expected = "a.yaml:2: list file 'x.txt' is not a regular file (a FIFO, device or socket)"
    result = load_bounded(d, catalogue)
    assert result.ruleset is None
    assert messages(result) == [expected]


def test_a_device_is_refused(write_rules: WriteRules, catalogue: dict[str, FeatureSpec]) -> None:
    d = write_rules({"a.yaml": "lists:\n  bad: {type: string, file: x.txt}\n"})
    (d / "x.txt").symlink_to("/dev/zero")  # a device, and outside too
    result = load_bounded(d, catalogue)
    assert result.ruleset is None
    assert "outside the rule directory" in messages(result)[0]


def test_a_fifo_added_under_a_running_watcher_keeps_the_last_good_rules(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec]
) -> None:
    d = write_rules({"a.yaml": RULE.format(extra="")})
    w = RuleWatcher(d, catalogue, timedelta(milliseconds=20))
    try:
        good = w.current()
        os.mkfifo(d / "b.yaml")
        deadline = time.monotonic() + 60
        while w.failed_changes == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert w.failed_changes == 1
        assert "not a regular file" in str(w.last_errors[0])
        assert w.current() is good
    finally:
        w.close()


def big_rule_file(i: int, values: int) -> str:
    """A valid rule file of about ``values * 12`` bytes: one rule and an inline list."""
    items = ", ".join(f"m{i:03d}-{j:06d}" for j in range(values))
    return (
        f"lists:\n  big_{i}: [{items}]\n"
        f"rules:\n  - id: big_{i}\n    description: big\n"
        f"    when: merchant_id in big_{i}\n    score: 0.5\n"
        f"    tier: review\n    severity: low\n    owner: tests\n"
    )


def test_a_large_rule_set_reloads_while_scoring_goes_on(
    catalogue: dict[str, FeatureSpec], record: dict[str, Any], tmp_path: Path
) -> None:
    """The flow's processing path is ``watcher.current()`` then ``evaluate_batch``: it
    keeps completing batches while the background thread loads a large directory."""
    d = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, d)
    for i in range(8):
        (d / f"big_{i:03d}.yaml").write_text(
            big_rule_file(i, 4_000)
        )  # 50 KB each, about 4 s to load
    w = RuleWatcher(d, catalogue, timedelta(milliseconds=50))
    try:
        first = w.current()
        batch = [dict(record, merchant_id="m001-000007", amount=float(k)) for k in range(200)]
        (d / "big_000.yaml").write_text(big_rule_file(0, 4_001))  # a change: reload
        during = 0
        deadline = time.monotonic() + 300
        while w.reloads == 0 and time.monotonic() < deadline:
            loading = w.loading
            hits = w.current().evaluate_batch(batch)
            assert len(hits) == len(batch)
            during += loading and w.loading  # a whole batch scored inside the load
        assert w.reloads == 1, "the large rule set did not reload"
        assert w.current().version != first.version
        assert during >= 10, f"only {during} batches were scored while the rules loaded"
    finally:
        w.close()

"""Scoring while a large rule set reloads: the longest gap between two scored batches,
with the load on the processing path (``background=False``, the old behaviour) and in
the watcher's background thread. Run from the repository root:
``PYTHONPATH=. python benchmarks/bench_rules_reload.py``."""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from fraudflow.rules import RuleWatcher
from fraudflow.rules.testing import base_record
from tests.unit.rules.conftest import CATALOGUE
from tests.unit.rules.test_rules_files_safety import DEFAULT_RULES, big_rule_file

FILES, VALUES = 8, 4000  # 8 files of ~50 KB: ~4 s to load on 2 shared cores


def main() -> None:
    batch = [dict(base_record(CATALOGUE), amount=float(k)) for k in range(200)]
    for background in (False, True):
        d = Path(tempfile.mkdtemp()) / "rules"
        shutil.copytree(DEFAULT_RULES, d)
        for i in range(FILES):
            (d / f"big_{i:03d}.yaml").write_text(big_rule_file(i, VALUES))
        time.sleep(2.1)  # past the watcher's "recently written" window
        w = RuleWatcher(d, dict(CATALOGUE), timedelta(milliseconds=50), background=background)
        (d / "big_000.yaml").write_text(big_rule_file(0, VALUES + 1))
        last, gap, n = time.monotonic(), 0.0, 0
        while w.reloads == 0:
            w.current().evaluate_batch(batch)
            now = time.monotonic()
            gap, last, n = max(gap, now - last), now, n + 1
        w.close()
        shutil.rmtree(d.parent)
        print(f"background={background}: longest gap {gap:.2f} s, {n} batches until reloaded")


if __name__ == "__main__":
    main()

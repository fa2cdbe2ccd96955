"""Live reload: the flow asks for the current rule set in its batch path.

``RuleWatcher.current()`` is cheap: at most once per ``interval`` (by the
injected clock) it hashes the rule files and the list files they reference,
and reloads only when that hash changed. An invalid change is logged once,
with every problem at ``file:line:column``, and the last good rule set stays
active, so a typo never stops the flow or drops its state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path

from fraudflow.operators.catalogue import FeatureSpec
from fraudflow.rules.errors import Diagnostic, RuleError
from fraudflow.rules.loader import fingerprint, load_directory
from fraudflow.rules.ruleset import RuleSet

log = logging.getLogger(__name__)


class RuleWatcher:
    """The active rule set of ``directory``, reloaded when its content changes."""

    def __init__(
        self,
        directory: Path,
        catalogue: Mapping[str, FeatureSpec],
        interval: timedelta,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.catalogue = catalogue
        self.interval = interval.total_seconds()
        self.clock = clock
        self.reloads = 0
        self.failed_changes = 0
        self.last_errors: list[Diagnostic] = []
        result = load_directory(self.directory, catalogue)
        if result.ruleset is None:
            raise RuleError(result.diagnostics)
        self._rules: RuleSet = result.ruleset
        self._seen = result.version
        self._list_files = result.list_files
        self._next = clock() + self.interval
        self._lock = threading.Lock()

    def current(self) -> RuleSet:
        """The active rule set; re-checks the files at most once per interval."""
        if self.clock() < self._next:
            return self._rules
        if self._lock.acquire(
            blocking=False
        ):  # another worker thread is checking: use what we have
            try:
                self._check()
            finally:
                self._lock.release()
        return self._rules

    def _check(self) -> None:
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.interval
        try:
            seen = fingerprint(self.directory, self._list_files)
        except OSError as e:  # the directory went away: keep the rules, say so once
            seen = f"unreadable:{e}"
        if seen == self._seen:
            return
        result = load_directory(self.directory, self.catalogue)
        self._seen, self._list_files = result.version, result.list_files
        if result.ruleset is None:
            self.failed_changes += 1
            self.last_errors = result.diagnostics
            log.error(
                "rules in %s changed but are invalid (%d problems); keeping version %s:\n%s",
                self.directory,
                len(result.diagnostics),
                self._rules.version,
                "\n".join(str(d) for d in result.diagnostics),
            )
            return
        old = self._rules.version
        self._rules = result.ruleset
        self.last_errors = []
        if result.version != old:
            self.reloads += 1
            log.info(
                "rules reloaded from %s: version %s -> %s (%d rules)",
                self.directory,
                old,
                result.version,
                len(result.ruleset),
            )

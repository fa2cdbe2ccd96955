"""Live reload, off the processing path: the flow only reads the current rule set.

``RuleWatcher.current()`` returns the active rule set, an attribute read that
never touches the disk. A background thread looks at the directory every
``interval``: a cheap ``stat`` of the rule files and the list files they
reference, and only when that changed a full load (read, parse, check) of the
directory, after which the new compiled rule set replaces the old one in one
assignment. The load runs under the loader's size and time limits and reads
only regular files inside the directory (``loader.read_entry``), so neither a
large rule set nor a FIFO stalls scoring. An invalid change is logged once, with
every problem at ``file:line:column``, and the last good rule set stays active,
so a typo never stops the flow or drops its state.

With ``background=False`` (tests with an injected clock) ``current()`` does the
same check itself, at most once per ``interval`` of that clock.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path

from fraudflow.operators.catalogue import FeatureSpec
from fraudflow.rules.errors import Diagnostic, RuleError
from fraudflow.rules.loader import load_directory, stat_signature
from fraudflow.rules.ruleset import RuleSet

log = logging.getLogger(__name__)


RECENT_NS = 2_000_000_000


def _recent(signature: tuple[object, ...]) -> bool:
    """A file changed in the last two seconds: its mtime may not tell a second write
    of the same size apart (coarse file-system clocks), so the content is compared."""
    since = time.time_ns() - RECENT_NS
    return any(isinstance(e, tuple) and len(e) == 5 and e[3] > since for e in signature)


class RuleWatcher:
    """The active rule set of ``directory``, reloaded when its content changes."""

    def __init__(
        self,
        directory: Path,
        catalogue: Mapping[str, FeatureSpec],
        interval: timedelta,
        clock: Callable[[], float] = time.monotonic,
        *,
        background: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.catalogue = catalogue
        self.interval = interval.total_seconds()
        self.clock = clock
        self.reloads = 0
        self.failed_changes = 0
        self.checks = 0
        self.loading = False  # a full load is running (tests and metrics can see it)
        self.last_errors: list[Diagnostic] = []
        self._signature = stat_signature(self.directory, ())
        result = load_directory(self.directory, catalogue)
        if result.ruleset is None:
            raise RuleError(result.diagnostics)
        self._rules: RuleSet = result.ruleset
        self._seen = result.version
        self._list_files = result.list_files
        self._signature = stat_signature(self.directory, self._list_files)
        self._next = clock() + self.interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(  # holds a weak reference: ends with the watcher
                target=_loop,
                args=(weakref.ref(self), self._stop, self.interval),
                name=f"rules-watcher:{self.directory.name}",
                daemon=True,
            )
            self._thread.start()

    def current(self) -> RuleSet:
        """The active rule set. In the background mode this never reads a file."""
        if self._thread is None and self.clock() >= self._next and self._lock.acquire(False):
            try:  # another worker thread is checking: use what we have
                self._next = self.clock() + self.interval
                self._check()
            finally:
                self._lock.release()
        return self._rules

    def close(self) -> None:
        """Stop the background thread (it is a daemon: a process may also just exit)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)  # absent when the first load failed
        if stop is not None:
            stop.set()

    def _check(self) -> None:
        self.checks += 1
        signature = stat_signature(self.directory, self._list_files)
        if signature == self._signature and not _recent(signature):
            return
        self.loading = True
        try:
            result = load_directory(self.directory, self.catalogue)
        finally:
            self.loading = False
        self._signature = stat_signature(self.directory, result.list_files)
        if result.version == self._seen:
            return  # touched, same content (or the same invalid change, reported once)
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
        self._rules = result.ruleset  # one assignment: readers see the old or the new set
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


def _loop(ref: weakref.ReferenceType[RuleWatcher], stop: threading.Event, interval: float) -> None:
    """The background check, until ``close()`` or until the watcher is garbage collected
    (a flow that ended drops it)."""
    while not stop.wait(interval):
        w = ref()
        if w is None:
            return
        try:
            w._check()  # the watcher's own thread
        except Exception:  # keep watching: the last good rules stay active
            log.exception("checking the rules in %s failed", w.directory)
        del w

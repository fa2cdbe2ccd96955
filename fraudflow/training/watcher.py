"""Hot swap: every process polls the registry and swaps its model in one assignment.

``ModelWatcher.current()`` is an attribute read: the flow's decide step calls
it once per batch, so a whole batch is scored by one model and a swap happens
at a batch boundary, on every worker of every process (each process has its
own watcher; none is a single key of the cluster). A background thread asks
the registry every ``interval`` which version should serve
(:func:`~fraudflow.training.registry.serving_version`) and, when it changed,
loads it (LightGBM text and JSON: no code executed) and assigns it. A failed
poll or load is logged and the current model stays.
"""

from __future__ import annotations

import logging
import threading
import weakref
from datetime import timedelta
from typing import Any

import psycopg

from fraudflow.config.settings import Secret
from fraudflow.training import registry
from fraudflow.training.model import TrainedModel

log = logging.getLogger(__name__)


class ModelWatcher:
    """The serving model of the registry at ``dsn`` (None until one is published)."""

    def __init__(
        self,
        dsn: Secret,
        interval: timedelta,
        *,
        pin: str | None = None,
        background: bool = True,
    ) -> None:
        self.dsn = dsn
        self.pin = pin
        self.interval = interval.total_seconds()
        self.swaps = 0
        self._model: TrainedModel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.check()  # serve the published model from the first batch on
        if background:
            self._thread = threading.Thread(
                target=_loop,
                args=(weakref.ref(self), self._stop, self.interval),
                name="model-watcher",
                daemon=True,
            )
            self._thread.start()

    def current(self) -> TrainedModel | None:
        """The serving model: an attribute read, never a query."""
        return self._model

    def check(self) -> bool:
        """Poll the registry once; True when the model was swapped."""
        try:
            with psycopg.connect(
                self.dsn.reveal(), autocommit=True, connect_timeout=5, application_name="fraudflow"
            ) as conn:
                if _missing(conn):
                    return False
                version = registry.serving_version(conn, self.pin)
                have = self._model.version if self._model is not None else None
                if version is None or version == have:
                    return False
                model = registry.load(conn, version)
        except (psycopg.Error, LookupError, ValueError) as exc:
            log.warning("model registry: poll failed, keeping %s: %s",
                        self._model.version if self._model else "no model",
                        type(exc).__name__)  # fmt: skip
            return False
        self._model = model  # one assignment: a batch sees the old or the new model
        self.swaps += 1
        log.info("model %s loaded (was %s)", version, have or "none")
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()


def _missing(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("select to_regclass('model_registry') is null").fetchone()
    return bool(row and row[0])


def _loop(ref: weakref.ReferenceType[ModelWatcher], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        w = ref()
        if w is None:
            return
        try:
            w.check()
        except Exception:  # keep watching: the current model stays
            log.exception("model registry poll failed")
        del w

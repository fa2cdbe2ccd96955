"""The training parts of a live flow, from settings: feature log, labels store, model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bytewax.outputs import Sink

from fraudflow.config.settings import ConfigError, Settings
from fraudflow.records import Decision, Label
from fraudflow.training.featurelog import FeatureLogSink
from fraudflow.training.labels import LabelStoreSink
from fraudflow.training.watcher import ModelWatcher


@dataclass
class TrainingIO:
    decisions: list[tuple[str, Sink[Decision]]] = field(default_factory=list)
    labels: Sink[Label] | None = None
    models: Any = None  # a ModelWatcher when the trained model is on


def training_io(settings: Settings) -> TrainingIO:
    """Feature log, labels store and model watcher, each on when its setting is set."""
    f, s = settings.feedback, settings.sinks
    out = TrainingIO()
    wanted = [n for n in ("feature_log", "label_store", "trained_model") if getattr(f, n)]
    if not wanted:
        return out
    if s.postgres_dsn is None:
        raise ConfigError(
            f"feedback.{wanted[0]}: needs sinks.postgres_dsn (FRAUDFLOW_POSTGRES_DSN)"
        )
    limit = s.sink_retry_limit
    if f.feature_log:
        out.decisions.append(("feature_log", FeatureLogSink(s.postgres_dsn, retry_limit=limit)))
    if f.label_store:
        out.labels = LabelStoreSink(s.postgres_dsn, retry_limit=limit)
    if f.trained_model:
        out.models = ModelWatcher(s.postgres_dsn, f.model_reload_interval, pin=f.model_pin)
    return out

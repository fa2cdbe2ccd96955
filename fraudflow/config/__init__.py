"""Typed settings, loaded and validated once at start."""

from fraudflow.config.settings import (
    ConfigError,
    Secret,
    Settings,
    describe,
    load_settings,
    parse_duration,
)

__all__ = ["ConfigError", "Secret", "Settings", "describe", "load_settings", "parse_duration"]

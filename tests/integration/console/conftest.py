"""The console tests' fixtures (defined in console_support.py)."""

from tests.integration.console.console_support import console, layout, seeded

__all__ = ["console", "layout", "seeded"]

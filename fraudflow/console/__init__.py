"""The analyst console: a review API and web UI over the flow's stores.

``fraudflow serve`` runs it (:mod:`fraudflow.cli.console`); the app is
built by :func:`fraudflow.console.app.create_app` from typed settings.
"""

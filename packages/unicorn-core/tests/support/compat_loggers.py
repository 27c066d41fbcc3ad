"""Logger classes for the logger_class tests."""

from __future__ import annotations

from unicorn_core.logs import Logger


class MarkingLogger(Logger):
    """unicorn's Logger with every error-log line marked."""

    def info(self, msg, *args, **kwargs):
        super().info("MARKED " + msg, *args, **kwargs)


class _GunicornLogger:
    """Stands for gunicorn.glogging.Logger without needing gunicorn installed."""


_GunicornLogger.__module__ = "gunicorn.glogging"
_GunicornLogger.__qualname__ = "Logger"


class FromGunicorn(_GunicornLogger):
    """A logger written against gunicorn's Logger."""

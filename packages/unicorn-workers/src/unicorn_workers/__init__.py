"""WSGI adapter and the sync, gthread, gevent, eventlet and tornado workers for unicorn."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

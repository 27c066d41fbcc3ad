"""WSGI adapter and the sync and gthread workers for unicorn.

``unicorn -k sync APP`` and ``unicorn -k gthread --threads 8 APP`` find the
workers through the ``unicorn.workers`` entry points. The pieces also work
without the arbiter::

    from unicorn_workers import Control, SyncServer, WSGIConfig

    server = SyncServer([listening_socket], WSGIConfig(app, cfg, log), Control())
    server.serve()
"""

from __future__ import annotations

__version__ = "0.1.0"

from unicorn_workers.control import Control
from unicorn_workers.wsgi import (
    ClientConnection,
    FileWrapper,
    Input,
    RequestBodyError,
    WSGIConfig,
)

__all__ = [
    "ClientConnection",
    "Control",
    "FileWrapper",
    "Input",
    "RequestBodyError",
    "SyncServer",
    "ThreadedServer",
    "WSGIConfig",
    "__version__",
]


def __getattr__(name: str) -> object:
    # The server loops import unicorn_core.workers; load them only when asked.
    if name == "SyncServer":
        from unicorn_workers.sync import SyncServer

        return SyncServer
    if name == "ThreadedServer":
        from unicorn_workers.gthread import ThreadedServer

        return ThreadedServer
    raise AttributeError(name)

"""unicorn_asgi: the asyncio/uvloop ASGI 3.0 worker for unicorn (HTTP/1.1 and lifespan).

``unicorn app:app -k asgi`` serves an ASGI application; the worker class is
:class:`ASGIWorker`, registered as ``asgi`` in the ``unicorn.workers`` entry
points. :class:`H1Protocol` is the connection protocol it runs, usable on any
asyncio loop with an :class:`ASGIConfig`.
"""

from __future__ import annotations

from unicorn_asgi.errors import ClientDisconnected
from unicorn_asgi.http11 import ASGIConfig, H1Protocol, RequestCycle
from unicorn_asgi.lifespan import Lifespan, LifespanFailure
from unicorn_asgi.worker import ASGIWorker, new_event_loop

__version__ = "0.1.0"

__all__ = [
    "ASGIConfig",
    "ASGIWorker",
    "ClientDisconnected",
    "H1Protocol",
    "Lifespan",
    "LifespanFailure",
    "RequestCycle",
    "__version__",
    "new_event_loop",
]

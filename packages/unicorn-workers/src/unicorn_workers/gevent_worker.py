"""The gevent worker: one greenlet per connection (``-k gevent``).

The standard library is monkey-patched (``gevent.monkey.patch_all()``) in the
worker process before the application is imported, so an application that
calls ``time.sleep``, talks to a database over a socket or makes HTTP calls
yields to the other connections instead of blocking the process. See
:mod:`unicorn_workers.green` for how connections are served; the HTTP side is
the same ``ClientConnection`` the sync and gthread workers use.
"""

from __future__ import annotations

import os
from typing import Any

try:
    import gevent
    import gevent.pool
    from gevent import monkey
except ImportError as exc:  # the extra is missing: say which one
    raise ImportError(
        f'the gevent worker needs gevent ({exc}): pip install "unicorn[gevent]"'
    ) from exc

from unicorn_workers.green import GreenWorker

__all__ = ["GeventBackend", "GeventWorker"]


class GeventBackend:
    name = "gevent"
    killed = gevent.GreenletExit
    raw_os = os  # gevent leaves os.read and os.write alone

    def patch(self) -> None:
        monkey.patch_all()

    def pool(self, size: int) -> gevent.pool.Pool:
        return gevent.pool.Pool(size)

    def spawn(self, fn: Any, *args: Any) -> gevent.Greenlet:
        return gevent.spawn(fn, *args)

    def kill(self, thread: Any) -> None:
        thread.kill(block=False)

    def join(self, pool: gevent.pool.Pool, timeout: float) -> bool:
        return pool.join(timeout=timeout)

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def current(self) -> Any:
        return gevent.getcurrent()


class GeventWorker(GreenWorker):
    """``-k gevent`` (also ``gevent_wsgi``, ``gevent_pywsgi``): greenlets, keep-alive."""

    backend = GeventBackend()

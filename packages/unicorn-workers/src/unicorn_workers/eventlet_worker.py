"""The eventlet worker: one green thread per connection (``-k eventlet``).

Deprecated from its first release: eventlet itself is in maintenance mode and
asks its users to move away, and gunicorn removed its eventlet worker in
26.0. It is here so that a deployment moving from an older gunicorn keeps
working; move to ``-k gevent`` (the same model) or to an ASGI application
under ``-k asgi``. The worker says so at boot.

The standard library is monkey-patched (``eventlet.monkey_patch()``) in the
worker process before the application is imported; connections are served as
:mod:`unicorn_workers.green` describes, through the same ``ClientConnection``
as every WSGI worker.
"""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    # eventlet warns about its own deprecation on import; the worker says it
    # once, in the error log, where an operator looks.
    warnings.simplefilter("ignore")
    try:
        import eventlet
        import eventlet.greenpool
        import eventlet.patcher
        import greenlet
    except ImportError as exc:  # the extra is missing: say which one
        raise ImportError(
            f'the eventlet worker needs eventlet ({exc}): pip install "unicorn[eventlet]"'
        ) from exc

from unicorn_workers.green import GreenWorker

__all__ = ["EventletBackend", "EventletWorker"]

DEPRECATION = (
    "The eventlet worker is deprecated and will be removed in a future release "
    "(eventlet is in maintenance mode; gunicorn removed its eventlet worker in 26.0). "
    "Use -k gevent (the same green-thread model) or an ASGI application with -k asgi."
)


class EventletBackend:
    name = "eventlet"
    killed = greenlet.GreenletExit
    raw_os = eventlet.patcher.original("os")

    def patch(self) -> None:
        eventlet.monkey_patch()

    def pool(self, size: int) -> eventlet.greenpool.GreenPool:
        return _Pool(size)

    def spawn(self, fn: Any, *args: Any) -> Any:
        return eventlet.spawn(fn, *args)

    def kill(self, thread: Any) -> None:
        if not thread.dead:
            # GreenThread.kill switches into the thread at once; schedule it
            # instead so the caller is not interrupted.
            eventlet.spawn_n(thread.kill)

    def join(self, pool: Any, timeout: float) -> bool:
        try:
            with eventlet.Timeout(timeout):
                pool.waitall()
        except eventlet.Timeout:
            return False
        return True

    def sleep(self, seconds: float) -> None:
        eventlet.sleep(seconds)

    def current(self) -> Any:
        return greenlet.getcurrent()


class _Pool(eventlet.greenpool.GreenPool):
    """A GreenPool that can be iterated for its running threads, like gevent's."""

    def __iter__(self) -> Any:
        return iter(list(self.coroutines_running))


class EventletWorker(GreenWorker):
    """``-k eventlet``: deprecated; green threads, keep-alive."""

    backend = EventletBackend()

    def init_process(self) -> None:
        self.log.warning(DEPRECATION)
        super().init_process()

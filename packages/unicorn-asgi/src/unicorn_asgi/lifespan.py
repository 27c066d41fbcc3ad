"""The ASGI lifespan protocol: startup before serving, shutdown on every stop.

The application runs once on a ``lifespan`` scope, in a task of its own, for
the life of the worker. ``startup()`` sends ``lifespan.startup`` and waits for
the answer; ``shutdown()`` sends ``lifespan.shutdown`` and waits (bounded) for
its answer and the task's end. ``state`` is the dict the application fills at
startup; every request scope gets a shallow copy of it.

With ``mode="auto"`` an application that raises before answering startup is
taken not to speak lifespan, and the worker serves without it (as uvicorn
does); with ``mode="on"`` that is a startup failure.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["Lifespan", "LifespanFailure"]


class LifespanFailure(Exception):
    """Startup failed; the message is the application's (or its exception's)."""


class Lifespan:
    def __init__(self, app: Any, mode: str, log: Any) -> None:
        self.app = app
        self.mode = mode
        self.log = log
        self.state: dict[str, Any] = {}
        #: False when the application does not speak lifespan (mode auto)
        self.supported = True
        self._inbox: asyncio.Queue[dict] = asyncio.Queue()
        self._startup_done: asyncio.Future | None = None
        self._shutdown_done: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        self._error: str | None = None

    async def startup(self) -> None:
        """Run the application's startup; raises LifespanFailure."""
        loop = asyncio.get_running_loop()
        self._startup_done = loop.create_future()
        self._shutdown_done = loop.create_future()
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._task = loop.create_task(self._run(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        await asyncio.shield(self._startup_done)
        if self._error is not None:
            raise LifespanFailure(self._error)

    async def _run(self, scope: dict) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            if self._startup_done is not None and not self._startup_done.done():
                if self.mode == "auto":
                    self.supported = False
                    self.log.info(
                        "ASGI 'lifespan' protocol appears unsupported (%s: %s); going on without it",
                        type(exc).__name__,
                        exc,
                    )
                else:
                    self.log.error("Exception in 'lifespan' startup", exc_info=exc)
                    self._error = f"{type(exc).__name__}: {exc}"
            else:
                self.log.error("Exception in 'lifespan' protocol", exc_info=exc)
        else:
            if self._startup_done is not None and not self._startup_done.done():
                # Returned without a word: nothing to run at startup or shutdown.
                self.supported = False
        finally:
            for fut in (self._startup_done, self._shutdown_done):
                if fut is not None and not fut.done():
                    fut.set_result(None)

    async def _receive(self) -> dict:
        return await self._inbox.get()

    async def _send(self, message: dict) -> None:
        kind = message["type"]
        startup, shutdown = self._startup_done, self._shutdown_done
        assert startup is not None and shutdown is not None
        if kind == "lifespan.startup.complete":
            if startup.done():
                raise RuntimeError("lifespan.startup.complete sent out of turn")
            startup.set_result(None)
        elif kind == "lifespan.startup.failed":
            if startup.done():
                raise RuntimeError("lifespan.startup.failed sent out of turn")
            self._error = message.get("message", "") or "startup failed"
            startup.set_result(None)
        elif kind == "lifespan.shutdown.complete":
            if not shutdown.done():
                shutdown.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            self.log.error("Application shutdown failed: %s", message.get("message", ""))
            if not shutdown.done():
                shutdown.set_result(None)
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} on the lifespan scope")

    async def shutdown(self, timeout: float) -> None:
        """Run the application's shutdown, waiting at most ``timeout`` seconds."""
        task = self._task
        if task is None or task.done() or not self.supported:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        assert self._shutdown_done is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._shutdown_done), timeout)
        except TimeoutError:
            self.log.warning("Application shutdown did not finish within %.1f s", timeout)
        if not task.done():
            try:
                await asyncio.wait_for(task, max(0.1, min(timeout, 1.0)))
            except (TimeoutError, asyncio.CancelledError):
                pass
            except Exception:
                pass

"""Eager start: run an application's first step at once, inside ``data_received``.

An application that answers without awaiting anything not yet ready has
finished, written its response and gone before the protocol callback returns:
no loop round trip, no scheduled callback. It is a real Task all the same,
because Starlette, anyio and ``asyncio.timeout`` look at
``asyncio.current_task()`` from the first line on. Python 3.12 has this built
in (``eager_start``); on 3.11 the Task's constructor is handed a ``call_soon``
that keeps the step instead of scheduling it, and the step is run on the spot.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

__all__ = ["current_tasks", "start_eagerly"]


current_tasks: dict = asyncio.tasks._current_tasks
_captured: list = [None, None]
_Task = asyncio.Task


def _keep_step(callback: Any, *args: Any, context: Any = None) -> None:
    _captured[0] = callback
    _captured[1] = context


if sys.version_info >= (3, 12):

    def start_eagerly(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task:
        """A Task for ``coro`` whose first step has already run."""
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]

else:

    def start_eagerly(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task:
        """A Task for ``coro`` whose first step has already run.

        The Task's constructor schedules its first step with ``loop.call_soon``,
        looked up on the loop object; an instance attribute shadowing it for the
        length of the constructor receives the step and the Task's context, and
        the step then runs here, in that context and as the loop's current task,
        as it would from the ready queue. Must not be called from inside a
        running task.
        """
        loop.call_soon = _keep_step  # type: ignore[method-assign]
        try:
            task = _Task(coro, loop=loop)
        finally:
            del loop.call_soon
        step, ctx = _captured
        _captured[0] = _captured[1] = None
        ctx.run(step)
        return task

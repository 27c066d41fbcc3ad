"""Clients of the dirty pool: `DirtyClient` (blocking) and `AsyncDirtyClient` (asyncio).

Both drive the sans-IO `ClientConnection`; this module holds only their I/O.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import threading
import weakref
from collections.abc import AsyncIterator, Iterator

from . import protocol as P
from .connection import Chunk, ClientConnection, End, Failure, Result
from .errors import DirtyConnectionError, DirtyError, DirtyTimeoutError
from .settings import MAX_PAYLOAD_ENV, SOCKET_ENV

# How long past a call's own timeout the client waits for the arbiter's answer
# before it gives up on the connection.
LOCAL_GRACE = 5.0
_RECV = 262144


_default_path: str | None = None
# Set inside a Ray actor of the ray backend, where no Unix socket is near:
# get_dirty_client() / get_dirty_client_async() then return clients that call Ray.
_sync_factory = None
_async_factory = None


def set_client_factories(sync_factory, async_factory) -> None:
    """Make `get_dirty_client(timeout)` / `get_dirty_client_async(timeout)` return these factories' clients."""
    global _sync_factory, _async_factory
    _sync_factory, _async_factory = sync_factory, async_factory


def set_dirty_socket_path(path: str | None) -> None:
    """Use `path` for clients made without one (before UNICORN_DIRTY_SOCKET)."""
    global _default_path
    _default_path = path


def get_dirty_socket_path() -> str:
    """The socket clients use when given none: `set_dirty_socket_path()`, else
    `UNICORN_DIRTY_SOCKET`. Raises DirtyConnectionError when neither is set."""
    return _socket_path(None)


def _socket_path(path: str | None) -> str:
    path = path or _default_path or os.environ.get(SOCKET_ENV)
    if not path:
        raise DirtyConnectionError(
            f"no dirty socket: pass a path or set {SOCKET_ENV} (unicorn sets it when dirty_apps is configured)"
        )
    return path


def _max_payload() -> int:
    try:
        return int(os.environ.get(MAX_PAYLOAD_ENV, P.DEFAULT_MAX_PAYLOAD))
    except ValueError:
        return P.DEFAULT_MAX_PAYLOAD


class DirtyClient:
    """Blocking client. One call at a time per client; use one client per thread
    (`get_dirty_client()` does that for you)."""

    def __init__(self, path: str | None = None, timeout: float | None = None) -> None:
        self.path = _socket_path(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._conn: ClientConnection | None = None
        self._events: collections.deque = collections.deque()
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._sock_timeout: float | None = None
        self._async: AsyncDirtyClient | None = None

    def connect(self) -> None:
        if self._sock is not None and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise DirtyConnectionError(
                f"cannot connect to dirty arbiter at {self.path}: {exc}", self.path
            ) from None
        self._sock = sock
        self._sock_timeout = None
        self._conn = ClientConnection(_max_payload())
        self._events.clear()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._conn = None
        self._events.clear()
        if sock is not None:
            sock.close()

    def __enter__(self) -> DirtyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- I/O helpers ---------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.close()
            raise DirtyConnectionError(
                f"lost the dirty arbiter at {self.path}: {exc}", self.path
            ) from None

    def _next_event(self, rid: int, wait: float | None):
        events = self._events
        while True:
            # events of other calls stay queued: a stream may be open on this
            # connection while the same thread makes another call
            for i, ev in enumerate(events):
                if ev.id == rid:
                    del events[i]
                    return ev
            if wait != self._sock_timeout:
                self._sock.settimeout(wait)
                self._sock_timeout = wait
            try:
                data = self._sock.recv(_RECV)
            except TimeoutError:
                self.close()
                raise DirtyTimeoutError(
                    f"no answer from the dirty arbiter within {wait:g}s", wait
                ) from None
            except OSError as exc:
                self.close()
                raise DirtyConnectionError(
                    f"lost the dirty arbiter at {self.path}: {exc}", self.path
                ) from None
            if not data:
                self.close()
                raise DirtyConnectionError(
                    f"the dirty arbiter at {self.path} closed the connection", self.path
                )
            try:
                events.extend(self._conn.receive_data(data))
            except DirtyError:
                self.close()
                raise

    def _wait(self, timeout: float | None) -> float | None:
        t = timeout if timeout is not None else self.timeout
        return None if t is None else t + LOCAL_GRACE

    def _call(self, rid: int, data: bytes, wait: float | None) -> object:
        self._send(data)
        chunks = None
        while True:
            ev = self._next_event(rid, wait)
            if type(ev) is Result:
                return ev.value
            if type(ev) is Chunk:
                if chunks is None:
                    chunks = []
                chunks.append(ev.value)
                credit = self._conn.consumed(rid)
                if credit:
                    self._send(credit)
            elif type(ev) is End:
                return chunks if chunks is not None else []
            else:
                raise ev.error

    # -- public API -----------------------------------------------------------------

    def execute(
        self, app: str, action: str, *args: object, timeout: float | None = None, **kwargs: object
    ) -> object:
        """Run `action` of `app` in a dirty worker and return its value.

        A streaming action's chunks come back as a list. Raises DirtyTimeoutError
        past `timeout` (default: the client's, else the pool's `dirty_timeout`).
        """
        with self._lock:
            self.connect()
            t = timeout if timeout is not None else self.timeout
            rid, data = self._conn.request(app, action, args, kwargs, t)
            return self._call(rid, data, self._wait(timeout))

    def stream(
        self, app: str, action: str, *args: object, timeout: float | None = None, **kwargs: object
    ) -> Iterator:
        """Iterate over the chunks a generator action yields, as they come.

        Stopping early (break, close) cancels the action in the worker.
        """
        with self._lock:
            self.connect()
            t = timeout if timeout is not None else self.timeout
            rid, data = self._conn.request(app, action, args, kwargs, t)
            wait = self._wait(timeout)
            self._send(data)
            done = False
            try:
                while True:
                    ev = self._next_event(rid, wait)
                    if type(ev) is Chunk:
                        yield ev.value
                        credit = self._conn.consumed(rid)
                        if credit:
                            self._send(credit)
                    elif type(ev) is End:
                        done = True
                        return
                    elif type(ev) is Result:  # not a generator: one value
                        done = True
                        yield ev.value
                        return
                    else:
                        done = True
                        raise ev.error
            finally:
                if not done and self._sock is not None:
                    # tell the worker, then drop the connection rather than drain it
                    with contextlib.suppress(OSError):
                        self._sock.sendall(self._conn.cancel(rid))
                    self.close()

    def status(self) -> dict:
        """The arbiter's view: workers, their apps and load, per-app queue depth."""
        with self._lock:
            self.connect()
            rid, data = self._conn.status()
            return self._call(rid, data, self._wait(None) or 30.0)

    def stash_call(self, op: str, *args: object) -> object:
        with self._lock:
            self.connect()
            rid, data = self._conn.stash(op, args)
            return self._call(rid, data, 30.0)

    # -- gunicorn's async methods on the same client ---------------------------------
    # gunicorn's DirtyClient carries both APIs; here the async half is an
    # AsyncDirtyClient on the same path, made on first use.

    def _async_client(self) -> AsyncDirtyClient:
        if self._async is None:
            self._async = AsyncDirtyClient(self.path, self.timeout)
        return self._async

    async def connect_async(self) -> None:
        await self._async_client().connect()

    async def close_async(self) -> None:
        client, self._async = self._async, None
        if client is not None:
            await client.close()

    async def execute_async(
        self, app: str, action: str, *args: object, timeout: float | None = None, **kwargs: object
    ) -> object:
        return await self._async_client().execute_async(
            app, action, *args, timeout=timeout, **kwargs
        )

    def stream_async(
        self, app: str, action: str, *args: object, timeout: float | None = None, **kwargs: object
    ) -> AsyncIterator:
        return self._async_client().stream_async(app, action, *args, timeout=timeout, **kwargs)

    async def __aenter__(self) -> DirtyClient:
        await self.connect_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close_async()


class _Protocol(asyncio.Protocol):
    def __init__(self, client: AsyncDirtyClient) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._on_lost(exc)


class _Waiter:
    __slots__ = ("chunks", "future", "queue")

    def __init__(self, future: asyncio.Future | None, queue: asyncio.Queue | None) -> None:
        self.future = future
        self.queue = queue
        self.chunks: list | None = None


class AsyncDirtyClient:
    """asyncio client; many concurrent calls share one connection.

    Cancelling the task awaiting a call (or closing a stream early) cancels
    the action in the dirty worker.
    """

    def __init__(self, path: str | None = None, timeout: float | None = None) -> None:
        self.path = _socket_path(path)
        self.timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._conn: ClientConnection | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._connecting: asyncio.Future | None = None

    async def connect(self) -> None:
        if self._transport is not None:
            return
        if self._connecting is not None:
            await asyncio.shield(self._connecting)
            return
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            transport, _ = await loop.create_unix_connection(lambda: _Protocol(self), self.path)
        except OSError as exc:
            err = DirtyConnectionError(
                f"cannot connect to dirty arbiter at {self.path}: {exc}", self.path
            )
            self._connecting.set_exception(err)
            self._connecting.exception()  # mark retrieved
            self._connecting = None
            raise err from None
        self._conn = ClientConnection(_max_payload())
        self._transport = transport
        self._connecting.set_result(None)
        self._connecting = None

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # gunicorn's names for the same two steps
    connect_async = connect
    close_async = close

    async def __aenter__(self) -> AsyncDirtyClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- protocol callbacks -------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        try:
            events = self._conn.receive_data(data)
        except DirtyError as exc:
            self._transport.close()
            self._fail_all(exc)
            return
        waiters = self._waiters
        for ev in events:
            w = waiters.get(ev.id)
            if w is None:
                continue
            if w.queue is not None:
                w.queue.put_nowait(ev)
                continue
            fut = w.future
            if fut.done():
                continue
            if type(ev) is Result:
                fut.set_result(ev.value)
            elif type(ev) is Chunk:
                if w.chunks is None:
                    w.chunks = []
                w.chunks.append(ev.value)
                credit = self._conn.consumed(ev.id)
                if credit:
                    self._transport.write(credit)
            elif type(ev) is End:
                fut.set_result(w.chunks if w.chunks is not None else [])
            else:
                fut.set_exception(ev.error)

    def _on_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail_all(
            DirtyConnectionError(
                f"lost the dirty arbiter at {self.path}: {exc or 'closed'}", self.path
            )
        )

    def _fail_all(self, exc: DirtyError) -> None:
        waiters, self._waiters = self._waiters, {}
        for w in waiters.values():
            if w.queue is not None:
                w.queue.put_nowait(Failure(0, exc))
            elif not w.future.done():
                w.future.set_exception(exc)

    def _write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def _abandon(self, rid: int) -> None:
        if self._waiters.pop(rid, None) is not None and self._transport is not None:
            self._transport.write(self._conn.cancel(rid))

    # -- public API ----------------------------------------------------------------------

    async def execute_async(
        self, app: str, action: str, *args: object, timeout: float | None = None, **kwargs: object
    ) -> object:
        """Run `action` of `app` in a dirty worker and return its value."""
        if self._transport is None:
            await self.connect()
        t = timeout if timeout is not None else self.timeout
        rid, data = self._conn.request(app, action, args, kwargs, t)
        fut = asyncio.get_running_loop().create_future()
        self._waiters[rid] = _Waiter(fut, None)
        self._transport.write(data)
        try:
            if t is None:
                return await fut
            try:
                async with asyncio.timeout(t + LOCAL_GRACE):
                    return await fut
            except TimeoutError:
                raise DirtyTimeoutError(
                    f"no answer from the dirty arbiter within {t + LOCAL_GRACE:g}s", t
                ) from None
        finally:
            if not fut.done() or fut.cancelled():
                self._abandon(rid)
            else:
                self._waiters.pop(rid, None)

    async def stream_async(
        self, app: str, action: str, *args: object, timeout: float | None = None, **kwargs: object
    ) -> AsyncIterator:
        """Iterate over the chunks a generator action yields, as they come."""
        if self._transport is None:
            await self.connect()
        t = timeout if timeout is not None else self.timeout
        rid, data = self._conn.request(app, action, args, kwargs, t)
        queue: asyncio.Queue = asyncio.Queue()
        self._waiters[rid] = _Waiter(None, queue)
        self._transport.write(data)
        done = False
        try:
            while True:
                if t is None:
                    ev = await queue.get()
                else:
                    try:
                        async with asyncio.timeout(t + LOCAL_GRACE):
                            ev = await queue.get()
                    except TimeoutError:
                        raise DirtyTimeoutError(
                            f"no chunk from the dirty arbiter within {t + LOCAL_GRACE:g}s", t
                        ) from None
                if type(ev) is Chunk:
                    yield ev.value
                    credit = self._conn.consumed(rid) if self._conn is not None else b""
                    if credit:
                        self._write(credit)
                elif type(ev) is End:
                    done = True
                    return
                elif type(ev) is Result:
                    done = True
                    yield ev.value
                    return
                else:
                    done = True
                    raise ev.error
        finally:
            if done:
                self._waiters.pop(rid, None)
            else:
                self._abandon(rid)

    async def status(self) -> dict:
        if self._transport is None:
            await self.connect()
        rid, data = self._conn.status()
        return await self._simple(rid, data)

    async def stash_call(self, op: str, *args: object) -> object:
        if self._transport is None:
            await self.connect()
        rid, data = self._conn.stash(op, args)
        return await self._simple(rid, data)

    async def _simple(self, rid: int, data: bytes) -> object:
        fut = asyncio.get_running_loop().create_future()
        self._waiters[rid] = _Waiter(fut, None)
        self._transport.write(data)
        try:
            async with asyncio.timeout(30.0):
                return await fut
        finally:
            self._waiters.pop(rid, None)


# -- per-thread / per-loop clients ------------------------------------------------------

_local = threading.local()
_loop_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_dirty_client(timeout: float | None = None, *, path: str | None = None) -> DirtyClient:
    """This thread's client to the dirty pool (socket from UNICORN_DIRTY_SOCKET by default).

    The connection is reused by every call from the thread, and re-made after
    fork. `timeout` sets the client's default per-call timeout (None: the
    pool's `dirty_timeout`).
    """
    if _sync_factory is not None and path is None:
        return _sync_factory(timeout)
    path = _socket_path(path)
    client = getattr(_local, "client", None)
    if client is None or client.path != path or client._pid != os.getpid():
        client = DirtyClient(path)
        _local.client = client
    if timeout is not None:
        client.timeout = timeout
    return client


def close_dirty_client() -> None:
    """Close this thread's client (for example when an HTTP worker exits)."""
    client = getattr(_local, "client", None)
    _local.client = None
    if client is not None:
        client.close()


async def get_dirty_client_async(
    timeout: float | None = None, *, path: str | None = None
) -> AsyncDirtyClient:
    """This event loop's client to the dirty pool; calls from all its tasks share one connection."""
    if _async_factory is not None and path is None:
        return await _async_factory(timeout)
    path = _socket_path(path)
    loop = asyncio.get_running_loop()
    entry = _loop_clients.get(loop)
    if entry is None or entry[0] != path or entry[1] != os.getpid():
        entry = (path, os.getpid(), AsyncDirtyClient(path))
        _loop_clients[loop] = entry
    client = entry[2]
    if timeout is not None:
        client.timeout = timeout
    if client._transport is None:
        await client.connect()
    return client


async def close_dirty_client_async() -> None:
    """Close this event loop's client."""
    entry = _loop_clients.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry[2].close()

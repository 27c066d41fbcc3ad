"""The tornado worker (``-k tornado``): tornado's IOLoop serving WSGI and tornado apps.

Theory of operation
-------------------
What the worker loaded decides how it is served:

- A ``tornado.web.Application`` is served by tornado's own ``HTTPServer``:
  that is tornado's application model (request handlers on the IOLoop,
  ``await`` for I/O), and its handlers expect tornado's request objects. The
  worker adds what the arbiter needs around it: the heartbeat, ``max_requests``
  (counted as each request finishes), ``keepalive`` as tornado's idle timeout,
  TLS from the SSL settings, and the graceful stop (stop accepting, let the
  requests in flight finish within ``graceful_timeout``). Hooks, the access log
  and the ``protocol`` / forwarded-header settings are unicorn's parser's and do
  not apply; tornado logs requests to its ``tornado.access`` logger.
- Anything else is a WSGI application, served on unicorn's parser: each
  connection is a coroutine on the IOLoop that reads through a tornado
  ``IOStream`` and drives the same
  :class:`~unicorn_workers.wsgi.ClientConnection` as the sync and gthread
  workers (so the edge, PROXY protocol, ``--protocol uwsgi``, hooks and the
  access log behave the same). Request heads are parsed on the IOLoop, so idle
  keep-alive connections and slow clients cost no thread; the application
  runs in a pool of ``threads`` threads (a WSGI application blocks), and its
  body reads and response writes go back to the IOLoop through
  :class:`StreamSocket`, a socket-shaped view of the stream whose writes wait
  until tornado has flushed them (a client that stops reading stops the
  application, not the worker's memory).

The heartbeat is a coroutine on the IOLoop, woken early by the worker's wakeup
pipe; an IOLoop blocked for ``timeout`` seconds stops the beats and the
arbiter replaces the worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import ssl
import threading
import time
from typing import Any

try:
    import tornado.httpserver
    import tornado.httputil
    import tornado.iostream
    import tornado.netutil
    import tornado.web
except ImportError as exc:  # the extra is missing: say which one
    raise ImportError(
        f'the tornado worker needs tornado ({exc}): pip install "unicorn[tornado]"'
    ) from exc

from unicorn_core.workers import Worker
from unicorn_http import NEED_DATA
from unicorn_workers.wsgi import RECV_SIZE, ClientConnection, WSGIConfig

__all__ = ["StreamSocket", "TornadoWSGIServer", "TornadoWorker"]


class StreamSocket:
    """What ``ClientConnection`` uses of a socket, over a tornado ``IOStream``.

    ``recv`` and ``sendall`` are called from the application's thread and wait
    (up to ``timeout``) for the IOLoop to do them. Called on the IOLoop itself
    (an error answer from the parser), ``sendall`` only queues the bytes; the
    connection's coroutine waits for :attr:`pending` before closing.
    """

    def __init__(
        self,
        stream: tornado.iostream.IOStream,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
    ) -> None:
        self.stream = stream
        self.loop = loop
        self.timeout = timeout
        self.loop_thread = threading.get_ident()
        self.pending: Any = None

    def recv(self, size: int, flags: int = 0) -> bytes:
        data = self.recv_within(size, self.timeout)
        if data is None:
            raise TimeoutError("timed out reading the request body")
        return data

    def recv_within(self, size: int, timeout: float | None) -> bytes | None:
        """Up to ``size`` bytes (b"" at the end), or None when ``timeout`` passed first."""
        if threading.get_ident() == self.loop_thread:
            raise BlockingIOError("recv() on the IOLoop")
        future = asyncio.run_coroutine_threadsafe(self._read(size), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return None

    async def _read(self, size: int) -> bytes:
        try:
            return await self.stream.read_bytes(size, partial=True)
        except tornado.iostream.StreamClosedError:
            return b""

    def sendall(self, data: bytes) -> None:
        if threading.get_ident() == self.loop_thread:
            try:
                self.pending = self.stream.write(data)
            except tornado.iostream.StreamClosedError:
                raise BrokenPipeError("the client went away") from None
            return
        future = asyncio.run_coroutine_threadsafe(self._write(data), self.loop)
        try:
            future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError("timed out writing the response") from None

    async def _write(self, data: bytes) -> None:
        try:
            await self.stream.write(data)
        except tornado.iostream.StreamClosedError:
            raise BrokenPipeError("the client went away") from None

    def getsockname(self) -> Any:
        return self.stream.socket.getsockname()

    def close(self) -> None:
        self.stream.close()


class StreamConnection(ClientConnection):
    """``ClientConnection`` over a :class:`StreamSocket`: timed waits for the body
    (``client_body_timeout``) go through the IOLoop, not a poll on a descriptor."""

    def fill_by(self, deadline: float) -> bool | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            data = self.sock.recv_within(RECV_SIZE, left)
        except OSError:
            self.broken = True
            data = b""
        if data is None:
            return None
        return self.feed(data)


class TornadoWSGIServer:
    """Serve a WSGI application with unicorn's parser on the running IOLoop."""

    def __init__(
        self,
        listeners: list[socket.socket],
        config: WSGIConfig,
        control: Any,
        *,
        threads: int = 1,
        worker_connections: int = 1000,
        keepalive: float = 2.0,
        graceful_timeout: float = 30.0,
    ) -> None:
        self.listeners = listeners
        self.config = config
        self.control = control
        self.threads = max(1, threads)
        self.worker_connections = max(1, worker_connections)
        self.keepalive = float(keepalive)
        self.handshake_timeout = config.header_timeout or config.timeout
        self.graceful_timeout = graceful_timeout
        self._names = {ls.fileno(): _sockname(ls) for ls in listeners}
        self._removers: list[Any] = []
        #: connection coroutine -> True while it waits for a head with nothing pending
        self.tasks: dict[asyncio.Task, ClientConnection | None] = {}
        self.accepting = False
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self) -> None:
        control = self.control
        self.loop = loop = asyncio.get_running_loop()
        self.executor = concurrent.futures.ThreadPoolExecutor(
            self.threads, thread_name_prefix="unicorn-tornado"
        )
        woken = asyncio.Event()

        def wake() -> None:
            control.drain_wakeup()
            woken.set()

        loop.add_reader(control.wakeup_fd, wake)
        self._start_accepting()
        try:
            while control.alive:
                control.notify()
                try:
                    await asyncio.wait_for(woken.wait(), control.notify_interval)
                except TimeoutError:
                    pass
                woken.clear()
                if not control.is_parent_alive():
                    control.alive = False
            await self._drain()
        finally:
            loop.remove_reader(control.wakeup_fd)
            self._stop_accepting()
            self.executor.shutdown(wait=False, cancel_futures=True)

    # -- accepting --------------------------------------------------------------------------

    def _start_accepting(self) -> None:
        if self.accepting:
            return
        self.accepting = True
        for ls in self.listeners:
            ls.setblocking(False)
            name = self._names[ls.fileno()]
            self._removers.append(
                tornado.netutil.add_accept_handler(
                    ls, lambda client, peer, name=name: self._accepted(client, peer, name)
                )
            )

    def _stop_accepting(self) -> None:
        self.accepting = False
        for remove in self._removers:
            remove()
        self._removers.clear()

    def _accepted(self, client: socket.socket, peer: Any, name: Any) -> None:
        task = asyncio.ensure_future(self._serve_client(client, peer, name))
        self.tasks[task] = None
        task.add_done_callback(self._finished)
        if len(self.tasks) >= self.worker_connections:
            # Full: leave new clients in the backlog, close after each response.
            self.config.close_after_response = True
            self._stop_accepting()

    def _finished(self, task: asyncio.Task) -> None:
        self.tasks.pop(task, None)
        if self.control.alive and len(self.tasks) < self.worker_connections:
            self.config.close_after_response = False
            self._start_accepting()

    # -- stopping ---------------------------------------------------------------------------

    async def _drain(self) -> None:
        self._stop_accepting()
        self.config.close_after_response = True
        deadline = time.monotonic() + self.graceful_timeout
        while self.tasks:
            for task, conn in list(self.tasks.items()):
                if conn is not None and not conn.partial_head:
                    task.cancel()  # waiting for a next request: done
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.control.notify()
            await asyncio.wait(list(self.tasks), timeout=min(left, 0.5))
        if self.tasks:
            self.config.log.warning(
                "Graceful timeout: closing %d connection(s) with requests in flight",
                len(self.tasks),
            )
            for task in list(self.tasks):
                task.cancel()

    # -- one connection ---------------------------------------------------------------------

    async def _serve_client(self, client: socket.socket, peer: Any, name: Any) -> None:
        config = self.config
        control = self.control
        me = asyncio.current_task()
        stream: tornado.iostream.IOStream | None = None
        conn: ClientConnection | None = None
        try:
            if client.family != socket.AF_UNIX:
                try:
                    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            is_ssl = control.ssl_context is not None
            if is_ssl:
                stream = await self._tls(client, peer)
                if stream is None:
                    return
            else:
                stream = tornado.iostream.IOStream(client, max_buffer_size=4 * RECV_SIZE)
            sock = StreamSocket(stream, self.loop, config.timeout)  # type: ignore[arg-type]
            conn = StreamConnection(sock, peer, config, is_ssl=is_ssl, server=name)
            if not conn.admitted:
                return
            run = self.loop.run_in_executor  # type: ignore[union-attr]
            header_timeout = config.header_timeout
            keepalive = self.keepalive
            started = time.monotonic()
            idle = True  # nothing received since the connection opened or the last response
            while True:
                req = conn.next_request()
                if req is NEED_DATA:
                    if idle and not control.alive and not conn.partial_head:
                        break  # shutting down: a connection between requests is done
                    # The first head and a partial head get client_header_timeout;
                    # the wait for a next request, keepalive.
                    if idle and conn.requests and not conn.partial_head:
                        limit = keepalive
                    else:
                        limit = header_timeout
                    if idle:
                        self.tasks[me] = conn  # type: ignore[index]
                    try:
                        read = stream.read_bytes(RECV_SIZE, partial=True)
                        if limit:
                            data = await asyncio.wait_for(read, started + limit - time.monotonic())
                        else:
                            data = await read
                    except tornado.iostream.StreamClosedError:
                        data = b""
                        conn.broken = True
                    except TimeoutError:
                        if conn.partial_head:
                            conn.time_out_head(header_timeout)
                        break
                    finally:
                        if idle:
                            self.tasks[me] = None  # type: ignore[index]
                            idle = False
                    if not conn.feed(data) and conn.broken:
                        break
                    continue
                if req is None:
                    break
                if not control.alive:
                    conn.wire.keep_alive = False
                await run(self.executor, conn.handle, req)
                control.handled_request()
                if conn.must_close:
                    break
                idle = True
                started = time.monotonic()
        except asyncio.CancelledError:
            pass
        except Exception:
            config.log.exception("Error serving a connection")
        finally:
            if conn is not None:
                pending = conn.sock.pending
                if pending is not None and stream is not None and not stream.closed():
                    try:
                        await asyncio.wait_for(pending, config.timeout or None)
                    except Exception:
                        pass
                conn.close()
            elif stream is not None:
                stream.close()
            else:
                client.close()

    async def _tls(self, client: socket.socket, peer: Any) -> tornado.iostream.SSLIOStream | None:
        """TLS with the handshake done before the first read (ALPN is known then)."""
        control = self.control
        try:
            wrapped = control.ssl_context.wrap_socket(
                client,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=getattr(control.cfg, "suppress_ragged_eofs", True),
            )
            stream = tornado.iostream.SSLIOStream(wrapped, max_buffer_size=4 * RECV_SIZE)
            await asyncio.wait_for(stream.wait_for_handshake(), self.handshake_timeout)
        except (OSError, ssl.SSLError, tornado.iostream.StreamClosedError, TimeoutError) as exc:
            self.config.log.debug("TLS handshake with %s failed: %s", peer, exc)
            client.close()
            return None
        return stream


def _sockname(lsock: socket.socket) -> Any:
    try:
        return lsock.getsockname()
    except OSError:
        return ""


# --- native tornado applications ------------------------------------------------------------


class _Counted(tornado.httputil.HTTPMessageDelegate):
    """One request of a native app: in flight from its head until tornado logs
    its response (``Application.log_request``, called as a handler finishes) or
    the connection closes.

    tornado asks for the delegate of a keep-alive connection's next request
    before that request arrives, and calls ``finish()`` when the request (not
    the response) is complete: neither marks a request in flight or done.
    """

    def __init__(
        self, inner: tornado.httputil.HTTPMessageDelegate, owner: _Counting, key: Any
    ) -> None:
        self.inner = inner
        self.owner = owner
        self.key = key
        self.started = False
        self.done = False

    def headers_received(self, start_line: Any, headers: Any) -> Any:
        if not self.started:
            self.started = True
            self.owner.active += 1
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.inner.finish()

    def on_connection_close(self) -> None:
        try:
            self.inner.on_connection_close()
        finally:
            self.responded()

    def responded(self) -> None:
        self.owner.current.pop(self.key, None)
        if self.started and not self.done:
            self.done = True
            self.owner.active -= 1
            self.owner.worker.handled_request()


class _Counting(tornado.httputil.HTTPServerConnectionDelegate):
    """Wraps the Application: counts requests and knows how many are in flight."""

    def __init__(self, app: tornado.web.Application, worker: Worker) -> None:
        self.app = app
        self.worker = worker
        self.active = 0
        #: request connection -> the delegate of its current request
        self.current: dict[Any, _Counted] = {}
        log_request = app.log_request

        def logged(handler: tornado.web.RequestHandler) -> None:
            try:
                log_request(handler)
            finally:
                counted = self.current.get(handler.request.connection)
                if counted is not None:
                    counted.responded()

        app.log_request = logged  # type: ignore[method-assign]

    def start_request(self, server_conn: Any, request_conn: Any) -> _Counted:
        counted = _Counted(self.app.start_request(server_conn, request_conn), self, request_conn)
        self.current[request_conn] = counted
        return counted

    def on_close(self, server_conn: Any) -> None:
        for request_conn in [c for c in self.current if c.stream is server_conn.stream]:
            self.current.pop(request_conn).responded()
        self.app.on_close(server_conn)


async def serve_tornado_app(worker: Worker, app: tornado.web.Application) -> None:
    """Serve a native tornado application with tornado's HTTPServer until the worker stops."""
    cfg = worker.cfg
    delegate = _Counting(app, worker)
    server = tornado.httpserver.HTTPServer(
        delegate,
        no_keep_alive=cfg.keepalive <= 0,
        ssl_options=worker.ssl_context,
        idle_connection_timeout=float(cfg.keepalive) if cfg.keepalive > 0 else None,
    )
    socks = [listener.sock for listener in worker.listeners]
    for sock in socks:
        sock.setblocking(False)
    server.add_sockets(socks)
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake() -> None:
        worker.drain_wakeup()
        woken.set()

    loop.add_reader(worker.wakeup_fd, wake)
    try:
        while worker.alive:
            worker.notify()
            try:
                await asyncio.wait_for(woken.wait(), worker.notify_interval)
            except TimeoutError:
                pass
            woken.clear()
            if not worker.is_parent_alive():
                worker.alive = False
        server.stop()
        deadline = time.monotonic() + cfg.graceful_timeout
        while delegate.active and time.monotonic() < deadline:
            worker.notify()
            await asyncio.sleep(0.05)
        if delegate.active:
            worker.log.warning("Graceful timeout: closing %d request(s) in flight", delegate.active)
        try:
            await asyncio.wait_for(server.close_all_connections(), 1.0)
        except TimeoutError:
            pass
    finally:
        loop.remove_reader(worker.wakeup_fd)


class TornadoWorker(Worker):
    """``-k tornado``: WSGI apps on unicorn's parser, tornado apps on tornado's server."""

    def run(self) -> None:
        app = self.wsgi
        if isinstance(app, tornado.web.Application):
            self.log.info("tornado worker: serving a tornado.web.Application")
            asyncio.run(serve_tornado_app(self, app))
            return
        cfg = self.cfg
        config = WSGIConfig(
            app,
            cfg,
            self.log,
            worker=self,
            multithread=cfg.threads > 1,
            keepalive=cfg.keepalive > 0,
        )
        config.sendfile = False  # the bytes go through the IOStream
        server = TornadoWSGIServer(
            [listener.sock for listener in self.listeners],
            config,
            self,
            threads=cfg.threads,
            worker_connections=cfg.worker_connections,
            keepalive=cfg.keepalive,
            graceful_timeout=cfg.graceful_timeout,
        )
        asyncio.run(server.serve())

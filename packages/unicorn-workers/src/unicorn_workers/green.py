"""One green thread per connection: what the gevent and eventlet workers share.

Theory of operation
-------------------
The library (gevent or eventlet) monkey-patches the standard library in the
worker process before the application is imported, so that ``socket``,
``ssl``, ``select``, ``time.sleep`` and ``threading`` yield to the library's
hub instead of blocking the process. From then on the code that serves a
connection is the plain blocking code every worker uses: a
:class:`~unicorn_workers.wsgi.ClientConnection` over the (now cooperative)
socket, its ``fill()`` / ``next_request()`` / ``handle()`` loop, so the edge,
the protocol seam, hooks and the access log are the same objects as under
the sync and gthread workers.

:class:`GreenServer` runs in the worker's main green thread:

- one accept loop per listener spawns a green thread per connection into a
  pool of ``worker_connections``; when the pool is full the accept loop waits
  for a free slot, so further clients wait in the kernel's backlog, and
  responses say ``Connection: close`` until there is room again;
- the main green thread itself is the heartbeat: it waits on the worker's
  wakeup pipe for at most ``notify_interval`` seconds, beats, and checks the
  master is still there. A green thread that computes without yielding for
  ``timeout`` seconds stops the beats and the arbiter replaces the worker;
  that is all ``timeout`` means here, as in gunicorn's async workers;
- a connection waits ``keepalive`` seconds for its next request, and
  ``client_header_timeout`` for its first one and for the rest of a head that
  has begun (then 408); the body is bounded by ``client_body_timeout`` and
  each socket operation of a request by ``timeout``, so a stalled client
  holds one green thread for a bounded time;
- when ``alive`` turns false (TERM, ``max_requests``, the master gone) the
  accept loops are killed, connections waiting for a next request with no
  byte pending are closed, and the others finish their current request
  (answered with ``Connection: close``) within ``graceful_timeout``; what is
  left then is killed.

A :class:`GreenBackend` names the few library calls this needs (patch, a
bounded pool, spawn, kill, join with a deadline); each worker module provides
one.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from typing import Any, Protocol

from unicorn_core.workers import Worker
from unicorn_http import NEED_DATA
from unicorn_workers.http2 import HTTP2Support
from unicorn_workers.wsgi import RECV_SIZE, ClientConnection, WSGIConfig

__all__ = ["GreenBackend", "GreenServer", "GreenWorker"]

_ACCEPT_TRANSIENT = frozenset(
    (errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENOBUFS, errno.ENOMEM, errno.EAGAIN)
)
_ACCEPT_LIMITS = frozenset((errno.EMFILE, errno.ENFILE))


class GreenBackend(Protocol):
    """What :class:`GreenServer` needs of a green-thread library."""

    #: the library's name, for log lines
    name: str
    #: the exception a killed green thread sees (``GreenletExit``)
    killed: type[BaseException]
    #: the ``os`` module as it was before patching (eventlet's green ``os.read``
    #: and ``os.write`` wait for the descriptor first, which a signal handler
    #: running in the hub may not do)
    raw_os: Any

    def patch(self) -> None:
        """Monkey-patch the standard library (once, before the app is imported)."""

    def pool(self, size: int) -> Any:
        """A pool whose ``spawn(fn, *args)`` waits while ``size`` are running."""

    def spawn(self, fn: Any, *args: Any) -> Any:
        """Start a green thread outside any pool."""

    def kill(self, thread: Any) -> None:
        """Raise ``killed`` in ``thread`` at its next switch (do not wait)."""

    def join(self, pool: Any, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the pool to empty; True when it did."""

    def sleep(self, seconds: float) -> None:
        """Yield to others for ``seconds``."""

    def current(self) -> Any:
        """The running green thread."""


class GreenServer:
    """Serve ``listeners`` with one green thread per connection until ``control.alive``
    turns false."""

    def __init__(
        self,
        listeners: list[socket.socket],
        config: WSGIConfig,
        control: Any,
        backend: GreenBackend,
        *,
        worker_connections: int = 1000,
        keepalive: float = 2.0,
        graceful_timeout: float = 30.0,
        do_handshake_on_connect: bool = False,
        http2: Any = None,
    ) -> None:
        self.config = config
        self.control = control
        self.backend = backend
        self.worker_connections = max(1, worker_connections)
        #: seconds a connection may wait for its next request
        self.keepalive = float(keepalive)
        #: seconds the TLS handshake may take
        self.handshake_timeout = config.header_timeout or config.timeout
        self.graceful_timeout = graceful_timeout
        self.do_handshake_on_connect = do_handshake_on_connect
        #: HTTP/2 (``unicorn_workers.http2.HTTP2Support``), None when not offered
        self.http2 = http2
        # The listeners were made before the patch: give each a cooperative twin
        # on a duplicate descriptor (closing it leaves the master's untouched).
        self.listeners = [
            socket.socket(ls.family, ls.type, ls.proto, fileno=_dup(ls)) for ls in listeners
        ]
        self._names = [_sockname(ls) for ls in self.listeners]
        self.pool = backend.pool(self.worker_connections)
        #: green thread -> its connection while it waits for a request head
        #: with nothing pending (may be closed at once on shutdown)
        self.waiting: dict[Any, ClientConnection] = {}
        self.open = 0
        self.accepting = False
        self.quick = False

    # -- the main green thread --------------------------------------------------------------

    def serve(self) -> None:
        control = self.control
        backend = self.backend
        self.accepting = True
        acceptors = [
            backend.spawn(self._accept_loop, ls, name)
            for ls, name in zip(self.listeners, self._names, strict=True)
        ]
        wakeup = control.wakeup_fd
        interval = control.notify_interval
        try:
            while control.alive:
                control.notify()
                try:
                    ready, _, _ = select.select([wakeup], [], [], interval)
                except InterruptedError:
                    ready = []
                if ready:
                    # One read empties the pipe (a few bytes); a loop reading to
                    # EAGAIN would wait forever under eventlet's green os.read.
                    try:
                        backend.raw_os.read(wakeup, 65536)
                    except OSError:
                        pass
                if not control.is_parent_alive():
                    control.alive = False
        finally:
            self.accepting = False
            for thread in acceptors:
                backend.kill(thread)
            for ls in self.listeners:
                try:
                    ls.close()
                except OSError:
                    pass
        if self.quick:
            self._kill_all()
            return
        self._drain()

    def _drain(self) -> None:
        """Close connections between requests; let the others finish within
        ``graceful_timeout``."""
        self.config.close_after_response = True
        self._close_waiting()
        deadline = time.monotonic() + self.graceful_timeout
        while self.open:
            self.control.notify()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.backend.join(self.pool, min(left, self.control.notify_interval, 0.5))
            self._close_waiting()
        if self.open:
            self.config.log.warning(
                "Graceful timeout: closing %d connection(s) with requests in flight",
                self.open,
            )
            self._kill_all()

    def _close_waiting(self) -> None:
        for thread, conn in list(self.waiting.items()):
            if not conn.partial_head:
                self.waiting.pop(thread, None)
                self.backend.kill(thread)

    def _kill_all(self) -> None:
        for thread in list(self.pool):
            self.backend.kill(thread)
        self.backend.join(self.pool, 1.0)

    # -- accepting ------------------------------------------------------------------------

    def _accept_loop(self, lsock: socket.socket, name: Any) -> None:
        log = self.config.log
        spawn = self.pool.spawn
        serve = self._serve_client
        while self.accepting:
            try:
                client, peer = lsock.accept()
            except OSError as exc:
                if not self.accepting:
                    return
                if exc.errno in _ACCEPT_TRANSIENT:
                    continue
                if exc.errno in _ACCEPT_LIMITS:
                    log.error("accept() failed: %s; retrying in 0.1 s", exc)
                    self.backend.sleep(0.1)
                    continue
                log.exception("accept() failed on %s", name)
                self.backend.sleep(0.1)
                continue
            if client.family != socket.AF_UNIX:
                try:
                    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            self.open += 1
            if self.open >= self.worker_connections:
                self.config.close_after_response = True
            try:
                spawn(serve, client, peer, name)  # waits while the pool is full
            except BaseException:
                self.open -= 1
                client.close()
                raise

    # -- one connection ---------------------------------------------------------------------

    def _serve_client(self, client: socket.socket, peer: Any, name: Any) -> None:
        config = self.config
        control = self.control
        conn: GreenConnection | None = None
        me = self.backend.current()
        waiting = self.waiting
        try:
            # Every read and write of a request in progress is bounded by `timeout`.
            client.settimeout(config.timeout)
            is_ssl = control.ssl_context is not None
            if is_ssl:
                wrapped = self._tls(client, peer)
                if wrapped is None:
                    return
                client = wrapped
            conn = GreenConnection(client, peer, config, is_ssl=is_ssl, server=name)
            if not conn.admitted:
                return
            if self.http2 is not None and self._http2(conn):
                return
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
                        waiting[me] = conn
                        try:
                            got = conn.fill_by(started + limit) if limit else conn.fill()
                        finally:
                            waiting.pop(me, None)
                        idle = False
                    else:
                        got = conn.fill_by(started + limit) if limit else conn.fill()
                    if got is None:
                        if conn.partial_head:
                            conn.time_out_head(header_timeout)
                        break
                    if not got and conn.broken:
                        break
                    continue
                if req is None:
                    break
                if req.upgrade == b"h2c" and self.http2 is not None:  # type: ignore[union-attr]
                    upgraded = self.http2.upgrade_h2c(conn, req)  # type: ignore[arg-type]
                    if upgraded is not None:
                        self._h2_session(conn, upgraded[0]).serve(upgraded[1])
                        return
                    if conn.broken:
                        break
                if not control.alive:
                    conn.wire.keep_alive = False
                conn.handle(req)  # type: ignore[arg-type]
                control.handled_request()
                if conn.must_close:
                    break
                idle = True
                started = time.monotonic()
        except self.backend.killed:
            pass
        except Exception:
            # A fault of ours must cost one connection, not the worker.
            config.log.exception("Error serving a connection")
        finally:
            waiting.pop(me, None)
            self.open -= 1
            if self.open < self.worker_connections and self.accepting:
                config.close_after_response = False
            if conn is not None:
                conn.close()
            else:
                try:
                    client.close()
                except OSError:
                    pass

    def _http2(self, conn: ClientConnection) -> bool:
        """Serve the connection as HTTP/2 if it is (ALPN h2, or a trusted peer's
        preface): this green thread becomes its connection thread, each stream a
        green thread of its own (unicorn_workers.http2). False: HTTP/1.1."""

        mode = self.http2.negotiate(conn)
        if mode == "probe":
            limit = self.config.header_timeout or self.keepalive
            try:
                ready, _, _ = select.select([conn.sock], [], [], limit)
            except (OSError, ValueError):
                ready = []
            if not ready or not self.http2.probe(conn):
                return conn.broken
        elif mode != "h2":
            return False
        self._h2_session(conn).serve()
        return True

    def _h2_session(self, conn: ClientConnection, upgraded: tuple | None = None) -> Any:
        """This green thread becomes the connection thread of an ``H2Session``."""
        from unicorn_workers.http2 import H2Session

        return H2Session(
            conn,
            self.http2,
            self.control,
            self.backend.spawn,
            keepalive=self.keepalive,
            graceful_timeout=self.graceful_timeout,
            upgraded=upgraded,
        )

    def _tls(self, client: socket.socket, peer: Any) -> socket.socket | None:
        """Wrap in TLS; without ``do_handshake_on_connect`` the handshake is done
        here, bounded like a request head, so that ALPN is known before reading."""
        control = self.control
        log = self.config.log
        try:
            client.settimeout(self.handshake_timeout)
            client = control.wrap_socket(client)
            if not self.do_handshake_on_connect:
                client.do_handshake()
            client.settimeout(self.config.timeout)
        except OSError as exc:
            log.debug("TLS handshake with %s failed: %s", peer, exc)
            try:
                client.close()
            except OSError:
                pass
            return None
        return client


class GreenConnection(ClientConnection):
    """``ClientConnection`` whose timed waits are the cooperative socket's own
    timeout (eventlet has no ``select.poll``, which the base class waits with,
    and a green ``select`` per request costs more than the timeout does)."""

    def fill_by(self, deadline: float) -> bool | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock = self.sock
        sock.settimeout(left)
        try:
            data = sock.recv(RECV_SIZE)
        except TimeoutError:
            return None
        except OSError:
            self.broken = True
            data = b""
        finally:
            sock.settimeout(self.config.timeout)
        return self.feed(data)


def _dup(lsock: socket.socket) -> int:
    return os.dup(lsock.fileno())


def _sockname(lsock: socket.socket) -> Any:
    try:
        return lsock.getsockname()
    except OSError:
        return ""


class GreenWorker(Worker):
    """Base of the gevent and eventlet workers: patch first, then boot as usual."""

    #: set by the subclass
    backend: GreenBackend
    #: ClientConnection calls request_started()/request_finished() (one thread)
    counts_requests = True
    #: ALPN offers h2 and prior knowledge is honoured (unicorn_workers.http2)
    supports_http2 = True

    def init_process(self) -> None:
        if self.app_loader is not None and getattr(self.app_loader, "loaded", False):
            self.log.warning(
                "%s worker: the application was imported in the master (--preload) "
                "before monkey-patching; modules it imported hold the unpatched "
                "socket, ssl and threading and may block the worker. Drop --preload, "
                "or patch at the top of the application module.",
                self.backend.name,
            )
        self.backend.patch()
        self._server: GreenServer | None = None
        super().init_process()

    def wakeup(self) -> None:
        """Make ``wakeup_fd`` readable; safe from a signal handler running in the hub."""
        if self._wakeup_w >= 0:
            try:
                self.backend.raw_os.write(self._wakeup_w, b"!")
            except OSError:
                pass

    def handle_quit(self, sig: int, frame: Any) -> None:
        """INT/QUIT: fast stop, from the main green thread rather than wherever
        the signal landed."""
        self.alive = False
        self.cfg.worker_int(self)
        if self._server is not None:
            self._server.quick = True
        self.wakeup()

    def run(self) -> None:
        cfg = self.cfg
        config = WSGIConfig(
            self.wsgi,
            cfg,
            self.log,
            worker=self,
            multithread=True,
            keepalive=cfg.keepalive > 0,
        )
        # os.sendfile on a non-blocking descriptor would fail with EAGAIN; the
        # file is sent in blocks through the cooperative socket instead.
        config.sendfile = False
        self._server = GreenServer(
            [listener.sock for listener in self.listeners],
            config,
            self,
            self.backend,
            worker_connections=cfg.worker_connections,
            keepalive=cfg.keepalive,
            graceful_timeout=cfg.graceful_timeout,
            do_handshake_on_connect=cfg.do_handshake_on_connect,
            http2=HTTP2Support.from_cfg(cfg, self.log),
        )
        self._server.serve()

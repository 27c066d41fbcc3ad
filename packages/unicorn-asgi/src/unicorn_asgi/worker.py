"""``-k asgi``: one event loop per worker process serving ASGI applications.

The worker builds its loop (uvloop or asyncio, ``asgi_loop``), runs the
lifespan startup, then serves every listener with ``loop.create_server`` and
:class:`~unicorn_asgi.http11.H1Protocol`. A ticker does what needs a clock:
the heartbeat, the parent check, the coarse clock the connections stamp
themselves with, and closing connections idle past ``keepalive``.

``worker_connections`` is kept by closing the servers (the listening sockets
are duplicates, so the inherited ones stay open) when the worker holds that
many connections, and serving again once one closes: further clients wait in
the kernel's backlog.

Stopping (TERM, ``max_requests``, the parent gone): stop accepting, close
idle connections at once, let in-flight requests finish (waits for a client
in ``receive()`` end with ``http.disconnect``), abort what is left after
``graceful_timeout``, then run the lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from typing import Any

from unicorn_asgi.http11 import ASGIConfig, H1Protocol
from unicorn_asgi.lifespan import Lifespan, LifespanFailure
from unicorn_asgi.websocket import install as install_websocket
from unicorn_core.errors import WorkerBootError
from unicorn_core.workers import Worker

__all__ = ["ASGIWorker", "new_event_loop"]

_TICK = 0.25
#: loop callbacks between an accept and the protocol's connection_made, with room
_ACCEPT_HOPS = 3


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """The loop ``asgi_loop`` names; ``auto`` takes uvloop when it is installed."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise RuntimeError(
                    "asgi_loop = 'uvloop' but uvloop is not installed: pip install 'unicorn[uvloop]'"
                ) from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class ASGIWorker(Worker):
    """An asyncio (or uvloop) ASGI 3.0 worker: HTTP/1.1, HTTP/2 and lifespan."""

    supports_http2 = True
    counts_requests = True

    def init_signals(self) -> None:
        super().init_signals()
        # Fast stop unwinds the loop rather than raising out of a callback.
        signal.signal(signal.SIGQUIT, self._handle_quit)
        signal.signal(signal.SIGINT, self._handle_quit)

    def _handle_quit(self, sig: int, frame: Any) -> None:
        self.alive = False
        self._quick = True
        self.cfg.worker_int(self)
        self.wakeup()

    def run(self) -> None:
        self._quick = False
        loop = new_event_loop(self.cfg.asgi_loop)
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(loop))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        cfg = self.cfg
        log = self.log
        lifespan = None
        if cfg.asgi_lifespan != "off":
            lifespan = Lifespan(self.wsgi, cfg.asgi_lifespan, log)
            try:
                await lifespan.startup()
            except LifespanFailure as exc:
                # The arbiter's boot-failure path: it reports the reason and halts.
                raise WorkerBootError(f"application startup failed: {exc}") from None
        config = ASGIConfig(
            self.wsgi,
            cfg,
            log,
            worker=self,
            loop=loop,
            state=lifespan.state if lifespan is not None and lifespan.supported else None,
        )
        install_websocket(config, cfg)
        if config.h2_upgrade:
            from unicorn_asgi.http2 import upgrade_h2c

            config.upgrades[b"h2c"] = upgrade_h2c
        if (
            config.http2
            and self.ssl_context is None
            and not (config.h2_prior_knowledge or config.h2_upgrade)
        ):
            log.warning(
                "http_protocols includes h2 but there is no TLS and http2_cleartext "
                "is off: HTTP/2 will never be negotiated"
            )
        self._config = config
        self._loop = loop
        self._servers: list[Any] = []
        self._accepting = False
        self._paused = False
        self._wake = loop.create_future()
        loop.add_reader(self.wakeup_fd, self._on_wakeup)
        try:
            await self._listen()
            config.on_count = self._on_count
            await self._tick()
            await self._drain()
        finally:
            loop.remove_reader(self.wakeup_fd)
            if lifespan is not None:
                await lifespan.shutdown(max(1.0, min(float(cfg.graceful_timeout), 10.0)))

    # -- listening --------------------------------------------------------------------

    async def _listen(self) -> None:
        config = self._config
        loop = self._loop
        ssl_context = self.ssl_context
        is_ssl = ssl_context is not None

        def factory() -> H1Protocol:
            return H1Protocol(config, is_ssl)

        servers = []
        for listener in self.listeners:
            sock = listener.sock
            dup = socket.socket(fileno=os.dup(sock.fileno()))
            dup.setblocking(False)
            if dup.family == socket.AF_UNIX:
                server = await loop.create_unix_server(
                    factory, sock=dup, ssl=ssl_context, backlog=self.cfg.backlog
                )
            else:
                server = await loop.create_server(
                    factory, sock=dup, ssl=ssl_context, backlog=self.cfg.backlog
                )
            servers.append(server)
        self._servers = servers
        self._accepting = True

    def _stop_listening(self) -> None:
        for server in self._servers:
            server.close()
        self._servers = []
        self._accepting = False

    def _on_count(self, count: int) -> None:
        """A connection opened or closed: keep ``worker_connections``."""
        config = self._config
        if self._accepting and count >= config.worker_connections:
            self._stop_listening()
            self._paused = True
        elif self._paused and count < config.worker_connections and self.alive:
            self._paused = False
            self._accepting = True  # a second close before the servers are back is a no-op
            task = self._loop.create_task(self._listen())
            task.add_done_callback(self._listen_failed)

    def _listen_failed(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.log.error("Could not resume accepting: %s", task.exception())
            self.alive = False
            self._on_wakeup()

    # -- the ticker ---------------------------------------------------------------------

    def _on_wakeup(self) -> None:
        self.drain_wakeup()
        wake = self._wake
        if not wake.done():
            wake.set_result(None)

    async def _tick(self) -> None:
        loop = self._loop
        interval = min(self.notify_interval, _TICK)
        while self.alive:
            self.notify()
            if not self.is_parent_alive():
                self.log.info("Parent changed, shutting down: %s", self)
                self.alive = False
                break
            self._sweep(loop.time())
            self._past_timeout()
            if self._wake.done():
                self._wake = loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._wake), interval)
            except TimeoutError:
                pass

    def _past_timeout(self) -> None:
        """A request running longer than ``timeout`` is logged with its request line,
        and the worker is replaced gracefully: it stops taking connections, its
        healthy requests finish, and the stuck one has until ``graceful_timeout``."""
        limit = float(self.cfg.timeout or 0)
        if not limit:
            return
        now = time.monotonic()
        for cycle in self._config.running_cycles():
            started = cycle.started_at
            if started and now - started > limit and not cycle.overdue:
                cycle.overdue = True
                req = cycle.req
                self.log.error(
                    "Request %s %s has run %.0f s, past timeout (%g s): replacing worker %s "
                    "gracefully",
                    req.method.decode("latin-1"),
                    req.target.decode("latin-1"),
                    now - started,
                    limit,
                    self.pid,
                )
                if self.alive:
                    self.heartbeat.set_exit_cause("request_timeout")
                    self.alive = False
                    self._on_wakeup()

    def _sweep(self, now: float) -> None:
        """Close idle connections whose wait is over (``H1Protocol.sweep``)."""
        config = self._config
        config.clock = now
        keepalive = config.keepalive
        header_timeout = config.header_timeout
        for proto in [p for p in config.connections if p.cycle is None]:
            proto.sweep(now, keepalive, header_timeout)

    # -- stopping ------------------------------------------------------------------------

    async def _drain(self) -> None:
        loop = self._loop
        config = self._config
        config.stopping = True
        config.on_count = None
        self._stop_listening()
        # A client accepted just before the close has no protocol in connections
        # until the loop runs its connection_made, queued one callback later
        # (uvloop) or two (asyncio). Counting before that, an otherwise empty
        # worker would exit and close it unanswered: let those callbacks run.
        for _ in range(_ACCEPT_HOPS):
            await asyncio.sleep(0)
        for proto in list(config.connections):
            proto.stop()
        deadline = loop.time() + float(self.cfg.graceful_timeout)
        if self._quick:
            deadline = loop.time()
        while (config.connections or config.tasks) and loop.time() < deadline:
            self.notify()
            await asyncio.sleep(0.02)
            self._sweep(loop.time())
        if config.connections or config.tasks:
            if not self._quick:
                self.log.warning(
                    "Graceful timeout: closing %d connection(s) with requests in flight",
                    len(config.connections),
                )
            for proto in list(config.connections):
                proto.abort()
            tasks = list(config.tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)
        await asyncio.sleep(0)

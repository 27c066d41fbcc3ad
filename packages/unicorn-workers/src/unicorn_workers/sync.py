"""The sync worker: one connection, one request, at a time.

Each connection carries exactly one request and its response says
``Connection: close``; ``timeout`` bounds the whole request (the arbiter kills
a worker whose heartbeat stops for that long, and every socket operation
times out after it). Run it behind a buffering proxy (nginx), which absorbs
slow clients and keeps its own keep-alive connections.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from typing import Any

from unicorn_core.workers import Worker
from unicorn_http import NEED_DATA
from unicorn_workers.wsgi import ClientConnection, WSGIConfig

__all__ = ["SyncServer", "SyncWorker"]

# accept() errors that concern only the connection being accepted
_ACCEPT_TRANSIENT = frozenset(
    (errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENOBUFS, errno.ENOMEM)
)


def accept_ready(lsock: socket.socket) -> tuple[socket.socket, Any] | None:
    """One accepted connection from a non-blocking listener, or None."""
    try:
        return lsock.accept()
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as exc:
        if exc.errno in _ACCEPT_TRANSIENT:
            return None
        raise


def prepare_client(client: socket.socket, timeout: float | None) -> None:
    """Make an accepted socket blocking with kernel-side timeouts.

    A Python socket with ``settimeout()`` polls before every recv and send;
    ``SO_RCVTIMEO``/``SO_SNDTIMEO`` bound the same waits without the extra
    system calls (a timeout then surfaces as ``BlockingIOError``).
    """
    if timeout:
        tv = struct.pack("ll", int(timeout), int((timeout % 1) * 1_000_000))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    if client.family != socket.AF_UNIX:
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def server_address(lsock: socket.socket) -> Any:
    try:
        return lsock.getsockname()
    except OSError:
        return ""


class SyncServer:
    """Serve ``listeners`` one connection at a time until ``control.alive`` turns false."""

    def __init__(self, listeners: list[socket.socket], config: WSGIConfig, control: Any) -> None:
        self.listeners = listeners
        self.config = config
        self.control = control
        self._names = {ls.fileno(): server_address(ls) for ls in listeners}

    def serve(self) -> None:
        control = self.control
        listeners = self.listeners
        for ls in listeners:
            ls.setblocking(False)
        waitables: list[Any] = [*listeners, control.wakeup_fd]
        interval = control.notify_interval
        while control.alive:
            control.notify()
            served = False
            for ls in listeners:
                # Drain the backlog before sleeping: a busy server never selects.
                while control.alive:
                    pair = accept_ready(ls)
                    if pair is None:
                        break
                    served = True
                    self.handle_client(pair[0], pair[1], self._names[ls.fileno()])
                    control.notify()
            if served:
                continue
            if not control.is_parent_alive():
                control.alive = False
                break
            try:
                ready, _, _ = select.select(waitables, [], [], interval)
            except InterruptedError:
                continue
            if control.wakeup_fd in ready:
                control.drain_wakeup()

    def handle_client(self, client: socket.socket, peer: Any, server: Any) -> None:
        config = self.config
        prepare_client(client, config.timeout)
        is_ssl = self.control.ssl_context is not None
        if is_ssl:
            try:
                client = self.control.wrap_socket(client)
            except OSError as exc:
                config.log.debug("TLS handshake with %s failed: %s", peer, exc)
                client.close()
                return
        conn = ClientConnection(client, peer, config, is_ssl=is_ssl, server=server)
        if not conn.admitted:
            conn.close()
            return
        limit = config.header_timeout
        deadline = time.monotonic() + limit if limit else None
        try:
            while True:
                req = conn.next_request()
                if req is not NEED_DATA:
                    break
                if deadline is None:
                    conn.fill()
                elif conn.fill_by(deadline) is None:
                    # Nothing or a trickle: a slowloris must not hold the worker.
                    if conn.partial_head:
                        conn.time_out_head(limit)
                    req = None
                    break
            if req is not None:
                conn.handle(req)  # type: ignore[arg-type]
                self.control.handled_request()
        except Exception:
            # A fault of ours must cost one connection, not the worker.
            config.log.exception("Error serving a connection")
        finally:
            conn.close()


class SyncWorker(Worker):
    """``-k sync``: one request at a time per process, no keep-alive."""

    counts_requests = True

    def run(self) -> None:
        if self.cfg.threads > 1:
            # gunicorn's rule, which its users rely on: `--threads N` alone
            # (with the default sync worker) means the threaded worker.
            from unicorn_workers.gthread import serve_threaded

            self.log.info("sync worker with --threads %d: serving as gthread", self.cfg.threads)
            serve_threaded(self)
            return
        config = WSGIConfig(
            self.wsgi,
            self.cfg,
            self.log,
            worker=self,
            multithread=False,
            keepalive=False,
        )
        SyncServer([listener.sock for listener in self.listeners], config, self).serve()

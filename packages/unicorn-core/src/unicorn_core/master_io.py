"""Small request/response servers that live in the master's main loop.

The control socket and the ``/metrics`` endpoint both answer one short
request per connection. The master is single-threaded and must never wait
on a client, so :class:`OneShotServer` keeps every socket non-blocking: the
arbiter's ``select`` includes :meth:`OneShotServer.fds`, and
:meth:`OneShotServer.ready` accepts, reads until the request is complete,
asks the handler for the reply, writes as much as the socket takes and
closes once it is all out. A request is bounded in size and a connection in
time (:attr:`IDLE_LIMIT`), so a slow or silent client costs one file
descriptor for a few seconds and nothing else.

The fds are created non-inheritable; a worker forked from the master closes
them at once (:meth:`OneShotServer.close_in_child`).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


class _Conn:
    __slots__ = ("inbox", "opened", "outbox", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = b""
        self.outbox = b""
        self.opened = time.monotonic()


class OneShotServer:
    """One listening socket; one request and one reply per connection.

    ``complete(data)`` returns the length of a complete request at the head
    of ``data`` or 0 while more is needed; ``handle(request)`` returns the
    reply bytes (it must not raise; wrap errors into the reply).
    """

    #: seconds a connection may take to send its request and read the reply
    IDLE_LIMIT = 5.0
    #: a larger request is refused (connection closed)
    MAX_REQUEST = 64 * 1024
    #: most connections at once; further ones wait in the kernel's backlog
    MAX_CONNECTIONS = 64

    def __init__(
        self,
        sock: socket.socket,
        complete: Callable[[bytes], int],
        handle: Callable[[bytes], bytes],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.complete = complete
        self.handle = handle
        self.on_error = on_error
        self.conns: dict[int, _Conn] = {}

    def fds(self) -> list[int]:
        """What the main loop selects on for reading."""
        if self.sock.fileno() < 0:
            return []
        out = [fd for fd, conn in self.conns.items() if not conn.outbox]
        if len(self.conns) < self.MAX_CONNECTIONS:
            out.append(self.sock.fileno())
        return out

    def write_fds(self) -> list[int]:
        """Connections with a reply still to write."""
        return [fd for fd, conn in self.conns.items() if conn.outbox]

    def ready(self, readable: set[int], writable: set[int]) -> None:
        """Do the work ``select`` found for us, then drop stale connections."""
        listen_fd = self.sock.fileno()
        if listen_fd in readable:
            self._accept()
        for fd in list(self.conns):
            if fd in readable:
                self._read(fd)
            elif fd in writable:
                self._flush(fd)
        now = time.monotonic()
        for fd, conn in list(self.conns.items()):
            if now - conn.opened > self.IDLE_LIMIT:
                self._close(fd)

    def _accept(self) -> None:
        for _ in range(self.MAX_CONNECTIONS - len(self.conns)):
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._error(f"accept failed: {exc}")
                return
            sock.setblocking(False)
            self.conns[sock.fileno()] = _Conn(sock)

    def _read(self, fd: int) -> None:
        conn = self.conns[fd]
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(fd)
            return
        if not data:
            self._close(fd)
            return
        conn.inbox += data
        size = self.complete(conn.inbox)
        if not size:
            if len(conn.inbox) > self.MAX_REQUEST:
                self._close(fd)
            return
        request, conn.inbox = conn.inbox[:size], b""
        conn.outbox = self.handle(request)
        self._flush(fd)

    def _flush(self, fd: int) -> None:
        conn = self.conns[fd]
        try:
            sent = conn.sock.send(conn.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(fd)
            return
        conn.outbox = conn.outbox[sent:]
        if not conn.outbox:
            self._close(fd)

    def _close(self, fd: int) -> None:
        conn = self.conns.pop(fd, None)
        if conn is not None:
            try:
                conn.sock.close()
            except OSError:
                pass

    def _error(self, message: str) -> None:
        if self.on_error is not None:
            self.on_error(message)

    def close(self) -> None:
        for fd in list(self.conns):
            self._close(fd)
        try:
            self.sock.close()
        except OSError:
            pass

    def close_in_child(self) -> None:
        """After fork in a worker: drop our fds without touching the peers' state."""
        self.close()

"""What a server loop needs from its process, so the loops run without the arbiter.

The sync and gthread loops (``SyncServer``, ``ThreadedServer``) talk to their
process through a small interface that ``unicorn_core.workers.Worker``
already provides: ``alive``, ``notify()``, ``notify_interval``,
``wakeup_fd``/``drain_wakeup()``, ``handled_request()``,
``is_parent_alive()`` and ``wrap_socket()``/``ssl_context``. In the server the
Worker itself is passed; tests and embedders pass a :class:`Control`.
"""

from __future__ import annotations

import os
import socket
from typing import Any


class Control:
    """A stand-alone stand-in for the Worker: a stop switch and a request counter."""

    def __init__(self, *, max_requests: int = 0, ssl_context: Any = None) -> None:
        self.alive = True
        self.nr = 0
        self.max_requests = max_requests
        self.ssl_context = ssl_context
        self.notify_interval = 0.5
        self.beats = 0
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    @property
    def wakeup_fd(self) -> int:
        return self._r

    def notify(self) -> None:
        self.beats += 1

    def handled_request(self) -> None:
        self.nr += 1
        if self.max_requests and self.nr >= self.max_requests:
            self.stop()

    def is_parent_alive(self) -> bool:
        return True

    def wrap_socket(self, sock: socket.socket) -> socket.socket:
        if self.ssl_context is None:
            return sock
        return self.ssl_context.wrap_socket(sock, server_side=True)

    def stop(self) -> None:
        """Ask the loop to stop (gracefully); safe from any thread."""
        self.alive = False
        try:
            os.write(self._w, b"!")
        except OSError:
            pass

    def drain_wakeup(self) -> None:
        try:
            while os.read(self._r, 4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass

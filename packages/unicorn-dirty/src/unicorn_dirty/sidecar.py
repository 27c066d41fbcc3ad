"""`DirtySidecar`: the dirty pool as a sidecar of unicorn's arbiter (``unicorn.sidecars`` entry point).

The master instantiates it as ``DirtySidecar(cfg, log)``, exports
`worker_env()` to the HTTP workers, calls `spawn()` to fork the dirty
arbiter, supervises the pid it returns, and calls `cleanup()` once that
process is reaped for good. See docs/seams.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import time

from .backend import make_arbiter
from .connection import ClientConnection, Failure, Result
from .settings import MAX_PAYLOAD_ENV, SOCKET_ENV, DirtyConfig

#: how long the master waits for the dirty arbiter's status (it blocks the master's loop)
STATUS_TIMEOUT = 1.0


class DirtySidecar:
    """Runs the dirty arbiter beside the HTTP workers."""

    name = "dirty"

    def __init__(self, cfg: object, log: logging.Logger | None = None) -> None:
        self.cfg = cfg
        self.log = log or logging.getLogger("unicorn.dirty")
        self._path: str | None = None
        self._private_dir: str | None = None

    def enabled(self) -> bool:
        return bool(getattr(self.cfg, "dirty_apps", None))

    @property
    def socket_path(self) -> str:
        """The arbiter's socket: `dirty_socket`, else a fresh private directory (0700)."""
        configured = getattr(self.cfg, "dirty_socket", None)
        if configured:
            return configured
        if self._path is None:
            # made once: HTTP workers keep this path in their environment, so a
            # respawned arbiter recreates the same directory rather than a new one
            self._private_dir = tempfile.mkdtemp(prefix="unicorn-dirty-")
            os.chmod(self._private_dir, 0o700)
            self._path = os.path.join(self._private_dir, "arbiter.sock")
        return self._path

    def worker_env(self) -> dict[str, str]:
        max_payload = getattr(self.cfg, "dirty_max_payload", None)
        env = {SOCKET_ENV: self.socket_path}
        if max_payload:
            env[MAX_PAYLOAD_ENV] = str(int(max_payload))
        return env

    def spawn(self) -> int:
        path = self.socket_path
        private = self._private_dir is not None and not getattr(self.cfg, "dirty_socket", None)
        config = DirtyConfig.from_object(self.cfg)
        master = os.getpid()
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            for sig in (signal.SIGWINCH, signal.SIGPIPE):
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(sig, signal.SIG_IGN)
            arbiter = make_arbiter(
                config, path, log=self.log, watch_parent=True, remove_dir=private, parent_pid=master
            )
            code = arbiter.run()
        except BaseException:
            with contextlib.suppress(BaseException):
                self.log.exception("dirty arbiter crashed")
        finally:
            os._exit(code)

    def status(self) -> dict:
        """The dirty arbiter's own status (apps, workers, queue depths, counters,
        call latency), asked over its socket within `STATUS_TIMEOUT` seconds:
        the master shows it in `unicornc show dirty` and `/metrics`."""
        conn = ClientConnection()
        rid, data = conn.status()
        deadline = time.monotonic() + STATUS_TIMEOUT
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(STATUS_TIMEOUT)
            sock.connect(self.socket_path)
            sock.sendall(data)
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the dirty arbiter closed the connection")
                for event in conn.receive_data(chunk):
                    if isinstance(event, Result) and event.id == rid:
                        return event.value
                    if isinstance(event, Failure) and event.id == rid:
                        raise ConnectionError(f"the dirty arbiter refused: {event.error}")

    def cleanup(self) -> None:
        path = self._path or getattr(self.cfg, "dirty_socket", None)
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if self._private_dir:
            shutil.rmtree(self._private_dir, ignore_errors=True)

"""What the master does for the people operating it: the control socket,
``/metrics`` and recycling by memory and age, behind one small interface so
the arbiter's own code changes in a few marked places only.

The arbiter calls, from its main loop: :meth:`Operations.start` once the
listeners exist, :meth:`read_fds`/:meth:`write_fds` and :meth:`ready` around
its ``select``, :meth:`tick` once per turn, :meth:`worker_started` and
:meth:`worker_gone` as workers come and go, :meth:`close_in_child` in a
freshly forked worker and :meth:`close` when it stops.
"""

from __future__ import annotations

import signal
from typing import Any

from unicorn_core.control import ControlSocket
from unicorn_core.master_io import OneShotServer
from unicorn_core.metrics import (
    EXPOSITION_TYPE,
    Totals,
    bind_metrics,
    http_reply,
    http_request_size,
    render,
)
from unicorn_core.recycling import Recycler


class Operations:
    def __init__(self, arbiter: Any) -> None:
        self.arbiter = arbiter
        self.totals = Totals()
        self.control = ControlSocket(arbiter)
        self.metrics: OneShotServer | None = None
        self.metrics_bind: str | None = None
        self.recycler = Recycler(_LiveConfig(arbiter))

    # --- start, reload, stop ---------------------------------------------------------

    def start(self) -> None:
        self._bind_metrics()
        self.control.start()

    def _bind_metrics(self) -> None:
        address = self.arbiter.cfg.metrics_bind
        if address == self.metrics_bind:
            return
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        self.metrics_bind = address
        if not address:
            return
        sock = bind_metrics(address)
        self.metrics = OneShotServer(
            sock, http_request_size, self._scrape, self.arbiter.log.warning
        )
        host, port = sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        self.arbiter.log.info("Metrics at: http://%s:%s/metrics", host, port)

    def reload(self) -> None:
        """After HUP: follow a changed ``metrics_bind`` (control_socket stays)."""
        try:
            self._bind_metrics()
        except Exception as exc:
            self.arbiter.log.error("Reload: metrics_bind: %s", exc)

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        unlink = self.arbiter.reexec_pid == 0
        self.control.close(unlink=unlink)

    def close_in_child(self) -> None:
        if self.metrics is not None:
            self.metrics.close_in_child()
            self.metrics = None
        self.control.close_in_child()

    # --- the main loop ----------------------------------------------------------------

    def _servers(self) -> list[OneShotServer]:
        return [s for s in (self.control.server, self.metrics) if s is not None]

    def read_fds(self) -> list[int]:
        return [fd for server in self._servers() for fd in server.fds()]

    def write_fds(self) -> list[int]:
        return [fd for server in self._servers() for fd in server.write_fds()]

    def ready(self, readable: list[int], writable: list[int]) -> None:
        r, w = set(readable), set(writable)
        for server in self._servers():
            server.ready(r, w)

    def tick(self) -> None:
        self.control.tick()
        arbiter = self.arbiter
        if not arbiter.running:
            return
        due = self.recycler.due(arbiter.workers)
        for pid, cause, detail in due:
            arbiter.log.info("Replacing worker (pid:%s): %s (%s)", pid, cause, detail)
            arbiter.kill_worker(pid, signal.SIGTERM, cause=cause)
        if due:
            arbiter.manage_workers()  # the successors start now

    # --- workers ----------------------------------------------------------------------

    def worker_started(self, worker: Any) -> None:
        self.totals.worker_starts += 1
        worker.retire_at = self.recycler.deadline()

    def worker_gone(self, worker: Any, code: int | None) -> None:
        """Fold the worker's counters into the totals and count its exit by cause."""
        self.totals.fold(worker.heartbeat)
        self.totals.exited(exit_cause(worker, code))

    # --- /metrics -----------------------------------------------------------------------

    def _scrape(self, request: bytes) -> bytes:
        line = request.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return http_reply("400 Bad Request", b"expected an HTTP request line\n")
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if target != b"/metrics":
            return http_reply("404 Not Found", b"metrics are at /metrics\n")
        if method not in (b"GET", b"HEAD"):
            return http_reply("405 Method Not Allowed", b"use GET /metrics\n")
        try:
            body = render(self.arbiter, self.totals).encode("utf-8")
        except Exception:
            self.arbiter.log.exception("Rendering /metrics failed")
            return http_reply("500 Internal Server Error", b"rendering the metrics failed\n")
        reply = http_reply("200 OK", body, EXPOSITION_TYPE)
        if method == b"HEAD":
            reply = reply[: len(reply) - len(body)]
        return reply


def exit_cause(worker: Any, code: int | None) -> str:
    """Why a worker ended, in the words of ``unicorn_worker_exits_total{cause}``."""
    if worker.stop_cause:
        return worker.stop_cause
    if worker.aborted:
        return "timeout"
    own = worker.heartbeat.exit_cause() if not worker.heartbeat.closed else ""
    if own:
        return own
    if code is None:
        return "vanished"
    if code == 0 or code == -signal.SIGTERM:
        return "exited"
    if code == -signal.SIGKILL:
        return "killed"
    return "signal" if code < 0 else "error"


class _LiveConfig:
    """The arbiter's configuration as of now (it changes on HUP)."""

    def __init__(self, arbiter: Any) -> None:
        self._arbiter = arbiter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._arbiter.cfg, name)

"""Sidecars: process trees the arbiter runs beside the HTTP workers.

Contract (docs/seams.md, ``unicorn.sidecars``): the entry point names a class,
instantiated once as ``Sidecar(cfg, log)``; it has ``name``, ``enabled()``,
``worker_env()``, ``spawn() -> pid`` and ``cleanup()``, and may have
``status() -> dict`` (shown by ``unicornc show dirty`` and ``/metrics``;
it runs in the master, so it must answer within about a second). The arbiter

* spawns every enabled sidecar at start, before the first HTTP worker forks,
  and passes ``worker_env()`` to every HTTP worker it forks (a new master
  started by USR2 runs its own sidecars for its own workers);
* asks ``enabled()`` again on HUP, starting a sidecar that became enabled and
  stopping (TERM) one that no longer is; HUP, USR1, TTIN and TTOU sent to the
  master are *not* forwarded (send them to the sidecar's pid directly);
* respawns a root process that dies while the server runs, with the same
  back-off as workers;
* sends TERM on graceful stop, QUIT on fast stop, KILL after
  ``graceful_timeout``, and calls ``cleanup()`` once the root is reaped for good.

``cfg`` given to a sidecar is a live view: after HUP it shows the new values.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import time
from typing import Any

from unicorn_core.errors import ConfigError

SIDECARS_GROUP = "unicorn.sidecars"


class Backoff:
    """Delays respawning a process that keeps dying soon after it started."""

    #: a process that lived at least this long resets the back-off
    HEALTHY_AFTER = 5.0
    FIRST_DELAY = 0.1
    MAX_DELAY = 10.0

    def __init__(self) -> None:
        self.failures = 0

    def exited(self, lifetime: float) -> float:
        """Record an exit after ``lifetime`` seconds; return the delay before respawn."""
        if lifetime >= self.HEALTHY_AFTER:
            self.failures = 0
            return 0.0
        self.failures += 1
        return min(self.FIRST_DELAY * 2 ** (self.failures - 1), self.MAX_DELAY)


class ConfigView:
    """Attribute access to whatever configuration the arbiter holds now."""

    def __init__(self, owner: Any) -> None:
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._owner.cfg, name)


class _Handle:
    __slots__ = (
        "backoff",
        "env",
        "next_spawn",
        "pid",
        "sidecar",
        "started",
        "stop_requested",
        "stopping",
        "wanted",
    )

    def __init__(self, sidecar: Any) -> None:
        self.sidecar = sidecar
        self.pid = 0
        self.wanted = False
        self.stopping = False
        self.stop_requested = 0.0
        self.started = 0.0
        self.next_spawn = 0.0
        self.env: dict[str, str] = {}
        self.backoff = Backoff()

    @property
    def name(self) -> str:
        return str(getattr(self.sidecar, "name", type(self.sidecar).__name__))


class Sidecars:
    """Supervises every installed sidecar for one arbiter."""

    def __init__(self, owner: Any, log: Any, classes: list[type] | None = None) -> None:
        self.log = log
        self.cfg = ConfigView(owner)
        if classes is None:
            classes = []
            for ep in importlib.metadata.entry_points(group=SIDECARS_GROUP):
                try:
                    classes.append(ep.load())
                except Exception as exc:
                    raise ConfigError(
                        f"sidecar {ep.name!r} failed to import: {type(exc).__name__}: {exc}"
                    ) from None
        self.handles: list[_Handle] = []
        for cls in classes:
            try:
                self.handles.append(_Handle(cls(self.cfg, log)))
            except Exception as exc:
                raise ConfigError(
                    f"sidecar {cls!r} failed to start: {type(exc).__name__}: {exc}"
                ) from None

    # start, HUP, environment

    def _enabled(self, handle: _Handle) -> bool:
        try:
            return bool(handle.sidecar.enabled())
        except Exception:
            self.log.exception("sidecar %s: enabled() failed; treating it as disabled", handle.name)
            return False

    def start(self) -> None:
        """Spawn every enabled sidecar (a new master started by USR2 spawns its
        own: each sidecar instance owns its sockets, so the old master's
        workers keep theirs until the old master stops)."""
        for handle in self.handles:
            if self._enabled(handle):
                handle.wanted = True
                self._spawn(handle)

    def _env_of(self, handle: _Handle) -> dict[str, str]:
        try:
            return {str(k): str(v) for k, v in (handle.sidecar.worker_env() or {}).items()}
        except Exception:
            self.log.exception("sidecar %s: worker_env() failed", handle.name)
            return {}

    def forward(self, sig: int) -> None:
        """Pass a signal the master got (USR1: reopen logs) on to every running sidecar."""
        for handle in self.handles:
            if handle.pid and handle.wanted and not handle.stopping:
                self._signal(handle, sig)

    def reload(self) -> None:
        """HUP: start sidecars that became enabled, stop those that no longer are, and
        pass HUP on to those that stay, so they reload their own workers."""
        for handle in self.handles:
            enabled = self._enabled(handle)
            if enabled and handle.wanted and handle.pid and not handle.stopping:
                self._signal(handle, signal.SIGHUP)
            elif enabled and not handle.wanted:
                handle.wanted = True
                handle.stopping = False
                if not handle.pid:
                    self._spawn(handle)
            elif not enabled and handle.wanted:
                handle.wanted = False
                if handle.pid:
                    self.log.info(
                        "Stopping sidecar %s (pid: %s): disabled", handle.name, handle.pid
                    )
                    handle.stopping = True
                    handle.stop_requested = time.monotonic()
                    self._signal(handle, signal.SIGTERM)

    def worker_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for handle in self.handles:
            if handle.wanted:
                env.update(handle.env)
        return env

    def _spawn(self, handle: _Handle) -> None:
        handle.env = self._env_of(handle)
        try:
            pid = handle.sidecar.spawn()
        except Exception:
            self.log.exception("sidecar %s failed to spawn", handle.name)
            handle.next_spawn = time.monotonic() + handle.backoff.exited(0.0)
            return
        if os.getpid() != self._master_pid():
            os._exit(1)  # a sidecar's child returned into the arbiter: never serve from it
        handle.pid = int(pid)
        handle.started = time.monotonic()
        self.log.info("Started sidecar %s (pid: %s)", handle.name, handle.pid)

    def _master_pid(self) -> int:
        return self.cfg._owner.pid

    # supervision

    def owns(self, pid: int) -> bool:
        return any(h.pid == pid for h in self.handles)

    def reap(self, pid: int, status: int, running: bool = True) -> bool:
        """Handle the exit of ``pid`` if it is a sidecar root; True when it was."""
        for handle in self.handles:
            if handle.pid != pid:
                continue
            handle.pid = 0
            handle.stop_requested = 0.0
            code = os.waitstatus_to_exitcode(status)
            if running and handle.wanted and not handle.stopping:
                delay = handle.backoff.exited(time.monotonic() - handle.started)
                handle.next_spawn = time.monotonic() + delay
                self.log.error(
                    "Sidecar %s (pid: %s) exited with %s; restarting in %.1fs",
                    handle.name,
                    pid,
                    _describe_exit(code),
                    delay,
                )
            else:
                self.log.info("Sidecar %s (pid: %s) stopped", handle.name, pid)
                handle.stopping = False
                self._cleanup(handle)
            return True
        return False

    def tick(self) -> None:
        """Respawn the sidecars whose back-off has passed (main loop)."""
        now = time.monotonic()
        for handle in self.handles:
            if (
                handle.pid
                and handle.stop_requested
                and now - handle.stop_requested > self.cfg.graceful_timeout
            ):
                self.log.warning("Sidecar %s outlived graceful_timeout; killing it", handle.name)
                handle.stop_requested = 0.0
                self._signal(handle, signal.SIGKILL)
            if (
                handle.wanted
                and not handle.pid
                and not handle.stopping
                and now >= handle.next_spawn
            ):
                self._spawn(handle)

    def stop(self, graceful: bool = True) -> None:
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        for handle in self.handles:
            handle.wanted = False
            if handle.pid:
                handle.stopping = True
                self._signal(handle, sig)
            else:
                self._cleanup_if_started(handle)

    def kill(self) -> None:
        for handle in self.handles:
            if handle.pid:
                self._signal(handle, signal.SIGKILL)

    def running(self) -> bool:
        return any(h.pid for h in self.handles)

    def statuses(self) -> list[tuple[str, Any]]:
        """``(name, status)`` of every running sidecar that has the optional
        ``status()`` (docs/seams.md): the control socket and /metrics show it.
        A failing ``status()`` is reported as ``{"error": ...}``, never raised."""
        out: list[tuple[str, Any]] = []
        for handle in self.handles:
            status = getattr(handle.sidecar, "status", None)
            if status is None or not handle.pid or handle.stopping:
                continue
            try:
                out.append((handle.name, status()))
            except Exception as exc:
                out.append((handle.name, {"error": f"{type(exc).__name__}: {exc}"}))
        return out

    def _signal(self, handle: _Handle, sig: int) -> None:
        try:
            os.kill(handle.pid, sig)
        except ProcessLookupError:
            pass

    def _cleanup_if_started(self, handle: _Handle) -> None:
        if handle.started:
            self._cleanup(handle)

    def _cleanup(self, handle: _Handle) -> None:
        handle.started = 0.0
        try:
            handle.sidecar.cleanup()
        except Exception:
            self.log.exception("sidecar %s: cleanup() failed", handle.name)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"

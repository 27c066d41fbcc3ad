"""The control socket: a Unix socket in the master that ``unicornc`` talks to.

Wire format: the client sends one command as a line of UTF-8 text
(``show workers\\n``); the master answers with one line of JSON,
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``, and
closes. Commands (``help`` lists them):

=======================  ===================================================
show workers             pid, age, uptime, requests served, RSS, busy/idle
show stats               master pid, uptime, worker counts, requests served
show config              the effective configuration
show dirty               the sidecars' status (the dirty pool's apps,
                         workers and queue depths)
worker add [N]           N more workers (default 1)
worker remove [N]        N fewer workers (never below 1)
reload                   like HUP: reload the configuration, new workers
shutdown [graceful|quick] like TERM (default) or QUIT
=======================  ===================================================

The socket file is created with ``control_socket_mode`` (0600) inside a
directory only its owner may enter; a directory others can write to without
the sticky bit is refused, since anyone could swap the socket there.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import time
from collections.abc import Callable
from typing import Any

from unicorn_core.errors import ConfigError
from unicorn_core.recycling import rss_bytes
from unicorn_core.settings import Setting

SECTION = "Control"
SOCKET_NAME = "unicorn.ctl"


def _mode(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("")
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if not text or any(c not in "01234567" for c in text):
            raise ValueError("an octal file mode such as 0600")
        value = int(text, 8)
    if not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValueError("an octal file mode such as 0600")
    return value


SETTINGS = (
    Setting(
        name="control_socket",
        section=SECTION,
        cli=("--control-socket",),
        meta="PATH",
        doc="The Unix socket `unicornc` talks to. By default "
        "`$XDG_RUNTIME_DIR/unicorn.ctl`, or `~/.unicorn/unicorn.ctl` when "
        "`XDG_RUNTIME_DIR` is not set; a missing directory is created with mode "
        "0700. When another running server holds the socket this one serves none "
        "until it is free (a warning says so).",
    ),
    Setting(
        name="control_socket_mode",
        section=SECTION,
        cli=("--control-socket-mode",),
        type=_mode,
        meta="MODE",
        default="0600",
        doc="The control socket's file mode, in octal (`0600`: only the owner "
        "may connect; `0660` lets the group in too).",
    ),
    Setting(
        name="control_socket_disable",
        section=SECTION,
        cli=("--no-control-socket", "--control-socket-disable"),
        type="bool",
        default=False,
        doc="Run without a control socket.",
    ),
)


def default_socket_path(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, SOCKET_NAME)
    return os.path.join(os.path.expanduser("~"), ".unicorn", SOCKET_NAME)


def socket_path(cfg: Any) -> str:
    return cfg.control_socket or default_socket_path()


class SocketInUse(Exception):
    """Another live server answers on the path."""


def _private_dir(directory: str) -> None:
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the control socket's directory {directory!r}: {exc.strerror}"
            ) from None
        return
    mode = os.stat(directory).st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        raise ConfigError(
            f"the control socket's directory {directory!r} is writable by everyone; "
            "use a private directory (mode 0700) for control_socket"
        )


def bind_control(path: str, mode: int) -> tuple[socket.socket, int]:
    """Listen at ``path``; returns the socket and the file's inode.

    Raises SocketInUse when a live server answers there, ConfigError when the
    path cannot be ours (not a socket, a public directory, no permission)."""
    _private_dir(os.path.dirname(os.path.abspath(path)))
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ConfigError(f"control_socket {path!r} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # a socket nobody listens on: left by a server that died
        else:
            raise SocketInUse(path)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # born 0600, then the configured mode
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"control_socket {path!r}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    sock.listen(16)
    return sock, os.stat(path).st_ino


def line_size(data: bytes) -> int:
    end = data.find(b"\n")
    return end + 1 if end >= 0 else 0


def jsonable(value: Any) -> Any:
    """A configuration value as JSON can carry it (hooks by their dotted name)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if callable(value):
        module = getattr(value, "__module__", None) or "?"
        name = getattr(value, "__qualname__", None) or type(value).__name__
        return f"{module}.{name}"
    return str(value)


class Commands:
    """What each command does to the arbiter; every method returns JSON data."""

    def __init__(self, arbiter: Any) -> None:
        self.arbiter = arbiter
        self.started = time.monotonic()
        self.table: dict[str, Callable[[list[str]], Any]] = {
            "help": self.help,
            "show workers": self.show_workers,
            "show stats": self.show_stats,
            "show config": self.show_config,
            "show dirty": self.show_dirty,
            "worker add": self.worker_add,
            "worker remove": self.worker_remove,
            "reload": self.reload,
            "shutdown": self.shutdown,
        }

    def run(self, line: str) -> dict[str, Any]:
        words = line.split()
        if not words:
            return {"ok": False, "error": "empty command; try 'help'"}
        for size in (2, 1):
            name = " ".join(words[:size]).lower()
            if name in self.table:
                try:
                    return {"ok": True, "result": self.table[name](words[size:])}
                except CommandError as exc:
                    return {"ok": False, "error": str(exc)}
        return {"ok": False, "error": f"unknown command {line.strip()!r}; try 'help'"}

    # show

    def help(self, args: list[str]) -> list[str]:
        return sorted(self.table)

    def show_workers(self, args: list[str]) -> list[dict[str, Any]]:
        now = time.monotonic()
        out = []
        for pid, worker in sorted(self.arbiter.workers.items(), key=lambda item: item[1].age):
            beat = worker.heartbeat
            if beat.closed:
                continue
            in_flight = beat.in_flight()
            if worker.stop_requested is not None:
                state = "stopping"
            elif in_flight is None:
                state = "running"  # the worker does not count requests begun
            else:
                state = "busy" if in_flight else "idle"
            out.append(
                {
                    "pid": pid,
                    "age": worker.age,
                    "uptime": round(now - worker.spawned_at, 3),
                    "requests": beat.served(),
                    "in_flight": in_flight,
                    "state": state,
                    "rss": rss_bytes(pid),
                    "last_beat": round(beat.age(), 3),
                }
            )
        return out

    def show_stats(self, args: list[str]) -> dict[str, Any]:
        arbiter = self.arbiter
        live = [w for w in arbiter.workers.values() if not w.heartbeat.closed]
        totals = arbiter.ops.totals
        return {
            "pid": arbiter.pid,
            "uptime": round(time.monotonic() - self.started, 3),
            "worker_class": arbiter.cfg.worker_class,
            "workers": len(arbiter.workers),
            "workers_target": arbiter.num_workers,
            "requests": totals.counts[0] + sum(w.heartbeat.served() for w in live),
            "in_flight": sum(w.heartbeat.in_flight() or 0 for w in live),
            "worker_starts": totals.worker_starts,
            "worker_exits": dict(totals.worker_exits),
            "listeners": [str(lis) for lis in arbiter.listeners],
        }

    def show_config(self, args: list[str]) -> dict[str, Any]:
        return {name: jsonable(value) for name, value in self.arbiter.cfg.items()}

    def show_dirty(self, args: list[str]) -> dict[str, Any]:
        return dict(self.arbiter.sidecars.statuses())

    # change

    def _count(self, args: list[str]) -> int:
        if not args:
            return 1
        if len(args) > 1 or not args[0].isdigit() or int(args[0]) < 1:
            raise CommandError(f"expected a positive number of workers, got {' '.join(args)!r}")
        return int(args[0])

    def worker_add(self, args: list[str]) -> dict[str, int]:
        count = self._count(args)
        arbiter = self.arbiter
        previous = arbiter.num_workers
        arbiter.num_workers = previous + count
        arbiter.manage_workers()
        return {"added": count, "previous": previous, "total": arbiter.num_workers}

    def worker_remove(self, args: list[str]) -> dict[str, int]:
        count = self._count(args)
        arbiter = self.arbiter
        previous = arbiter.num_workers
        if previous - count < 1:
            raise CommandError(f"cannot remove {count} of {previous} workers: at least 1 stays")
        arbiter.num_workers = previous - count
        arbiter.manage_workers()
        return {"removed": count, "previous": previous, "total": arbiter.num_workers}

    def reload(self, args: list[str]) -> dict[str, Any]:
        self.arbiter.sig_queue.append(signal.SIGHUP)
        return {"reload": "started", "old_workers": sorted(self.arbiter.workers)}

    def shutdown(self, args: list[str]) -> dict[str, str]:
        how = args[0].lower() if args else "graceful"
        if how not in ("graceful", "quick") or len(args) > 1:
            raise CommandError(f"shutdown takes 'graceful' or 'quick', got {' '.join(args)!r}")
        self.arbiter.sig_queue.append(signal.SIGTERM if how == "graceful" else signal.SIGQUIT)
        return {"shutdown": how}


class CommandError(Exception):
    """A command's arguments are wrong; the message says how."""


class ControlSocket:
    """Binds the socket (retrying while another server holds it) and answers."""

    RETRY_EVERY = 2.0

    def __init__(self, arbiter: Any) -> None:
        self.arbiter = arbiter
        self.commands = Commands(arbiter)
        self.server: Any = None
        self.path = ""
        self.inode = 0
        self._retry_at = 0.0
        self._warned = False

    def start(self) -> None:
        """Bind now; a ConfigError for an explicit path stops the server."""
        cfg = self.arbiter.cfg
        if cfg.control_socket_disable:
            return
        self.path = socket_path(cfg)
        try:
            self._bind()
        except ConfigError as exc:
            if cfg.control_socket:
                raise
            self.arbiter.log.warning("No control socket: %s", exc)
            self.path = ""

    def _bind(self) -> None:
        from unicorn_core.master_io import OneShotServer

        try:
            sock, self.inode = bind_control(self.path, _mode(self.arbiter.cfg.control_socket_mode))
        except SocketInUse:
            if not self._warned:
                self.arbiter.log.warning(
                    "Control socket %s is in use by another server; retrying every %.0fs "
                    "(set control_socket to give this one its own)",
                    self.path,
                    self.RETRY_EVERY,
                )
                self._warned = True
            self._retry_at = time.monotonic() + self.RETRY_EVERY
            return
        self.server = OneShotServer(sock, line_size, self._answer, self.arbiter.log.warning)
        self.arbiter.log.info("Control socket at: %s", self.path)

    def tick(self) -> None:
        if self.server is None and self.path and time.monotonic() >= self._retry_at:
            try:
                self._bind()
            except ConfigError as exc:
                self.arbiter.log.warning("No control socket: %s", exc)
                self.path = ""

    def _answer(self, request: bytes) -> bytes:
        try:
            line = request.decode("utf-8")
        except UnicodeDecodeError:
            reply: dict[str, Any] = {"ok": False, "error": "the command is not UTF-8 text"}
        else:
            try:
                reply = self.commands.run(line)
            except Exception as exc:
                self.arbiter.log.exception("control command %r failed", line.strip())
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return json.dumps(reply, separators=(",", ":")).encode() + b"\n"

    def close(self, unlink: bool = True) -> None:
        if self.server is None:
            return
        self.server.close()
        self.server = None
        if unlink:
            try:
                if os.stat(self.path).st_ino == self.inode:
                    os.unlink(self.path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    self.arbiter.log.warning("cannot remove %s: %s", self.path, exc)

    def close_in_child(self) -> None:
        if self.server is not None:
            self.server.close_in_child()
            self.server = None

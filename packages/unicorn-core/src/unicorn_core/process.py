"""The master's process: pid file, daemonizing, user and group, environment,
process titles and the parent-death signal."""

from __future__ import annotations

import ctypes
import ctypes.util
import grp
import os
import pwd
import signal
import socket
import sys
import tempfile
from typing import Any

from unicorn_core.errors import ConfigError
from unicorn_core.settings import Setting

SECTION = "Server Mechanics"


def _user(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            return pwd.getpwnam(value).pw_uid
        except KeyError:
            raise ValueError(f"no user named {value!r}") from None
    raise TypeError("")


def _group(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            return grp.getgrnam(value).gr_gid
        except KeyError:
            raise ValueError(f"no group named {value!r}") from None
    raise TypeError("")


def _raw_env(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError("")
    for item in value:
        if not isinstance(item, str) or "=" not in item or item.startswith("="):
            raise ValueError(f"{item!r} is not KEY=VALUE")
    return list(value)


def _umask(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip()
        value = (
            int(text, 0)
            if text[:2].lower() in ("0o", "0x")
            else int(text, 8 if text.startswith("0") else 10)
        )
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValueError("")
    return value


SETTINGS = (
    Setting(
        name="chdir",
        section=SECTION,
        cli=("--chdir",),
        meta="DIR",
        doc="Change to this directory before loading the application. "
        "By default unicorn stays in the directory it was started in.",
    ),
    Setting(
        name="daemon",
        section=SECTION,
        cli=("-D", "--daemon"),
        type="bool",
        default=False,
        doc="Detach from the terminal and run in the background.",
    ),
    Setting(
        name="raw_env",
        section=SECTION,
        cli=("-e", "--env"),
        type=_raw_env,
        repeat=True,
        meta="ENV",
        default=[],
        doc="Set an environment variable in the server and its workers, as "
        "`KEY=VALUE`; repeat the flag for several.",
    ),
    Setting(
        name="pidfile",
        section=SECTION,
        cli=("-p", "--pid"),
        meta="FILE",
        doc="Write the master's pid to this file. During a USR2 upgrade the old "
        "master keeps `FILE` and the new master writes `FILE.2`, renaming it to "
        "`FILE` once the old master has exited, as gunicorn does.",
    ),
    Setting(
        name="worker_tmp_dir",
        section=SECTION,
        cli=("--worker-tmp-dir",),
        meta="DIR",
        doc="Accepted for gunicorn compatibility and ignored: unicorn's worker "
        "heartbeat lives in shared memory, so there is no heartbeat file to place "
        "in a directory (gunicorn needs one on tmpfs to avoid disk stalls).",
    ),
    Setting(
        name="user",
        section=SECTION,
        cli=("-u", "--user"),
        type=_user,
        meta="USER",
        doc="Switch worker processes to this user (name or uid) after they fork. "
        "By default they keep the master's user.",
    ),
    Setting(
        name="group",
        section=SECTION,
        cli=("-g", "--group"),
        type=_group,
        meta="GROUP",
        doc="Switch worker processes to this group (name or gid) after they fork. "
        "By default they keep the master's group.",
    ),
    Setting(
        name="umask",
        section=SECTION,
        cli=("-m", "--umask"),
        type=_umask,
        meta="INT",
        default=0,
        doc="The file mode mask for files unicorn creates, such as Unix sockets "
        "(a socket gets mode `0o777 & ~umask`). Octal text such as `0o077` or `0077`.",
    ),
    Setting(
        name="initgroups",
        section=SECTION,
        cli=("--initgroups",),
        type="bool",
        default=False,
        doc="When switching user, also give workers the user's supplementary groups.",
    ),
    Setting(
        name="proc_name",
        section=SECTION,
        cli=("-n", "--name"),
        meta="STRING",
        doc="A name shown in `ps` and `top` for the master and workers (needs the "
        '`setproctitle` extra: `pip install "unicorn-core[setproctitle]"`). '
        "Defaults to `default_proc_name`.",
    ),
    Setting(
        name="default_proc_name",
        section=SECTION,
        meta="STRING",
        doc="The process name used when `proc_name` is not set. Left unset it is "
        "the application's name (`APP_MODULE`, or the ini file given to `--paste`), "
        "where gunicorn would show the same; an embedding application may set it.",
    ),
    Setting(
        name="enable_stdio_inheritance",
        section=SECTION,
        cli=("-R", "--enable-stdio-inheritance"),
        type="bool",
        default=False,
        doc="With `daemon`, keep the standard output and error the server was "
        "started with instead of sending them to `/dev/null` (standard input is "
        "always `/dev/null`). Set `PYTHONUNBUFFERED=1` to see output at once.",
    ),
)


def process_name(cfg: Any, app_loader: Any) -> str:
    """``proc_name``, else ``default_proc_name``, else the application's name."""
    return cfg.proc_name or cfg.default_proc_name or str(app_loader)


class Pidfile:
    """A pid file written atomically and removed only if it still holds our pid."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid: int | None = None

    def create(self, pid: int) -> None:
        old = self.read()
        if old and old != pid and _pid_alive(old):
            raise ConfigError(f"already running on pid {old} (or pid file {self.path!r} is stale)")
        self.pid = pid
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".unicorn-pid-", dir=directory)
        with os.fdopen(fd, "w") as f:
            f.write(f"{pid}\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)

    def rename(self, path: str) -> None:
        os.replace(self.path, path)
        self.path = path

    def read(self) -> int | None:
        try:
            with open(self.path) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def unlink(self) -> None:
        if self.read() == self.pid:
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def daemonize(keep_stdio: bool = False) -> None:
    """Detach: fork twice with a new session between, stdin on /dev/null and,
    unless ``keep_stdio`` (``enable_stdio_inheritance``), stdout and stderr too."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.umask(0o22)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0,) if keep_stdio else (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)


def drop_privileges(uid: int | None, gid: int | None, initgroups: bool = False) -> None:
    """Switch to ``uid``/``gid`` when set and different from ours (workers call this)."""
    if gid is not None and gid != os.getegid():
        os.setgid(gid)
    if uid is not None and initgroups and uid != os.geteuid():
        os.initgroups(pwd.getpwuid(uid).pw_name, gid if gid is not None else os.getegid())
    if uid is not None and uid != os.geteuid():
        os.setuid(uid)


try:
    from setproctitle import setproctitle as _setproctitle
except ImportError:  # the optional [setproctitle] extra is not installed
    _setproctitle = None


def set_process_title(title: str) -> None:
    """``unicorn: master [name]`` in ps, when setproctitle is installed."""
    if _setproctitle is not None:
        _setproctitle(f"unicorn: {title}")


_PR_SET_PDEATHSIG = 1
_libc: Any = None


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def sd_notify(state: str) -> None:
    """Tell systemd (``Type=notify``) about our state, when it asked to know."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), path)
        except OSError:
            pass

"""Process plumbing shared by the dirty arbiter and its workers: parent-death signal,
process titles, log reopening, signal wake-ups."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import sys

_PR_SET_PDEATHSIG = 1
_libc = None


def set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send `sig` to this process when its parent dies (no-op elsewhere)."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def set_proc_title(title: str) -> None:
    try:
        import setproctitle  # optional, like gunicorn
    except ImportError:
        return
    setproctitle.setproctitle(title)


def reopen_log_files() -> None:
    """USR1: reopen every logging file handler (after logrotate moved the files)."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    seen = set()
    for lg in loggers:
        for h in lg.handlers:
            if id(h) in seen or not isinstance(h, logging.FileHandler):
                continue
            seen.add(id(h))
            h.acquire()
            try:
                if h.stream is not None:
                    with contextlib.suppress(OSError):
                        h.stream.close()
                h.stream = h._open()
            finally:
                h.release()


class SignalQueue:
    """Signals recorded by their handlers and read by a select loop through a wake-up socket."""

    def __init__(self, signals: list[int]) -> None:
        self.pending: list[int] = []
        self.rsock, self.wsock = socket.socketpair()
        self.rsock.setblocking(False)
        self.wsock.setblocking(False)
        signal.set_wakeup_fd(self.wsock.fileno(), warn_on_full_buffer=False)
        for sig in signals:
            signal.signal(sig, self._handler)

    def _handler(self, sig: int, frame: object) -> None:
        self.pending.append(sig)

    def drain(self) -> list[int]:
        with contextlib.suppress(OSError):
            while self.rsock.recv(4096):
                pass
        sigs, self.pending = self.pending, []
        return sigs

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        self.rsock.close()
        self.wsock.close()


def reset_signals(signals: list[int]) -> None:
    for sig in signals:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

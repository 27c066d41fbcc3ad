"""``--reload``: restart workers when the application's source changes.

Each worker runs a watcher thread over the files of its imported modules plus
``reload_extra_files``. On a change it calls back into the worker, which
stops gracefully; the arbiter then starts a fresh worker that imports the new
code. Two engines: ``poll`` (stat every second; always works) and
``inotify`` (Linux, through ctypes; no extra package needed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import sys
import threading
from collections.abc import Callable, Iterable

from unicorn_core.settings import Setting

SECTION = "Debugging"
POLL_INTERVAL = 1.0

SETTINGS = (
    Setting(
        name="reload",
        section=SECTION,
        cli=("--reload",),
        type="bool",
        default=False,
        doc="Restart workers when a source file of the application changes. For "
        "development: each worker watches every module it imported.",
    ),
    Setting(
        name="reload_engine",
        section=SECTION,
        cli=("--reload-engine",),
        type="choice",
        choices=("auto", "poll", "inotify"),
        meta="STRING",
        default="auto",
        doc="How `reload` notices changes: `inotify` (Linux), `poll` (stat every "
        "file each second) or `auto` (inotify when available, else poll).",
    ),
    Setting(
        name="reload_extra_files",
        section=SECTION,
        cli=("--reload-extra-file",),
        type="list",
        meta="FILES",
        default=[],
        doc="More files to watch with `reload` (templates, config); repeat the flag.",
    ),
)


def module_files() -> set[str]:
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and not path.startswith("<"):
            files.add(os.path.abspath(path))
    return files


class PollReloader(threading.Thread):
    """Stat every watched file once a second; call back with the first changed path."""

    def __init__(
        self,
        extra_files: Iterable[str],
        callback: Callable[[str], None],
        interval: float = POLL_INTERVAL,
    ) -> None:
        super().__init__(name="unicorn-reloader", daemon=True)
        self.extra_files = {os.path.abspath(f) for f in extra_files}
        self.callback = callback
        self.interval = interval
        self._known: dict[str, float] = {}
        self._stopping = threading.Event()

    def _mtimes(self) -> dict[str, float]:
        out = {}
        for path in module_files() | self.extra_files:
            try:
                out[path] = os.stat(path).st_mtime
            except OSError:
                continue
        return out

    def start(self) -> None:
        # the first snapshot is taken before returning, so no change is missed
        self._known = self._mtimes()
        super().start()

    def run(self) -> None:
        known = self._known
        while not self._stopping.wait(self.interval):
            for path, mtime in self._mtimes().items():
                old = known.get(path)
                known[path] = mtime
                if old is not None and old != mtime:
                    self.callback(path)
                    return

    def stop(self) -> None:
        self._stopping.set()


_IN_MODIFY = 0x002
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")
_MASK = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if not name:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    return libc if hasattr(libc, "inotify_init1") else None


class InotifyReloader(threading.Thread):
    """Watch the directories of the watched files with inotify (Linux)."""

    def __init__(self, extra_files: Iterable[str], callback: Callable[[str], None]) -> None:
        super().__init__(name="unicorn-reloader", daemon=True)
        libc = _libc()
        if libc is None:
            raise OSError("inotify is not available")
        self._libc = libc
        self.extra_files = {os.path.abspath(f) for f in extra_files}
        self.callback = callback
        self._fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._dirs: dict[int, str] = {}
        self._watched: set[str] = set()
        self._stopping = threading.Event()

    def _refresh(self) -> None:
        files = module_files() | self.extra_files
        self._watched = files
        known = set(self._dirs.values())
        for directory in {os.path.dirname(f) for f in files} - known:
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(directory), _MASK)
            if wd >= 0:
                self._dirs[wd] = directory

    def start(self) -> None:
        self._refresh()  # watches are in place before returning
        super().start()

    def run(self) -> None:
        while not self._stopping.is_set():
            ready, _, _ = select.select([self._fd], [], [], POLL_INTERVAL)
            if not ready:
                self._refresh()  # pick up modules imported since
                continue
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = data[offset : offset + length].rstrip(b"\0")
                offset += length
                directory = self._dirs.get(wd)
                if directory is None or not name:
                    continue
                path = os.path.join(directory, os.fsdecode(name))
                if path in self._watched:
                    self.callback(path)
                    return

    def stop(self) -> None:
        self._stopping.set()


def make_reloader(
    engine: str, extra_files: Iterable[str], callback: Callable[[str], None]
) -> threading.Thread:
    """The reloader thread for ``reload_engine`` (not started)."""
    if engine in ("auto", "inotify"):
        try:
            return InotifyReloader(extra_files, callback)
        except OSError:
            if engine == "inotify":
                raise
    return PollReloader(extra_files, callback)

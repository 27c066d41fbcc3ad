"""The worker heartbeat: a page of shared memory per worker.

The arbiter maps it before forking; the worker stores ``time.monotonic()``
in it (``beat()``, no system call) and the arbiter reads it to find workers
stuck for longer than ``timeout``. A worker that cannot boot writes the
reason in the same page before exiting, so the arbiter can stop with the
cause rather than a bare exit code.
"""

from __future__ import annotations

import mmap
import struct
import time

_STAMP = struct.Struct("d")
_NOTE_LEN = struct.Struct("H")
_NOTE_AT = _STAMP.size
_TEXT_AT = _NOTE_AT + _NOTE_LEN.size
_SIZE = mmap.PAGESIZE
_MAX_NOTE = _SIZE - _TEXT_AT


class Heartbeat:
    """Shared between the arbiter and one worker (created before fork)."""

    __slots__ = ("_mem",)

    def __init__(self) -> None:
        # an anonymous mapping is MAP_SHARED: both sides of a fork see writes
        self._mem = mmap.mmap(-1, _SIZE)
        self.beat()

    def beat(self) -> None:
        _STAMP.pack_into(self._mem, 0, time.monotonic())

    def last_beat(self) -> float:
        return _STAMP.unpack_from(self._mem, 0)[0]

    def age(self) -> float:
        """Seconds since the last beat."""
        return time.monotonic() - self.last_beat()

    def write_note(self, text: str) -> None:
        data = text.encode("utf-8", "replace")[:_MAX_NOTE]
        self._mem[_TEXT_AT : _TEXT_AT + len(data)] = data
        _NOTE_LEN.pack_into(self._mem, _NOTE_AT, len(data))

    def read_note(self) -> str:
        (length,) = _NOTE_LEN.unpack_from(self._mem, _NOTE_AT)
        return self._mem[_TEXT_AT : _TEXT_AT + length].decode("utf-8", "replace")

    def close(self) -> None:
        if not self._mem.closed:
            self._mem.close()

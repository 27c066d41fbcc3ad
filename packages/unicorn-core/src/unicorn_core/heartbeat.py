"""The worker heartbeat: shared memory per worker.

The arbiter maps it before forking; the worker stores ``time.monotonic()``
in it (``beat()``, no system call) and the arbiter reads it to find workers
stuck for longer than ``timeout``. A worker that cannot boot writes the
reason in the same page before exiting, so the arbiter can stop with the
cause rather than a bare exit code.

Behind that first page lie the worker's counters, 64-bit slots the worker
bumps in place and the master reads whenever it is asked (``unicornc``,
``/metrics``): requests served and started (busy or idle), why the worker
exits by itself, and the request metrics of :mod:`unicorn_core.metrics`. A
slot is a ``memoryview`` item: ``counts[i] += 1`` is a few bytecodes, no
lock and no system call. Only the worker writes, so a reader sees each slot
whole (aligned 8-byte stores); the gthread worker's threads may in rare
interleavings lose an increment, which a metric tolerates.
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

#: slots of the counter area (unsigned 64-bit each)
SERVED = 0  # requests finished (``Worker.handled_request``)
STARTED = 1  # requests begun (the pre_request edge); STARTED - SERVED are in flight
EXIT_CAUSE = 2  # why the worker is stopping by itself (an index of EXIT_CAUSES), 0: not
SUM_SLOT = 3  # a float: the sum of request durations in seconds (the 'd' view)
COUNTS_STARTS = 4  # 1 once the worker counts requests begun (else busy/idle is unknown)
FIRST_METRIC = 8  # where unicorn_core.metrics lays out its slots
#: the worker's own reasons to stop (the master knows its own)
EXIT_CAUSES = ("", "max_requests", "reloader", "request_timeout")
#: pages of counters behind the heartbeat page; anonymous pages cost memory
#: only once written, so the unused part of the area is free
COUNTER_BYTES = 16 * mmap.PAGESIZE
COUNTER_SLOTS = COUNTER_BYTES // 8


class Heartbeat:
    """Shared between the arbiter and one worker (created before fork)."""

    __slots__ = ("_mem", "counts", "floats")

    def __init__(self) -> None:
        # an anonymous mapping is MAP_SHARED: both sides of a fork see writes
        self._mem = mmap.mmap(-1, _SIZE + COUNTER_BYTES)
        area = memoryview(self._mem)[_SIZE:]
        #: the counter slots, as unsigned 64-bit integers
        self.counts = area.cast("Q")
        #: the same slots seen as doubles (only SUM_SLOT is one)
        self.floats = area.cast("d")
        area.release()
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

    # counters

    def served(self) -> int:
        return self.counts[SERVED]

    def in_flight(self) -> int | None:
        """Requests begun and not finished; None when the worker does not count
        requests begun (see unicorn_core.metrics)."""
        if not self.counts[COUNTS_STARTS]:
            return None
        return max(0, self.counts[STARTED] - self.counts[SERVED])

    def set_exit_cause(self, cause: str) -> None:
        self.counts[EXIT_CAUSE] = EXIT_CAUSES.index(cause)

    def exit_cause(self) -> str:
        index = self.counts[EXIT_CAUSE]
        return EXIT_CAUSES[index] if index < len(EXIT_CAUSES) else ""

    @property
    def closed(self) -> bool:
        return self._mem.closed

    def close(self) -> None:
        if not self._mem.closed:
            self.counts.release()
            self.floats.release()
            self._mem.close()

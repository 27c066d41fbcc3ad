"""Recycling workers by memory and by age, beside ``max_requests``.

The master reads each worker's resident set size from ``/proc/PID/statm``
once per main-loop turn (about a second) and compares its age with a
deadline drawn at fork. A worker over either limit is replaced the graceful
way: the master forks its successor at once and sends the old one TERM, so
the old worker finishes the requests it holds while the new one (and the
listen backlog) takes the next ones. No request fails.
"""

from __future__ import annotations

import os
import random
import re
import time
from typing import Any

from unicorn_core.settings import Setting

SECTION = "Worker Processes"

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgKMG]i?[bB]?|[bB])?\s*$")
_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _memory_size(value: Any) -> int:
    """MiB as an integer, or a size with a unit: ``512M``, ``2G``, ``300MiB``."""
    if isinstance(value, bool):
        raise TypeError("")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value * 1024**2
    if not isinstance(value, str):
        raise TypeError("")
    match = _SIZE.match(value)
    if match is None:
        raise ValueError("a number of MiB or a size such as 512M or 2G")
    number, unit = int(match.group(1)), (match.group(2) or "m")[0].lower()
    return number * _UNITS[unit]


SETTINGS = (
    Setting(
        name="max_worker_memory",
        section=SECTION,
        cli=("--max-worker-memory",),
        type=_memory_size,
        meta="SIZE",
        default=0,
        doc="Replace a worker whose resident memory (RSS) grows past this size: "
        "a number of MiB or a size with a unit (`512M`, `2G`). The master forks "
        "the successor first and stops the old worker gracefully, so it finishes "
        "its requests. Checked about once a second. 0 never replaces.",
    ),
    Setting(
        name="max_worker_lifetime",
        section=SECTION,
        cli=("--max-worker-lifetime",),
        type="positive_int",
        meta="SECONDS",
        default=0,
        doc="Replace a worker, gracefully, once it has run this many seconds. 0 never replaces.",
    ),
    Setting(
        name="max_worker_lifetime_jitter",
        section=SECTION,
        cli=("--max-worker-lifetime-jitter",),
        type="positive_int",
        meta="SECONDS",
        default=0,
        doc="Add a random number of seconds between 0 and this to each worker's "
        "`max_worker_lifetime`, so workers started together are not all replaced "
        "at once.",
    ),
)

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int | None:
    """The resident set size of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


class Recycler:
    """Decides which workers have outgrown their memory or their lifetime."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def deadline(self) -> float:
        """The monotonic time a worker forked now should retire at (0: never)."""
        lifetime = self.cfg.max_worker_lifetime
        if not lifetime:
            return 0.0
        jitter = self.cfg.max_worker_lifetime_jitter
        return time.monotonic() + lifetime + (random.uniform(0, jitter) if jitter else 0.0)

    def due(self, workers: dict[int, Any]) -> list[tuple[int, str, str]]:
        """``(pid, cause, detail)`` of every running worker to replace now."""
        limit = self.cfg.max_worker_memory
        now = time.monotonic()
        out = []
        for pid, worker in workers.items():
            if worker.stop_requested is not None:
                continue
            retire_at = getattr(worker, "retire_at", 0.0)
            if retire_at and now >= retire_at:
                age = now - worker.spawned_at
                out.append((pid, "max_worker_lifetime", f"ran {age:.0f}s"))
                continue
            if limit:
                rss = rss_bytes(pid)
                if rss is not None and rss > limit:
                    out.append(
                        (pid, "max_worker_memory", f"RSS {rss >> 20} MiB > {limit >> 20} MiB")
                    )
        return out

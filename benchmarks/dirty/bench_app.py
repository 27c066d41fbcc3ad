"""The dirty app the benchmark runs: a 10 ms sleep, a no-op and a short stream."""

from __future__ import annotations

import time

from unicorn_dirty import DirtyApp


class BenchApp(DirtyApp):
    def sleep(self, ms: float = 10.0) -> None:
        time.sleep(ms / 1000.0)

    def noop(self) -> None:
        return None

    def stream(self, n: int = 5):
        yield from range(n)

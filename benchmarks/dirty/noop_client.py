"""Runs in its own process: N sequential no-op calls, prints round-trip times (µs) as JSON."""

from __future__ import annotations

import json
import sys
import time

from unicorn_dirty import DirtyClient

path, n = sys.argv[1], int(sys.argv[2])
client = DirtyClient(path)
for _ in range(200):  # warm up
    client.execute("bench_app:BenchApp", "noop")
times = []
for _ in range(n):
    t = time.perf_counter()
    client.execute("bench_app:BenchApp", "noop")
    times.append((time.perf_counter() - t) * 1e6)
json.dump(times, sys.stdout)

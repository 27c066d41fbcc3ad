"""Runs in its own process: N sequential no-op calls, prints round-trip times (µs) as JSON.

python noop_client.py SOCKET N [unicorn|gunicorn]
"""

from __future__ import annotations

import json
import sys
import time

path, n = sys.argv[1], int(sys.argv[2])
if len(sys.argv) > 3 and sys.argv[3] == "gunicorn":
    from gunicorn.dirty import DirtyClient

    app = "gunicorn_peer:PeerBenchApp"
else:
    from unicorn_dirty import DirtyClient

    app = "bench_app:BenchApp"
client = DirtyClient(path)
for _ in range(200):  # warm up
    client.execute(app, "noop")
times = []
for _ in range(n):
    t = time.perf_counter()
    client.execute(app, "noop")
    times.append((time.perf_counter() - t) * 1e6)
json.dump(times, sys.stdout)

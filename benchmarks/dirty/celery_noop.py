"""The same no-op through Celery with a local Redis (only when both are installed)."""

from __future__ import annotations

import json
import os
import sys
import time

from celery import Celery

app = Celery(
    "celery_noop", broker=os.environ.get("BENCH_REDIS"), backend=os.environ.get("BENCH_REDIS")
)


@app.task
def noop():
    return None


if __name__ == "__main__":
    n = int(sys.argv[1])
    for _ in range(20):
        noop.delay().get(timeout=10)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        noop.delay().get(timeout=10)
        times.append((time.perf_counter() - t) * 1e6)
    json.dump(times, sys.stdout)

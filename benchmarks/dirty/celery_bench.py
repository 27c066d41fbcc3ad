"""Celery with a local Redis doing the benchmark's tasks: a 10 ms sleep and a no-op.

    python celery_bench.py throughput CONCURRENCY TOTAL   # prints {"rps", "p50_ms", "p99_ms", "failures"}
    python celery_bench.py noop N                         # prints round-trip times (µs)

The worker is `celery -A celery_bench worker`; BENCH_REDIS names the broker and result backend.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from celery import Celery

app = Celery(
    "celery_bench", broker=os.environ.get("BENCH_REDIS"), backend=os.environ.get("BENCH_REDIS")
)
app.conf.update(task_acks_late=False, worker_prefetch_multiplier=4, result_expires=300)


@app.task
def sleep(ms: float = 10.0) -> None:
    time.sleep(ms / 1000.0)


@app.task
def noop() -> None:
    return None


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else 0.0


def throughput(concurrency: int, total: int) -> dict:
    """`concurrency` callers (threads), each sending a task and waiting for its result."""
    for _ in range(20):
        noop.delay().get(timeout=10)
    todo = iter(range(total))
    lock = threading.Lock()
    latencies: list[float] = []
    failures = 0

    def caller() -> None:
        nonlocal failures
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            t = time.perf_counter()
            try:
                sleep.delay(10.0).get(timeout=60)
            except Exception:
                with lock:
                    failures += 1
                continue
            with lock:
                latencies.append((time.perf_counter() - t) * 1000)

    threads = [threading.Thread(target=caller) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": _pct(latencies, 0.99),
        "failures": failures,
    }


def noop_times(n: int) -> list[float]:
    for _ in range(20):
        noop.delay().get(timeout=10)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        noop.delay().get(timeout=10)
        times.append((time.perf_counter() - t) * 1e6)
    return times


if __name__ == "__main__":
    if sys.argv[1] == "throughput":
        json.dump(throughput(int(sys.argv[2]), int(sys.argv[3])), sys.stdout)
    else:
        json.dump(noop_times(int(sys.argv[2])), sys.stdout)

"""Benchmark the dirty pool directly (no HTTP): throughput of 10 ms tasks, no-op round trip,
first-chunk latency, and the same no-op through Celery + Redis when both are installed.

    uv run --no-sync python benchmarks/dirty/bench_dirty.py [--workers 4] [--quick]

Runs are short on purpose (the machines are small and shared). Reference
numbers are those quoted in issue 5 for gunicorn's dirty pool and Celery on
this kind of machine; the ratio column is ours / reference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from unicorn_dirty import AsyncDirtyClient, DirtyClient, DirtyConnectionError

HERE = Path(__file__).resolve().parent
APP = "bench_app:BenchApp"
REFERENCE = {  # issue 5: gunicorn's dirty pool / Celery with Redis, same kind of machine
    "throughput": 369.0,
    "noop_p50": 386.0,
    "celery_noop_p50": 2011.0,
}


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [e.get("PYTHONPATH")])])
    return e


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def start_pool(workers: int, tmp: str) -> subprocess.Popen:
    path = os.path.join(tmp, "bench.sock")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unicorn_dirty.cli",
            APP,
            "-w",
            str(workers),
            "--socket",
            path,
            "--log-level",
            "warning",
        ],
        env=env(),
    )
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            status = DirtyClient(path).status()
            if sum(w["ready"] for w in status["workers"]) == workers:
                return proc
        except DirtyConnectionError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("dirty pool did not start")


async def throughput(path: str, concurrency: int, total: int) -> dict:
    client = AsyncDirtyClient(path)
    await client.connect()
    latencies: list[float] = []
    failures = 0
    todo = iter(range(total))

    async def runner():
        nonlocal failures
        for _ in todo:
            t = time.perf_counter()
            try:
                await client.execute_async(APP, "sleep", 10.0)
            except Exception:
                failures += 1
                continue
            latencies.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*[runner() for _ in range(concurrency)])
    elapsed = time.perf_counter() - start
    await client.close()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
        "failures": failures,
    }


def noop_from_other_process(path: str, n: int) -> list[float]:
    out = subprocess.run(
        [sys.executable, str(HERE / "noop_client.py"), path, str(n)],
        env=env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def first_chunk(path: str, n: int) -> list[float]:
    client = DirtyClient(path)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        it = client.stream(APP, "stream", 5)
        next(it)
        times.append((time.perf_counter() - t) * 1e6)
        for _ in it:
            pass
    return times


def celery_noop(n: int) -> list[float] | None:
    redis = shutil.which("redis-server")
    try:
        import celery  # noqa: F401
    except ImportError:
        return None
    if not redis:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    server = subprocess.Popen(
        [redis, "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    e = env()
    e["BENCH_REDIS"] = url
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_noop",
            "worker",
            "-c",
            "1",
            "-P",
            "solo",
            "--loglevel",
            "warning",
        ],
        env=e,
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2.0)  # let the worker subscribe
        out = subprocess.run(
            [sys.executable, str(HERE / "celery_noop.py"), str(n)],
            env=e,
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return json.loads(out.stdout) if out.returncode == 0 else None
    finally:
        worker.send_signal(signal.SIGTERM)
        server.send_signal(signal.SIGTERM)
        worker.wait(10)
        server.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="fewer requests (for CI smoke runs)")
    args = ap.parse_args()
    scale = 0.25 if args.quick else 1.0
    tmp = tempfile.mkdtemp(prefix="ud-bench-")
    proc = start_pool(args.workers, tmp)
    path = os.path.join(tmp, "bench.sock")
    rows = []
    try:
        for c in (1, 16, 100, 200):
            total = int({1: 150, 16: 600, 100: 1000, 200: 1000}[c] * scale)
            r = asyncio.run(throughput(path, c, total))
            ref = REFERENCE["throughput"] if c >= 100 else None
            rows.append(
                (
                    f"10 ms task, concurrency {c}",
                    f"{r['rps']:.0f} req/s",
                    f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, {r['failures']} failed",
                    f"{r['rps'] / ref:.2f}x gunicorn ({ref:.0f}/s)" if ref else "",
                )
            )
        noop = noop_from_other_process(path, int(4000 * scale))
        p50 = pct(noop, 0.5)
        rows.append(
            (
                "no-op round trip (other process)",
                f"p50 {p50:.0f} µs",
                f"p99 {pct(noop, 0.99):.0f} µs",
                f"{REFERENCE['noop_p50'] / p50:.1f}x faster than gunicorn ({REFERENCE['noop_p50']:.0f} µs), "
                f"{REFERENCE['celery_noop_p50'] / p50:.1f}x than Celery ({REFERENCE['celery_noop_p50']:.0f} µs)",
            )
        )
        fc = first_chunk(path, int(400 * scale))
        rows.append(
            (
                "stream first-chunk latency",
                f"p50 {pct(fc, 0.5):.0f} µs",
                f"p99 {pct(fc, 0.99):.0f} µs",
                "",
            )
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    cel = celery_noop(int(1000 * scale))
    if cel is None:
        rows.append(
            (
                "Celery + Redis no-op round trip",
                "skipped",
                "celery or redis-server not installed",
                "",
            )
        )
    else:
        cp50 = pct(cel, 0.5)
        rows.append(
            (
                "Celery + Redis no-op round trip",
                f"p50 {cp50:.0f} µs",
                f"p99 {pct(cel, 0.99):.0f} µs",
                f"unicorn-dirty is {cp50 / p50:.1f}x faster",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(
        f"unicorn-dirty direct benchmark, {args.workers} workers, 1 thread each, {os.cpu_count()} CPUs"
    )
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()

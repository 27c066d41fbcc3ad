"""Benchmark the dirty pool directly (no HTTP): throughput of 10 ms tasks, no-op round trip,
first-chunk latency, and the same no-op through Celery + Redis when both are installed.

    uv run --no-sync python benchmarks/dirty/bench_dirty.py [--workers 4] [--quick]

Runs are short on purpose (the machines are small and shared). When gunicorn
(>= 27, with dirty arbiters) is installed its pool runs the same tasks in the
same run; otherwise, and for Celery when celery or redis-server is missing,
the numbers quoted in issue 5 for this kind of machine stand in.
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

from unicorn_dirty import AsyncDirtyClient, DirtyClient

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


def wait_pool(ping, proc: subprocess.Popen, what: str) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            if ping():
                return
        except Exception:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{what} did not start")


class Target:
    """One pool under test: how to start it and how to call it."""

    name = "unicorn-dirty"
    app = APP
    flavour = "unicorn"

    def __init__(self, workers: int, tmp: str) -> None:
        self.workers = workers
        self.path = os.path.join(tmp, "bench.sock")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "unicorn_dirty.cli",
                APP,
                "-w",
                str(workers),
                "--socket",
                self.path,
                "--log-level",
                "warning",
            ],
            env=env(),
        )
        wait_pool(self._ready, self.proc, self.name)

    def _ready(self) -> bool:
        return sum(w["ready"] for w in DirtyClient(self.path).status()["workers"]) == self.workers

    def sync_client(self):
        return DirtyClient(self.path)

    def async_clients(self, n: int) -> list:
        client = AsyncDirtyClient(self.path)  # one connection carries every concurrent call
        return [client] * n

    async def close_async(self, clients: list) -> None:
        await clients[0].close()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


class GunicornTarget(Target):
    """gunicorn 27's dirty pool with the same tasks; one client per concurrent caller."""

    name = "gunicorn dirty"
    app = "gunicorn_peer:PeerBenchApp"
    flavour = "gunicorn"

    def __init__(self, workers: int, tmp: str) -> None:
        self.workers = workers
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "gunicorn_peer:application",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                "1",
                "--dirty-app",
                self.app,
                "--dirty-workers",
                str(workers),
                "--log-level",
                "warning",
            ],
            env=env(),
            cwd=HERE,
        )
        self.path = ""
        wait_pool(self._ready, self.proc, self.name)

    def _ready(self) -> bool:
        import urllib.request

        if not self.path:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as r:
                self.path = r.read().decode()
        from gunicorn.dirty import DirtyClient as GClient

        client = GClient(self.path)
        try:
            # every worker must be up: as many parallel sleeps as workers finish in one round
            client.execute(self.app, "noop")
        finally:
            client.close()
        time.sleep(1.0)
        return True

    def sync_client(self):
        from gunicorn.dirty import DirtyClient as GClient

        return GClient(self.path)

    def async_clients(self, n: int) -> list:
        from gunicorn.dirty import DirtyClient as GClient

        return [GClient(self.path) for _ in range(n)]

    async def close_async(self, clients: list) -> None:
        for c in clients:
            await c.close_async()


async def throughput(target: Target, concurrency: int, total: int) -> dict:
    clients = target.async_clients(concurrency)
    latencies: list[float] = []
    failures = 0
    todo = iter(range(total))

    async def runner(client):
        nonlocal failures
        for _ in todo:
            t = time.perf_counter()
            try:
                await client.execute_async(target.app, "sleep", 10.0)
            except Exception:
                failures += 1
                continue
            latencies.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*[runner(c) for c in clients])
    elapsed = time.perf_counter() - start
    await target.close_async(clients)
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 0.5) if latencies else 0.0,
        "p99_ms": pct(latencies, 0.99) if latencies else 0.0,
        "failures": failures,
    }


def noop_from_other_process(target: Target, n: int) -> list[float]:
    out = subprocess.run(
        [sys.executable, str(HERE / "noop_client.py"), target.path, str(n), target.flavour],
        env=env(),
        cwd=HERE,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def first_chunk(target: Target, n: int) -> list[float]:
    client = target.sync_client()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        it = iter(client.stream(target.app, "stream", 5))
        next(it)
        times.append((time.perf_counter() - t) * 1e6)
        for _ in it:
            pass
    client.close()
    return times


def measure(target_cls: type[Target], workers: int, scale: float) -> dict[str, dict]:
    tmp = tempfile.mkdtemp(prefix="ud-bench-")
    target = target_cls(workers, tmp)
    results: dict[str, dict] = {}
    try:
        for c in (1, 16, 100, 200):
            total = int({1: 150, 16: 600, 100: 1000, 200: 1000}[c] * scale)
            results[f"c{c}"] = asyncio.run(throughput(target, c, total))
        noop = noop_from_other_process(target, int(4000 * scale))
        results["noop"] = {"p50": pct(noop, 0.5), "p99": pct(noop, 0.99)}
        fc = first_chunk(target, int(400 * scale))
        results["chunk"] = {"p50": pct(fc, 0.5), "p99": pct(fc, 0.99)}
    finally:
        target.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


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
    ap.add_argument("--no-peers", action="store_true", help="measure unicorn-dirty only")
    args = ap.parse_args()
    scale = 0.25 if args.quick else 1.0
    ours = measure(Target, args.workers, scale)
    peer = None
    if not args.no_peers:
        try:
            import gunicorn.dirty  # noqa: F401

            peer = measure(GunicornTarget, args.workers, scale)
        except ImportError:
            peer = None
    cel = None if args.no_peers else celery_noop(int(1000 * scale))

    peer_name = (
        "peer: gunicorn 27 dirty pool, same run" if peer else "peer: gunicorn (issue 5 figures)"
    )
    rows = [("measurement", "unicorn-dirty", peer_name, "ratio")]
    for c in (1, 16, 100, 200):
        r = ours[f"c{c}"]
        mine = f"{r['rps']:.0f}/s p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} ms, {r['failures']} failed"
        if peer:
            p = peer[f"c{c}"]
            theirs = f"{p['rps']:.0f}/s p50 {p['p50_ms']:.1f} p99 {p['p99_ms']:.1f} ms, {p['failures']} failed"
            ratio = f"{r['rps'] / p['rps']:.2f}x" if p["rps"] else ""
        else:
            ref = REFERENCE["throughput"] if c >= 100 else None
            theirs = f"{ref:.0f}/s" if ref else "-"
            ratio = f"{r['rps'] / ref:.2f}x" if ref else ""
        rows.append((f"10 ms tasks, concurrency {c}", mine, theirs, ratio))
    n = ours["noop"]
    pn = peer["noop"] if peer else {"p50": REFERENCE["noop_p50"], "p99": float("nan")}
    rows.append(
        (
            "no-op round trip, other process",
            f"p50 {n['p50']:.0f} µs, p99 {n['p99']:.0f} µs",
            f"p50 {pn['p50']:.0f} µs, p99 {pn['p99']:.0f} µs",
            f"{pn['p50'] / n['p50']:.1f}x faster",
        )
    )
    fc = ours["chunk"]
    pc = peer["chunk"] if peer else None
    rows.append(
        (
            "stream first chunk",
            f"p50 {fc['p50']:.0f} µs, p99 {fc['p99']:.0f} µs",
            f"p50 {pc['p50']:.0f} µs, p99 {pc['p99']:.0f} µs" if pc else "-",
            f"{pc['p50'] / fc['p50']:.1f}x faster" if pc else "",
        )
    )
    if cel is None:
        rows.append(
            (
                "no-op vs Celery 5 + Redis",
                f"p50 {n['p50']:.0f} µs",
                f"Celery: p50 {REFERENCE['celery_noop_p50']:.0f} µs (issue 5; not installed here)",
                f"{REFERENCE['celery_noop_p50'] / n['p50']:.1f}x faster",
            )
        )
    else:
        cp50 = pct(cel, 0.5)
        rows.append(
            (
                "no-op vs Celery 5 + Redis",
                f"p50 {n['p50']:.0f} µs",
                f"Celery, same run: p50 {cp50:.0f} µs, p99 {pct(cel, 0.99):.0f} µs",
                f"{cp50 / n['p50']:.1f}x faster",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(
        f"dirty pools, direct (no HTTP): {args.workers} workers x 1 thread, {os.cpu_count()} CPUs"
    )
    for i, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    main()

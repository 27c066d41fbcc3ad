"""The dirty pool's two backends side by side, with Celery + Redis, in one run.

    uv run --no-sync python benchmarks/dirty/bench_backends.py [--workers 4] [--quick]

Each peer runs the same 10 ms task at concurrency 1, 16, 100 and 200 with
`--workers` workers (local: worker processes; ray: Ray actors on a Ray started
for the pool on this machine; Celery: a prefork worker with that
concurrency, Redis as broker and result backend), and a no-op round trip from
another process. Needs `unicorn-dirty[ray]`; the Celery column needs
`celery[redis]` and `redis-server` (it is left out without them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from bench_dirty import APP, HERE, Target, env, noop_from_other_process, pct, throughput

LEVELS = (1, 16, 100, 200)
TOTALS = {1: 150, 16: 600, 100: 1000, 200: 1000}


class LocalTarget(Target):
    name = "local"


class RayTarget(Target):
    """`unicorn-dirty --backend ray`: the same socket front, the calls go to Ray actors."""

    name = "ray"

    def __init__(self, workers: int, tmp: str) -> None:
        self.workers = workers
        self.path = os.path.join(tmp, "bench.sock")
        e = env()
        e.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        e.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        e.setdefault("RAY_TMPDIR", tmp)
        e.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway Ray on 127.0.0.1
        # no --ray-address: the arbiter starts a Ray of its own on this machine
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "unicorn_dirty.cli",
                APP,
                "-w",
                str(workers),
                "--backend",
                "ray",
                "--socket",
                self.path,
                "--log-level",
                "warning",
            ],
            env=e,
            cwd=tmp,
            start_new_session=True,
        )
        end = time.monotonic() + 180  # Ray and its worker processes start slowly on 2 cores
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"ray pool exited with {self.proc.returncode}")
            with contextlib.suppress(Exception):
                if self._ready():
                    break
            if time.monotonic() > end:
                self.stop()
                raise SystemExit("ray pool did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # what Ray left in the group


def measure(target_cls, workers: int, scale: float) -> dict:
    tmp = tempfile.mkdtemp(prefix="ud-bench-", dir="/tmp")
    target = target_cls(workers, tmp)
    out: dict = {}
    try:
        for c in LEVELS:
            out[c] = asyncio.run(throughput(target, c, int(TOTALS[c] * scale)))
        out["noop"] = noop_from_other_process(target, int(2000 * scale))
    finally:
        target.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def measure_celery(workers: int, scale: float) -> dict | None:
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
    e = env()
    e["BENCH_REDIS"] = f"redis://127.0.0.1:{port}/0"
    server = subprocess.Popen(
        [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_bench",
            "worker",
            "-c",
            str(workers),
            "-P",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "warning",
        ],
        env=e,
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def run(*args: str) -> object:
        done = subprocess.run(
            [sys.executable, str(HERE / "celery_bench.py"), *args],
            env=e,
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return json.loads(done.stdout)

    out: dict = {}
    try:
        run("noop", "5")  # waits for the worker to be up
        for c in LEVELS:
            out[c] = run("throughput", str(c), str(int(TOTALS[c] * scale)))
        out["noop"] = run("noop", str(int(500 * scale)))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        server.send_signal(signal.SIGTERM)
        server.wait(10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="fewer calls")
    args = ap.parse_args()
    scale = 0.25 if args.quick else 1.0
    local = measure(LocalTarget, args.workers, scale)
    ray = measure(RayTarget, args.workers, scale)
    cel = measure_celery(args.workers, scale)

    def cell(r: dict) -> str:
        return f"{r['rps']:.0f}/s p50 {r['p50_ms']:.1f} ms, {r['failures']} failed"

    head = [
        "measurement",
        "local",
        "ray",
        "Celery + Redis" if cel else "Celery (not installed)",
        "ray / local",
        "ray / Celery",
    ]
    rows = [head]
    for c in LEVELS:
        rc, lc = ray[c], local[c]
        row = [f"10 ms tasks, concurrency {c}", cell(lc), cell(rc)]
        row += [cell(cel[c]) if cel else "-", f"{rc['rps'] / lc['rps']:.2f}x"]
        row += [f"{rc['rps'] / cel[c]['rps']:.2f}x" if cel else "-"]
        rows.append(row)
    ln, rn = pct(local["noop"], 0.5), pct(ray["noop"], 0.5)
    cn = pct(cel["noop"], 0.5) if cel else None
    rows.append(
        [
            "no-op round trip p50, other process",
            f"{ln:.0f} µs",
            f"{rn:.0f} µs",
            f"{cn:.0f} µs" if cn else "-",
            f"{ln / rn:.2f}x",
            f"{cn / rn:.2f}x" if cn else "-",
        ]
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    print(
        f"dirty pool backends, direct (no HTTP): {args.workers} workers x 1 thread, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    for i, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(
        "ratios: throughput ray/peer (>1: ray faster); no-op: peer p50 / ray p50 (>1: ray faster)"
    )


if __name__ == "__main__":
    main()

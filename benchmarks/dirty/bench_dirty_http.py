"""Benchmark the dirty pool through HTTP: an ASGI endpoint that runs a 10 ms sleep in the pool.

    uv run --no-sync python benchmarks/dirty/bench_dirty_http.py [--duration 5] [--quick]

`unicorn -k asgi` with 4 dirty workers serves ``http_app:unicorn_app``; load
at concurrency 1, 16, 100 and 200 keep-alive connections comes from ``wrk``
(Debian: ``apt-get install wrk``), else from a small asyncio load generator
here. When gunicorn 27 (dirty arbiters and an ``asgi`` worker) is installed,
it serves ``http_app:gunicorn_app`` with its own pool in the same run. With
4 single-threaded workers and 10 ms tasks the ceiling is about 4 / 10.2 ms,
some 390 requests/s (issue 5 asks for that; gunicorn measured 331/s on this
kind of machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
LEVELS = (1, 16, 100, 200)
GUNICORN_REFERENCE = 331.0  # issue 5: gunicorn's pool through its ASGI worker, c=100/200
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One HTTP server with its dirty pool, started from this directory."""

    def __init__(self, name: str, argv: list[str], port: int) -> None:
        self.name, self.port = name, port
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
        self.log = tempfile.NamedTemporaryFile(prefix="bench-dirty-http-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, cwd=HERE, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"{name} did not answer within 30 s:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def unicorn(port: int, workers: int, http_workers: int) -> Server:
    argv = [
        *(sys.executable, "-m", "unicorn_core", "-k", "asgi", "-b", f"127.0.0.1:{port}"),
        *("-w", str(http_workers), "--dirty-app", "bench_app:BenchApp"),
        *("--dirty-workers", str(workers), "--log-level", "warning", "http_app:unicorn_app"),
    ]
    return Server("unicorn -k asgi + unicorn-dirty", argv, port)


def gunicorn(port: int, workers: int, http_workers: int) -> Server:
    argv = [
        *(sys.executable, "-m", "gunicorn", "-k", "asgi", "-b", f"127.0.0.1:{port}"),
        *("-w", str(http_workers), "--dirty-app", "gunicorn_peer:PeerBenchApp"),
        *("--dirty-workers", str(workers), "--log-level", "warning", "http_app:gunicorn_app"),
    ]
    return Server("gunicorn 27 -k asgi + its dirty pool", argv, port)


def gunicorn_available() -> bool:
    try:
        import gunicorn.dirty
        import gunicorn.workers.gasgi  # noqa: F401
    except ImportError:
        return False
    return True


# -- load ---------------------------------------------------------------------------------


def wrk(url: str, connections: int, duration: float) -> dict:
    out = subprocess.run(
        [
            *("wrk", "-t", str(min(2, connections)), "-c", str(connections)),
            *("-d", f"{duration:g}s", "--timeout", "10s", "--latency", url),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    failed = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed += int(m.group(1)) if m else 0
    return {"rps": rps, "p50": latency("50"), "p99": latency("99"), "failed": failed}


async def _pyload(port: int, connections: int, duration: float) -> dict:
    """Keep-alive GETs on `connections` connections for `duration` seconds."""
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    latencies: list[float] = []
    failed = 0
    end = time.perf_counter() + duration

    async def connection() -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < end:
                t = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 200"):
                    latencies.append((time.perf_counter() - t) * 1000)
                else:
                    failed += 1
        except (OSError, asyncio.IncompleteReadError):
            failed += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else 0.0

    return {"rps": len(latencies) / elapsed, "p50": pct(0.5), "p99": pct(0.99), "failed": failed}


def load(server: Server, connections: int, duration: float) -> dict:
    if shutil.which("wrk"):
        return wrk(server.url, connections, duration)
    return asyncio.run(_pyload(server.port, connections, duration))


def drain(server: Server) -> None:
    """Wait until one request takes about one task's time again.

    wrk hangs up with requests in flight; their dirty calls still run, and
    would queue ahead of the next level's first requests.
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        t = time.perf_counter()
        with urllib.request.urlopen(server.url, timeout=30) as r:
            r.read()
        if time.perf_counter() - t < 0.03:
            return


def measure(server: Server, duration: float) -> dict[int, dict]:
    """Every level on one server; errors it logs while measured count as failures too."""
    try:
        load(server, 16, min(2.0, duration))  # warm up: every dirty worker has loaded its app
        results = {}
        for c in LEVELS:
            drain(server)
            mark = len(server.output())
            results[c] = load(server, c, duration)
            results[c]["failed"] += server.output()[mark:].count("Traceback")
        return results
    finally:
        server.stop()


def cell(r: dict) -> str:
    return f"{r['rps']:.0f}/s p50 {r['p50']:.1f} p99 {r['p99']:.1f} ms, {r['failed']} failed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per concurrency level")
    ap.add_argument("--workers", type=int, default=4, help="dirty workers")
    ap.add_argument("--http-workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="2 s per level (smoke run)")
    ap.add_argument("--no-peers", action="store_true", help="measure unicorn only")
    args = ap.parse_args()
    duration = 2.0 if args.quick else args.duration

    ours = measure(unicorn(free_port(), args.workers, args.http_workers), duration)
    peer = None
    if not args.no_peers and gunicorn_available():
        peer = measure(gunicorn(free_port(), args.workers, args.http_workers), duration)

    generator = "wrk" if shutil.which("wrk") else "the asyncio load generator in this file"
    peer_name = "gunicorn 27 -k asgi + dirty pool, same run" if peer else "gunicorn (issue 5)"
    rows = [("concurrency", "unicorn -k asgi + unicorn-dirty", peer_name, "ratio")]
    for c in LEVELS:
        mine = ours[c]
        if peer:
            theirs, base = cell(peer[c]), peer[c]["rps"]
        else:
            base = GUNICORN_REFERENCE if c >= 100 else 0.0
            theirs = f"{base:.0f}/s" if base else "-"
        rows.append((str(c), cell(mine), theirs, f"{mine['rps'] / base:.2f}x" if base else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(
        f"dirty pools through HTTP: ASGI endpoint -> 10 ms dirty sleep; {args.workers} dirty "
        f"workers x 1 thread, {args.http_workers} HTTP workers, {os.cpu_count()} CPUs; "
        f"{duration:g} s per level from {generator}, keep-alive"
    )
    for i, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    main()

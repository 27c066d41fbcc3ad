"""Hello-world WSGI, one worker: unicorn vs gunicorn, same worker class, in one run.

The server is pinned to one CPU and the load generator to another (taskset),
so the numbers compare the servers' per-request cost rather than how they
share a machine. Each cell is the median of ``--repeat`` runs, taken in turns on both servers:

    uv run --no-sync python benchmarks/wsgi/bench_wsgi.py [--duration 5] [--connections 50]

Load comes from ``wrk`` when it is installed (Debian/Ubuntu: ``apt-get
install wrk``); otherwise from a small Python load generator, which tops out
far below what the servers can do and says so in the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = "hello_app:app"

SERVERS = {
    "unicorn": [sys.executable, "-m", "unicorn_core"],
    "gunicorn": [sys.executable, "-m", "gunicorn"],
}
# (worker class, connection mode); sync never keeps connections alive, on either server
CASES = [("sync", "close"), ("gthread", "keep-alive"), ("gthread", "close")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def pinned(cpu: int | None, cmd: list[str]) -> list[str]:
    if cpu is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


class Server:
    def __init__(self, name: str, worker: str, threads: int, cpu: int | None, logdir: str) -> None:
        self.port = free_port()
        cmd = [
            *SERVERS[name],
            "-w",
            "1",
            "-k",
            worker,
            "-b",
            f"127.0.0.1:{self.port}",
            "--log-level",
            "warning",
        ]
        if worker == "gthread":
            cmd += ["--threads", str(threads)]
        self.log = open(os.path.join(logdir, f"{name}-{worker}.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            pinned(cpu, [*cmd, APP]), cwd=HERE, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while not answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} -k {worker} did not start; see {self.log.name}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --- load generators ---------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(
    port: int, mode: str, seconds: float, conns: int, cpu: int | None
) -> tuple[float, float]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency"]
    if mode == "close":
        cmd += ["-H", "Connection: close"]
    out = subprocess.run(
        pinned(cpu, [*cmd, f"http://127.0.0.1:{port}/"]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        print(f"    wrk reported: {errors.group(0)}", file=sys.stderr)
    return rps, p99


async def _client(port: int, mode: str, stop: float, lat: list[float]) -> None:
    request = (
        b"GET / HTTP/1.1\r\nHost: b\r\n"
        + (b"Connection: close\r\n" if mode == "close" else b"")
        + b"\r\n"
    )
    reader = writer = None
    while time.monotonic() < stop:
        t0 = time.monotonic()
        if writer is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")  # type: ignore[union-attr]
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)  # type: ignore[union-attr]
        if mode == "close" or b"close" in head.lower():
            writer.close()
            reader = writer = None
        lat.append((time.monotonic() - t0) * 1000)
    if writer is not None:
        writer.close()


def run_python(
    port: int, mode: str, seconds: float, conns: int, cpu: int | None
) -> tuple[float, float]:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    lat: list[float] = []

    async def main() -> None:
        stop = time.monotonic() + seconds
        await asyncio.gather(*(_client(port, mode, stop, lat) for _ in range(conns)))

    started = time.monotonic()
    asyncio.run(main())
    elapsed = time.monotonic() - started
    lat.sort()
    return len(lat) / elapsed, lat[int(len(lat) * 0.99)] if lat else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per server")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per cell (median)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=4, help="--threads for gthread")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    args = parser.parse_args()

    if shutil.which("wrk"):
        load, tool = run_wrk, "wrk"
    else:
        load, tool = run_python, "python (install wrk for real numbers: apt-get install wrk)"
    ncpu = os.cpu_count() or 1
    server_cpu = args.server_cpu if ncpu > 1 else None
    load_cpu = args.load_cpu if ncpu > 1 else None
    print(
        f"load: {tool}; {args.connections} connections; {args.repeat} x {args.duration:g}s per cell; "
        f"server on CPU {server_cpu}, load on CPU {load_cpu}; gthread --threads {args.threads}; "
        f"1 worker; python {sys.version.split()[0]}"
    )
    results: dict[tuple[str, str, str], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as logdir:
        for worker, mode in CASES:
            # Both servers run at once (the idle one costs nothing) and are measured
            # in turns, so noise from a shared machine falls on both alike.
            servers = {n: Server(n, worker, args.threads, server_cpu, logdir) for n in SERVERS}
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in SERVERS}
            try:
                for server in servers.values():
                    if args.warmup:
                        load(server.port, mode, args.warmup, args.connections, load_cpu)
                for _ in range(args.repeat):
                    for name, server in servers.items():
                        runs[name].append(
                            load(server.port, mode, args.duration, args.connections, load_cpu)
                        )
            finally:
                for server in servers.values():
                    server.stop()
            for name in SERVERS:
                rps = statistics.median(r for r, _ in runs[name])
                p99 = statistics.median(p for _, p in runs[name])
                results[(name, worker, mode)] = (rps, p99)
                spread = ", ".join(f"{r:.0f}/{p:.1f}ms" for r, p in runs[name])
                print(
                    f"  {name:8} {worker:8} {mode:10} median {rps:8.0f} req/s  "
                    f"p99 {p99:7.2f} ms  (runs: {spread})",
                    file=sys.stderr,
                )

    print()
    print(
        "| worker | connection | unicorn req/s | unicorn p99 | gunicorn req/s | gunicorn p99 | req/s ratio |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for worker, mode in CASES:
        u_rps, u_p99 = results[("unicorn", worker, mode)]
        g_rps, g_p99 = results[("gunicorn", worker, mode)]
        print(
            f"| {worker} | {mode} | {u_rps:,.0f} | {u_p99:.2f} ms | {g_rps:,.0f} | "
            f"{g_p99:.2f} ms | {u_rps / g_rps:.2f}x |"
        )


if __name__ == "__main__":
    main()

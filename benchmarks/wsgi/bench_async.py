"""gevent, eventlet and tornado workers, one worker: unicorn vs gunicorn in one run.

Cases: hello world, and an application that waits 100 ms (``time.sleep``;
``await asyncio.sleep`` for the native tornado app) at 200 and 1,000
connections. The ideal for the 100 ms app is connections x 10 req/s (2,000
req/s at 200 connections). gunicorn 27 ships gevent and tornado workers (its
eventlet worker was removed in 26.0), so eventlet has no peer column.

    uv run --no-sync python benchmarks/wsgi/bench_async.py [--duration 3] [--repeat 2]

The server is pinned to CPU 0 and wrk to CPU 1 (taskset). Servers of one case
run side by side and are measured in turns; each cell is the median. CPU/req
is the server's CPU time (user + system, from /proc) per request: unlike
req/s it does not move when other processes share CPU 0, so on a busy
machine its ratio is the steadier comparison.
"""

from __future__ import annotations

import argparse
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
SERVERS = {
    "unicorn": [sys.executable, "-m", "unicorn_core"],
    "gunicorn": [sys.executable, "-m", "gunicorn"],
}
# (case, app, worker, connections, servers)
CASES = [
    ("hello", "async_apps:hello", "gevent", 200, ("unicorn", "gunicorn")),
    ("hello", "async_apps:hello", "eventlet", 200, ("unicorn",)),
    ("hello (WSGI)", "async_apps:hello", "tornado", 200, ("unicorn", "gunicorn")),
    ("hello (tornado app)", "async_apps:tornado_hello", "tornado", 200, ("unicorn", "gunicorn")),
    ("wait 100 ms", "async_apps:wait100", "gevent", 200, ("unicorn", "gunicorn")),
    ("wait 100 ms", "async_apps:wait100", "gevent", 1000, ("unicorn", "gunicorn")),
    ("wait 100 ms", "async_apps:wait100", "eventlet", 200, ("unicorn",)),
    ("wait 100 ms", "async_apps:wait100", "eventlet", 1000, ("unicorn",)),
    ("wait 100 ms (tornado app)", "async_apps:tornado_wait100", "tornado", 200,
     ("unicorn", "gunicorn")),
    ("wait 100 ms (tornado app)", "async_apps:tornado_wait100", "tornado", 1000,
     ("unicorn", "gunicorn")),
]  # fmt: skip


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
    def __init__(self, name: str, worker: str, app: str, cpu: int | None, logdir: str) -> None:
        self.port = free_port()
        cmd = [*SERVERS[name], "-w", "1", "-k", worker, "-b", f"127.0.0.1:{self.port}"]
        cmd += ["--log-level", "warning", "--worker-connections", "2000", "--backlog", "2048"]
        self.log = open(os.path.join(logdir, f"{name}-{worker}.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            pinned(cpu, [*cmd, app]), cwd=HERE, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while not answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} -k {worker} did not start; see {self.log.name}")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server's processes so far (Linux /proc)."""
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # fast stop: wrk's connections may linger
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(
    port: int, seconds: float, conns: int, cpu: int | None
) -> tuple[float, float, str, int]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency"]
    cmd += ["--timeout", "10s"]
    out = subprocess.run(
        pinned(cpu, [*cmd, f"http://127.0.0.1:{port}/"]), capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, p99, errors.group(0) if errors else "", count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2, help="measured runs per cell (median)")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument("--only", default="", help="run only cases whose worker is this")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install -y wrk")
    ncpu = os.cpu_count() or 1
    server_cpu = args.server_cpu if ncpu > 1 else None
    load_cpu = args.load_cpu if ncpu > 1 else None
    print(
        f"wrk; {args.repeat} x {args.duration:g}s per cell; server on CPU {server_cpu}, "
        f"load on CPU {load_cpu}; 1 worker; python {sys.version.split()[0]}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as logdir:
        for case, app, worker, conns, names in CASES:
            if args.only and worker != args.only:
                continue
            servers = {n: Server(n, worker, app, server_cpu, logdir) for n in names}
            runs: dict[str, list[tuple[float, float, str, int]]] = {n: [] for n in names}
            cpu_us: dict[str, list[float]] = {n: [] for n in names}
            try:
                for server in servers.values():
                    if args.warmup:
                        run_wrk(server.port, args.warmup, conns, load_cpu)
                for _ in range(args.repeat):
                    for name, server in servers.items():
                        before = server.cpu_seconds()
                        run = run_wrk(server.port, args.duration, conns, load_cpu)
                        runs[name].append(run)
                        used = server.cpu_seconds() - before
                        cpu_us[name].append(used * 1e6 / max(run[3], 1))
            finally:
                for server in servers.values():
                    server.stop()
            cells = {}
            for name in names:
                rps = statistics.median(r[0] for r in runs[name])
                p99 = statistics.median(r[1] for r in runs[name])
                cpu = statistics.median(cpu_us[name])
                errs = "; ".join(sorted({r[2] for r in runs[name] if r[2]}))
                cells[name] = (rps, p99, cpu)
                spread = ", ".join(f"{r[0]:.0f}" for r in runs[name])
                print(
                    f"  {case:26} {worker:8} c={conns:<5} {name:8} {rps:8.0f} req/s "
                    f"p99 {p99:8.2f} ms cpu {cpu:6.0f} us/req (runs: {spread}) {errs}",
                    file=sys.stderr,
                )
            rows.append((case, worker, conns, cells))
    print()
    print("| case | worker | connections | unicorn req/s | unicorn p99 | unicorn CPU/req "
          "| gunicorn req/s | gunicorn p99 | gunicorn CPU/req | req/s ratio | CPU ratio "
          "| of ideal |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for case, worker, conns, cells in rows:
        u_rps, u_p99, u_cpu = cells["unicorn"]
        g = cells.get("gunicorn")
        ideal = f"{u_rps / (conns * 10):.0%}" if case.startswith("wait") else ""
        g_text = (
            f"{g[0]:,.0f} | {g[1]:.1f} ms | {g[2]:.0f} µs | {u_rps / g[0]:.2f}x | "
            f"{g[2] / u_cpu:.2f}x"
            if g
            else "— | — | — | — | —"
        )
        print(
            f"| {case} | {worker} | {conns:,} | {u_rps:,.0f} | {u_p99:.1f} ms | {u_cpu:.0f} µs "
            f"| {g_text} | {ideal} |"
        )


if __name__ == "__main__":
    main()

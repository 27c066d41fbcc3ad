"""ASGI, one worker: unicorn -k asgi vs uvicorn, gunicorn's asgi and uvicorn workers, granian.

Each server runs one worker pinned to CPU 0 (taskset); wrk runs on CPU 1 with
64 keep-alive connections. Five loads: hello world, hello world with a new
query string on every request (so no request line repeats), a 64 KiB
response, a 4 KiB POST echoed back, and hello world from a FastAPI route
(``apps.py``). Every cell is the best of ``--repeat``
runs taken in turns across the servers, so a burst of load from elsewhere
on a shared machine hurts every server alike. Beside req/s and p99 the table
gives the server's CPU time per request (its processes' utime+stime over
the run, from /proc), which moves much less than req/s when the machine is
busy.

    uv run --no-sync python benchmarks/asgi/bench_asgi.py [--duration 5] [--repeat 3]

wrk is needed: ``apt-get install -y wrk`` (Debian/Ubuntu) or build it from
its repository. Servers that are not installed are skipped with a note
(``uv sync`` installs uvicorn, httptools, uvloop, gunicorn and granian from
the workspace's dev group).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = "apps:app"
CONNECTIONS = 64
_POST_LUA = """
wrk.method = "POST"
wrk.body = string.rep("a", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"
"""

# Every request a different request line: nothing of it is remembered from
# the last one (the fields still repeat, as a real client's do).
_NEW_QUERY_LUA = """
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/?n=" .. n)
end
"""

#: load -> (path, wrk script or None)
LOADS = {
    "hello": ("/", None),
    "hello, new query": ("/", _NEW_QUERY_LUA),
    "64 KiB": ("/64k", None),
    "POST 4 KiB echo": ("/echo", _POST_LUA),
    "FastAPI hello": ("/fastapi", None),
}
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_commands(port: int) -> dict[str, list[str] | str]:
    """name -> command, or a note saying why the server is skipped."""
    bind = f"127.0.0.1:{port}"
    py = sys.executable
    out: dict[str, list[str] | str] = {
        "unicorn -k asgi": [
            py,
            "-m",
            "unicorn_core",
            "-k",
            "asgi",
            "-w",
            "1",
            "-b",
            bind,
            "--asgi-loop",
            "uvloop",
            "--log-level",
            "warning",
            APP,
        ],
    }
    if importlib.util.find_spec("uvicorn") and importlib.util.find_spec("httptools"):
        out["uvicorn httptools+uvloop"] = [
            py,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
            APP,
        ]
    else:
        out["uvicorn httptools+uvloop"] = "uvicorn or httptools not installed"

    def gunicorn(worker: str) -> list[str]:
        return [
            py,
            "-m",
            "gunicorn",
            "-w",
            "1",
            "-b",
            bind,
            "-k",
            worker,
            "--log-level",
            "warning",
            APP,
        ]

    if importlib.util.find_spec("gunicorn.workers.gasgi"):
        # gunicorn's own ASGI worker (gunicorn.workers.gasgi), on uvloop when installed
        out["gunicorn -k asgi"] = gunicorn("asgi")
    else:
        out["gunicorn -k asgi"] = "gunicorn without its asgi worker"
    if importlib.util.find_spec("gunicorn") and importlib.util.find_spec("uvicorn"):
        out["gunicorn -k uvicorn"] = gunicorn("uvicorn.workers.UvicornWorker")
    else:
        out["gunicorn -k uvicorn"] = "gunicorn or uvicorn not installed"
    if shutil.which("granian") or importlib.util.find_spec("granian"):
        out["granian asgi"] = [
            py,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-ws",
            "--log-level",
            "warning",
            APP,
        ]
    else:
        out["granian asgi"] = "granian not installed"
    return out


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def tree_cpu(pid: int) -> float:
    """utime+stime of ``pid`` and its descendants, in seconds."""
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        ppid = int(fields[1])
        children.setdefault(ppid, []).append(int(entry))
        stats[int(entry)] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo.extend(children.get(p, ()))
    return total


def run_wrk(port: int, path: str, duration: float, lua: str | None) -> tuple[float, float, int]:
    """(requests/s, p99 ms, requests) of one wrk run."""
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{int(duration)}s", "--latency"]
    if lua:
        cmd += ["-s", lua]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99_match = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99_match.group(2)]
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} error responses:\n{out}")
    return rps, float(p99_match.group(1)) * scale, total


def measure(
    cmd: list[str], load: str, duration: float, lua: str | None
) -> tuple[float, float, float]:
    port = (
        int(cmd[cmd.index("--port") + 1])
        if "--port" in cmd
        else int(cmd[cmd.index("-b") + 1].rsplit(":", 1)[1])
    )
    pinned = ["taskset", "-c", "0", *cmd] if shutil.which("taskset") else cmd
    proc = subprocess.Popen(
        pinned,
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(HERE)},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[2:5]} did not start")
            time.sleep(0.05)
        path = LOADS[load][0]
        run_wrk(port, path, 1, lua)  # warm up
        cpu = tree_cpu(proc.pid)
        rps, p99, total = run_wrk(port, path, duration, lua)
        cpu = tree_cpu(proc.pid) - cpu
        return rps, p99, cpu / max(total, 1) * 1e6
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", action="append", help="server name prefix to run")
    parser.add_argument("--load", action="append", choices=list(LOADS))
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk (or build it from source)")
    scripts: dict[str, str | None] = {}
    for load, (_, text) in LOADS.items():
        scripts[load] = None
        if text is not None:
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
                f.write(text)
            scripts[load] = f.name
    loads = args.load or list(LOADS)
    names = list(server_commands(0))
    if args.only:
        names = [n for n in names if any(n.startswith(o) for o in args.only)]
    load_before = os.getloadavg()
    results: dict[tuple[str, str], tuple[float, float, float]] = {}
    notes = {}
    for load in loads:
        for _ in range(args.repeat):
            for name in names:
                cmd = server_commands(free_port())[name]
                if isinstance(cmd, str):
                    notes[name] = cmd
                    continue
                try:
                    rps, p99, cpu = measure(cmd, load, args.duration, scripts[load])
                except Exception as exc:  # a server that fails is reported, not fatal
                    notes[name] = f"failed: {exc}"
                    continue
                best = results.get((name, load))
                if best is None or rps > best[0]:
                    results[(name, load)] = (rps, min(p99, best[1]) if best else p99, cpu)
                elif cpu < best[2]:
                    results[(name, load)] = (best[0], min(p99, best[1]), cpu)
    for script in scripts.values():
        if script is not None:
            os.unlink(script)
    print(f"load average before: {load_before[0]:.2f}, after: {os.getloadavg()[0]:.2f} (2 cores)")
    print(
        f"{'load':17s} {'server':26s} {'req/s':>9s} {'p99 ms':>8s} {'CPU us/req':>11s} {'vs uvicorn':>11s}"
    )
    for load in loads:
        base = results.get(("uvicorn httptools+uvloop", load))
        for name in names:
            r = results.get((name, load))
            if r is None:
                continue
            ratio = f"{r[0] / base[0]:.2f}x" if base else "-"
            print(f"{load:17s} {name:26s} {r[0]:9.0f} {r[1]:8.2f} {r[2]:11.1f} {ratio:>11s}")
    for name, note in notes.items():
        print(f"note: {name}: {note}")


if __name__ == "__main__":
    main()

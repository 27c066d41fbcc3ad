"""Hello-world WSGI behind nginx over the uwsgi protocol: unicorn vs uWSGI vs gunicorn.

One nginx (one worker process) passes to three servers, each one worker
process on its own Unix socket, all running in one run and measured in turns:

- ``unicorn --protocol uwsgi -k sync``;
- uWSGI itself (the C server from the ``pyuwsgi`` wheel), ``--processes 1``;
- ``gunicorn --protocol uwsgi -k sync``.

Two loads from ``wrk`` against nginx (HTTP/1.1 keep-alive to nginx; nginx
opens one uwsgi connection per request, as it always does):

- *browser*: every request with its own path, query, cookies and request id
  and a varying header set (``browser.lua``) — the headline figure;
- *identical*: the same small GET again and again.

nginx and wrk share one CPU, the servers the other (taskset). Each cell is the
best of ``--repeat`` runs, with the CPU time the server's processes spent\nper request in that run; non-2xx responses and socket errors are reported.

    uv run --no-sync python benchmarks/uwsgi/bench_uwsgi.py [--duration 5] [--connections 32]
"""

from __future__ import annotations

import argparse
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
APP_DIR = HERE.parent / "wsgi"  # hello_app.py, the same app as the HTTP benchmark
BIN = Path(sys.executable).parent

_NGINX = """
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    uwsgi_temp_path {prefix}/uwsgi;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
{servers}
}}
"""
_SERVER = """
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        server_name shop.example;
        location / {{
            include {params};
            uwsgi_pass unix:{socket};
        }}
    }}
"""
_PARAMS = """
uwsgi_param QUERY_STRING $query_string;
uwsgi_param REQUEST_METHOD $request_method;
uwsgi_param CONTENT_TYPE $content_type;
uwsgi_param CONTENT_LENGTH $content_length;
uwsgi_param REQUEST_URI $request_uri;
uwsgi_param PATH_INFO $document_uri;
uwsgi_param DOCUMENT_ROOT $document_root;
uwsgi_param SERVER_PROTOCOL $server_protocol;
uwsgi_param REQUEST_SCHEME $scheme;
uwsgi_param HTTPS $https if_not_empty;
uwsgi_param REMOTE_ADDR $remote_addr;
uwsgi_param REMOTE_PORT $remote_port;
uwsgi_param SERVER_PORT $server_port;
uwsgi_param SERVER_NAME $server_name;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: int | None, cmd: list[str]) -> list[str]:
    if cpu is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def commands(sock: Path) -> dict[str, list[str]]:
    return {
        "unicorn": [
            sys.executable,
            "-m",
            "unicorn_core",
            "--protocol",
            "uwsgi",
            "-w",
            "1",
            "-k",
            "sync",
            "-b",
            f"unix:{sock}-unicorn",
            "--log-level",
            "warning",
            "hello_app:app",
        ],
        "uWSGI": [
            str(BIN / "uwsgi"),
            "--socket",
            f"{sock}-uWSGI",
            "--wsgi-file",
            "hello_app.py",
            "--callable",
            "app",
            "--master",
            "--processes",
            "1",
            "--disable-logging",
            "--need-app",
            "--listen",
            "1024",
        ],
        "gunicorn": [
            sys.executable,
            "-m",
            "gunicorn",
            "--protocol",
            "uwsgi",
            "-w",
            "1",
            "-k",
            "sync",
            "-b",
            f"unix:{sock}-gunicorn",
            "--backlog",
            "1024",
            "--log-level",
            "warning",
            "hello_app:app",
        ],
    }


def uwsgi_probe(path: str) -> bool:
    """A uwsgi GET / answered with 200 on the Unix socket at ``path``."""
    pairs = [
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", b"/"),
        (b"PATH_INFO", b"/"),
        (b"QUERY_STRING", b""),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"SERVER_NAME", b"b"),
        (b"SERVER_PORT", b"80"),
        (b"HTTP_HOST", b"b"),
    ]
    block = b"".join(
        len(k).to_bytes(2, "little") + k + len(v).to_bytes(2, "little") + v for k, v in pairs
    )
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(path)
            s.sendall(b"\x00" + len(block).to_bytes(2, "little") + b"\x00" + block)
            return b" 200 " in s.recv(64)
    except OSError:
        return False


def wait(check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


class Process:
    def __init__(self, name: str, cmd: list[str], cwd: Path, logdir: Path) -> None:
        self.name = name
        self.log = open(logdir / f"{name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            # uWSGI stops on INT (TERM reloads it); the others stop on either.
            self.proc.send_signal(signal.SIGINT if self.name == "uWSGI" else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants."""
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run_wrk(port: int, load: str, seconds: float, conns: int, cpu: int | None) -> dict:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s"]
    if load == "browser":
        cmd += ["-s", str(HERE / "browser.lua")]
    else:
        cmd += ["-H", "Host: shop.example"]
    out = subprocess.run(
        pinned(cpu, [*cmd, f"http://127.0.0.1:{port}/"]), capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "requests": total,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(1) if errors else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per server")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per cell (best)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1, help="for wrk and nginx")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is needed: apt-get install -y {tool}")
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    ncpu = os.cpu_count() or 1
    server_cpu = args.server_cpu if ncpu > 1 else None
    load_cpu = args.load_cpu if ncpu > 1 else None

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        sock = tmp / "app.sock"
        procs: list[Process] = []
        try:
            backends = commands(sock)
            for name, cmd in backends.items():
                procs.append(Process(name, pinned(server_cpu, cmd), APP_DIR, tmp))
            for name in backends:
                wait(lambda n=name: uwsgi_probe(f"{sock}-{n}"), f"{name} to answer")
            ports = {name: free_port() for name in backends}
            (tmp / "uwsgi_params").write_text(_PARAMS)
            servers = "".join(
                _SERVER.format(port=ports[n], params=tmp / "uwsgi_params", socket=f"{sock}-{n}")
                for n in backends
            )
            (tmp / "nginx.conf").write_text(_NGINX.format(prefix=tmp, servers=servers))
            procs.append(
                Process(
                    "nginx",
                    pinned(
                        load_cpu,
                        [
                            nginx_bin,
                            "-p",
                            str(tmp),
                            "-c",
                            str(tmp / "nginx.conf"),
                            "-g",
                            "daemon off; master_process off;",
                        ],
                    ),
                    tmp,
                    tmp,
                )
            )
            wait(lambda: all(_listening(p) for p in ports.values()), "nginx to listen")
            versions = _versions()
            print(
                f"wrk -t1 -c{args.connections}, best of {args.repeat} x {args.duration:g}s; "
                f"servers on CPU {server_cpu}, nginx and wrk on CPU {load_cpu}; one worker "
                f"process each, sync; python {sys.version.split()[0]}; {versions}"
            )
            results: dict[tuple[str, str], dict] = {}
            for load in ("browser", "identical"):
                for name in backends:
                    if args.warmup:
                        run_wrk(ports[name], load, args.warmup, args.connections, load_cpu)
                for _ in range(args.repeat):
                    for proc in procs[: len(backends)]:
                        name = proc.name
                        cpu = tree_cpu(proc.proc.pid)
                        got = run_wrk(ports[name], load, args.duration, args.connections, load_cpu)
                        got["cpu_us"] = (tree_cpu(proc.proc.pid) - cpu) / got["requests"] * 1e6
                        best = results.get((name, load))
                        if best is None or got["rps"] > best["rps"]:
                            if best is not None:
                                got["non2xx"] += best["non2xx"]
                            results[(name, load)] = got
                        elif got["non2xx"]:
                            best["non2xx"] += got["non2xx"]
        finally:
            for proc in reversed(procs):
                proc.stop()
    _table(results, list(backends))


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _versions() -> str:
    out = []
    for name, cmd in (
        ("uWSGI", [str(BIN / "uwsgi"), "--version"]),
        ("gunicorn", [sys.executable, "-m", "gunicorn", "--version"]),
    ):
        text = subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        out.append(f"{name} {text.split()[-1].strip('()') if text else '?'}")
    nginx = subprocess.run(
        [shutil.which("nginx") or "/usr/sbin/nginx", "-v"], capture_output=True, text=True
    ).stderr.strip()
    out.append(nginx.split(": ")[-1])
    return ", ".join(out)


def _table(results: dict, names: list[str]) -> None:
    print()
    print(
        "| load | server | req/s | vs uWSGI | vs gunicorn | server CPU µs/request "
        "| non-2xx | socket errors |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for load in ("browser", "identical"):
        for name in names:
            r = results[(name, load)]
            vs_uwsgi = r["rps"] / results[("uWSGI", load)]["rps"]
            vs_gunicorn = r["rps"] / results[("gunicorn", load)]["rps"]
            print(
                f"| {load} | {name} | {r['rps']:,.0f} | {vs_uwsgi:.2f}x | {vs_gunicorn:.2f}x "
                f"| {r['cpu_us']:.0f} | {r['non2xx']} | {r['errors'] or '-'} |"
            )


if __name__ == "__main__":
    main()

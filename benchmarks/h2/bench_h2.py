"""HTTP/2, one worker: unicorn -k asgi, gthread, gevent vs gunicorn, hypercorn and granian, with h2load.

Each server runs one worker pinned to CPU 0 (taskset when present); h2load
runs on CPU 1: ``-n N -c 32 -m 10`` (32 connections, 10 streams each) against
a hello-world ASGI app (``benchmarks/asgi/apps.py``), over cleartext prior
knowledge (h2c) and over TLS with ALPN (a throwaway certificate made with
openssl). Servers take turns, best of ``--repeat``; the table gives req/s,
the share of streams that failed or errored, and the ratios to unicorn.

    uv run --no-sync python benchmarks/h2/bench_h2.py [-n 50000] [--repeat 2] [--tls]

Needs h2load (Debian: ``apt-get install nghttp2-client``; ``make test`` installs
it) and, for --tls, openssl. Servers that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APPS = Path(__file__).resolve().parent.parent / "asgi"
APP = "apps:app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(folder: Path) -> tuple[str, str]:
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def servers(port: int, tls: tuple[str, str] | None) -> dict[str, list[str] | str]:
    py = sys.executable
    bind = f"127.0.0.1:{port}"
    tls_args = ["--certfile", tls[0], "--keyfile", tls[1]] if tls else []
    h2 = ["--http-protocols", "h2,h1"] + ([] if tls else ["--http2-cleartext", "prior-knowledge"])
    out: dict[str, list[str] | str] = {
        "unicorn -k asgi": [py, "-m", "unicorn_core", "-k", "asgi", "-w", "1", "-b", bind,
                            "--log-level", "warning", "--no-control-socket", *h2, *tls_args, APP],
    }  # fmt: skip
    for worker in ("gthread", "gevent"):
        if worker == "gevent" and not importlib.util.find_spec("gevent"):
            continue
        out[f"unicorn -k {worker}"] = [
            py, "-m", "unicorn_core", "-k", worker, "-w", "1", "-b", bind,
            "--log-level", "warning", "--no-control-socket", *h2, *tls_args, "apps:wsgi_app",
        ]  # fmt: skip
    if importlib.util.find_spec("gunicorn") and importlib.util.find_spec("h2"):
        for worker in ("asgi", "gthread", "gevent"):
            if worker == "gevent" and not importlib.util.find_spec("gevent"):
                continue
            app = APP if worker == "asgi" else "apps:wsgi_app"
            out[f"gunicorn -k {worker}"] = [
                py, "-m", "gunicorn", "-k", worker, "-w", "1", "-b", bind, "--log-level",
                "warning", *h2, *tls_args, app,
            ]  # fmt: skip
    else:
        out["gunicorn"] = "gunicorn or h2 not installed"
    if importlib.util.find_spec("hypercorn"):
        hyper_tls = ["--certfile", tls[0], "--keyfile", tls[1]] if tls else []
        out["hypercorn"] = [py, "-m", "hypercorn", "-w", "1", "-b", bind, "--log-level",
                            "warning", *hyper_tls, APP]  # fmt: skip
    else:
        out["hypercorn"] = "hypercorn not installed"
    if importlib.util.find_spec("granian"):
        gran_tls = ["--ssl-certificate", tls[0], "--ssl-keyfile", tls[1]] if tls else []
        out["granian"] = [py, "-m", "granian", "--interface", "asgi", "--http", "2",
                          "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                          "--log-level", "warning", *gran_tls, APP]  # fmt: skip
    else:
        out["granian"] = "granian not installed"
    return out


def h2load(url: str, n: int) -> tuple[float, int, int]:
    """(req/s, streams that succeeded, streams that failed or errored)."""
    cmd = ["h2load", "-n", str(n), "-c", "32", "-m", "10", url]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not rps or not done:
        return 0.0, 0, n
    return float(rps.group(1)), int(done.group(1)), int(done.group(2)) + int(done.group(3))


def ready(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=50000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--tls", action="store_true", help="TLS with ALPN instead of h2c")
    args = parser.parse_args()
    if not shutil.which("h2load"):
        sys.exit("h2load is needed: apt-get install nghttp2-client")
    tmp = Path(tempfile.mkdtemp())
    tls = make_cert(tmp) if args.tls else None
    scheme = "https" if tls else "http"
    best: dict[str, tuple[float, int, int]] = {}
    for _ in range(args.repeat):
        port = free_port()
        for name, cmd in servers(port, tls).items():
            if isinstance(cmd, str):
                best.setdefault(name, (0.0, 0, -1))
                continue
            port = free_port()
            cmd = servers(port, tls)[name]
            pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
            proc = subprocess.Popen([*pin, *cmd], cwd=APPS, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
            try:
                if not ready(port, time.monotonic() + 20):
                    best.setdefault(name, (0.0, 0, args.n))
                    continue
                time.sleep(1.0)  # let the worker finish booting behind the master's socket
                result = h2load(f"{scheme}://127.0.0.1:{port}/", args.n)
                if result[0] > best.get(name, (0.0, 0, 0))[0]:
                    best[name] = result
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    base = best.get("unicorn -k asgi", (0.0, 0, 0))[0]
    print(f"h2load -n {args.n} -c 32 -m 10, {'TLS (ALPN h2)' if tls else 'h2c prior knowledge'}")
    print(f"{'server':22s} {'req/s':>10s} {'failed':>8s} {'unicorn / it':>13s}")
    for name, (rps, ok, failed) in best.items():
        if failed == -1:
            print(f"{name:22s} {'skipped':>10s}")
            continue
        ratio = f"{base / rps:.2f}x" if rps else "-"
        share = f"{100 * failed / max(1, ok + failed):.1f}%"
        print(f"{name:22s} {rps:10.0f} {share:>8s} {ratio:>13s}")


if __name__ == "__main__":
    main()

"""A real nginx in front of a real ``unicorn --protocol uwsgi``, for the tests.

``Nginx(tmp, upstream)`` writes a configuration into a prefix directory of its
own (error log, pid file, temp paths all inside it) and runs nginx in the
foreground as one process (``daemon off; master_process off``), so stopping
it leaves nothing behind. It listens on two ephemeral ports:

- ``url``: ``uwsgi_pass`` with nginx's defaults (request and response buffered);
- ``stream_url``: ``uwsgi_buffering off`` and ``uwsgi_request_buffering off``
  (streamed responses reach the client as written, uploads the server as sent);
- ``tls_url`` with ``tls=(certificate, key)``: TLS to the client, so nginx
  sends ``HTTPS on``.

``UwsgiUnicorn`` is ``tests/support/unicorn_server.Unicorn`` with ``--protocol
uwsgi``: it binds TCP (``addr``, for raw packets) and a Unix socket
(``socket_path``), and is ready when it answers a uwsgi packet.
"""

from __future__ import annotations

import errno
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from unicorn_server import Unicorn, wait_for

from unicorn_uwsgi import pack

#: nginx's own uwsgi_params, for a machine whose nginx has none in /etc/nginx
_UWSGI_PARAMS = """
uwsgi_param  QUERY_STRING       $query_string;
uwsgi_param  REQUEST_METHOD     $request_method;
uwsgi_param  CONTENT_TYPE       $content_type;
uwsgi_param  CONTENT_LENGTH     $content_length;
uwsgi_param  REQUEST_URI        $request_uri;
uwsgi_param  PATH_INFO          $document_uri;
uwsgi_param  DOCUMENT_ROOT      $document_root;
uwsgi_param  SERVER_PROTOCOL    $server_protocol;
uwsgi_param  REQUEST_SCHEME     $scheme;
uwsgi_param  HTTPS              $https if_not_empty;
uwsgi_param  REMOTE_ADDR        $remote_addr;
uwsgi_param  REMOTE_PORT        $remote_port;
uwsgi_param  SERVER_PORT        $server_port;
uwsgi_param  SERVER_NAME        $server_name;
"""

_CONFIG = """
error_log {prefix}/error.log info;
pid {prefix}/nginx.pid;
worker_processes 1;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    uwsgi_temp_path {prefix}/uwsgi;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    scgi_temp_path {prefix}/scgi;
    client_max_body_size 0;
    upstream unicorn {{ server {upstream}; }}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location / {{
            include {params};
            uwsgi_pass unicorn;
        }}
    }}
    server {{
        listen 127.0.0.1:{stream_port};
        server_name localhost;
        location / {{
            include {params};
            uwsgi_pass unicorn;
            uwsgi_buffering off;
            uwsgi_request_buffering off;
        }}
    }}
{tls_server}
}}
"""
_TLS_SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            include {params};
            uwsgi_pass unicorn;
        }}
    }}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found is None:
        raise RuntimeError("nginx is not installed: `make system-tools` installs it")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx in the foreground with its own prefix, passing to ``upstream`` by uwsgi."""

    def __init__(self, tmp: Path, upstream: str, tls: tuple[Path, Path] | None = None) -> None:
        self.prefix = tmp / f"nginx-{time.monotonic_ns()}"
        self.prefix.mkdir()
        system = Path("/etc/nginx/uwsgi_params")
        params = self.prefix / "uwsgi_params"
        params.write_text(system.read_text() if system.exists() else _UWSGI_PARAMS)
        for attempt in range(5):
            self.port, self.stream_port = _free_port(), _free_port()
            self.tls_port = _free_port() if tls else None
            tls_server = ""
            if tls:
                tls_server = _TLS_SERVER.format(
                    port=self.tls_port, cert=tls[0], key=tls[1], params=params
                )
            conf = self.prefix / "nginx.conf"
            conf.write_text(
                _CONFIG.format(
                    prefix=self.prefix,
                    upstream=upstream,
                    port=self.port,
                    stream_port=self.stream_port,
                    params=params,
                    tls_server=tls_server,
                )
            )
            self.proc = subprocess.Popen(
                [
                    nginx_binary(),
                    "-p",
                    str(self.prefix),
                    "-c",
                    str(conf),
                    "-g",
                    "daemon off; master_process off;",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_for(self._listening, 10, f"nginx to listen; log:\n{self.log()}")
                break
            except _PortTaken:
                self.proc.wait(5)
                if attempt == 4:
                    raise
        self.url = f"http://127.0.0.1:{self.port}"
        self.stream_url = f"http://127.0.0.1:{self.stream_port}"
        self.tls_url = f"https://127.0.0.1:{self.tls_port}" if tls else None

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            if "Address already in use" in self.log():
                raise _PortTaken
            raise AssertionError(f"nginx exited with {self.proc.returncode}:\n{self.log()}")
        for port in (self.port, self.stream_port, self.tls_port):
            if port is None:
                continue
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
        return True

    def log(self) -> str:
        try:
            return (self.prefix / "error.log").read_text()
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class _PortTaken(Exception):
    """Another process took a port between choosing it and nginx binding it."""


PROBE = pack(
    [
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", b"/"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"HTTP_HOST", b"probe"),
    ]
)


class UwsgiUnicorn(Unicorn):
    """``unicorn --protocol uwsgi`` on 127.0.0.1 (ephemeral) and a Unix socket; it is
    probed on the Unix socket, whose peers ``uwsgi_allow_ips`` always admits."""

    def __init__(self, tmp: Path, app: str, *args: str) -> None:
        self.socket_path = tmp / f"unicorn-{time.monotonic_ns()}.sock"
        super().__init__(tmp, app, "--protocol", "uwsgi", "-b", f"unix:{self.socket_path}", *args)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"unicorn exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return send_raw(self.socket_path, PROBE).startswith(b"HTTP/1.")
        except OSError:
            return False


def send_raw(addr, data: bytes, *, close_write: bool = True, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a new connection (TCP ``(host, port)`` or a Unix socket's path) and
    read until the server closes it (or resets it)."""
    family = socket.AF_UNIX if isinstance(addr, str | Path) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(addr) if family == socket.AF_UNIX else addr)
        try:
            s.sendall(data)
            if close_write:
                s.shutdown(socket.SHUT_WR)
        except OSError as exc:  # closed before it took everything: still read what it said
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                raise
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass  # closed with our bytes unread: closed all the same
        return out

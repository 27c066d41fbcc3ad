"""A minimal worker for core's tests: core has no HTTP, so this one reads a
request head by hand and answers with a fixed HTTP/1.0 response carrying its
pid and the application's return value. It exercises the Worker contract the
real workers follow: listeners, wakeup fd, heartbeat, max_requests, hooks,
access log, TLS wrapping."""

from __future__ import annotations

import os
import selectors
import socket
import time

from unicorn_core.workers import Worker


class Request:
    def __init__(self, method: str, target: str, version: str, headers: list) -> None:
        self.method = method
        self.target = target
        self.path = target.partition("?")[0]
        self.version = version
        self.headers = headers


class FixedWorker(Worker):
    counts_requests = True  # calls request_started() / request_finished() itself

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        for listener in self.listeners:
            listener.sock.setblocking(False)
            selector.register(listener.sock, selectors.EVENT_READ, listener)
        selector.register(self.wakeup_fd, selectors.EVENT_READ, None)
        while self.alive:
            self.notify()
            if not self.is_parent_alive():
                return
            for key, _ in selector.select(self.notify_interval):
                if key.data is None:
                    self.drain_wakeup()
                    continue
                try:
                    conn, addr = key.fileobj.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                try:
                    self.handle(conn, addr)
                except OSError:
                    pass
                finally:
                    conn.close()
                if not self.alive:
                    break

    def handle(self, conn: socket.socket, addr) -> None:
        started = time.perf_counter()
        conn.setblocking(True)
        conn.settimeout(5)
        conn = self.wrap_socket(conn)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target, version = head[0].split(" ", 2)
        headers = [tuple(h.split(": ", 1)) for h in head[1:] if ": " in h]
        req = Request(method, target, version, headers)
        self.request_started()
        if self.pre_request_hook:
            self.pre_request_hook(self, req)
        result = self.wsgi(req.path)
        body = f"pid={os.getpid()} app={result}".encode()
        response_headers = [("Content-Length", str(len(body))), ("X-Pid", str(os.getpid()))]
        head_out = "HTTP/1.0 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in response_headers)
        conn.sendall(head_out.encode() + b"\r\n" + body)
        if self.post_request_hook:
            self.post_request_hook(self, req, {"PATH_INFO": req.path}, None)
        if self.log.access_enabled or self.log.statsd is not None:
            remote = addr[0] if isinstance(addr, tuple) else "unix"
            self.log.access(
                remote,
                method,
                target,
                version,
                200,
                len(body),
                time.perf_counter() - started,
                headers,
                response_headers,
                {
                    "PATH_INFO": req.path,
                    "REMOTE_PORT": str(addr[1]) if isinstance(addr, tuple) else "",
                },
            )
        self.request_finished(method, 200, time.perf_counter() - started)
        self.handled_request()

"""WSGI routes whose calls look blocking: under gevent and eventlet they must yield."""

from __future__ import annotations

import os
import socket
import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/fetch":
        # Socket I/O to a local server that answers when the test lets it.
        port = int(environ["QUERY_STRING"])
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"ask\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        body = b"fetched " + data
    elif path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "1"))
        body = b"slept"
    else:
        body = f"{os.getpid()} ok {path}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]

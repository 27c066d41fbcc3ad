"""The WSGI application behind nginx in tests/test_uwsgi_nginx.py (sync, gthread).

Routes: ``/environ`` (the request as JSON), ``/echo``, ``/count`` (reads the
body in pieces, answers its length and CRC-32: an upload never held whole),
``/pid``, ``/stream`` and ``/sse`` (wait, after the first piece, until the
client says it has it: ``?mark=FILE``), ``/endless`` (until the client goes).
"""

from __future__ import annotations

import json
import os
import time
import zlib
from urllib.parse import parse_qs

ENVIRON_KEYS = (
    "REQUEST_METHOD",
    "PATH_INFO",
    "QUERY_STRING",
    "RAW_URI",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "wsgi.url_scheme",
)


def _wait_for_file(path: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _pieces(first: bytes, rest: list[bytes], mark: str | None):
    yield first
    if mark is not None and not _wait_for_file(mark):
        yield b"TIMEOUT: the client never saw the first piece\n"
        return
    yield from rest


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    if path.startswith("/environ"):
        found = {key: environ.get(key) for key in ENVIRON_KEYS}
        found["headers"] = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
        found["body"] = environ["wsgi.input"].read().decode("latin-1")
        body = json.dumps(found).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/count":
        total, crc, stream = 0, 0, environ["wsgi.input"]
        while chunk := stream.read(65536):
            total += len(chunk)
            crc = zlib.crc32(chunk, crc)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d %08x" % (total, crc)]
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _pieces(b"part 0\n", [b"part %d\n" % i for i in range(1, 5)], query.get("mark"))
    if path == "/sse":
        start_response(
            "200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
        )
        events = [b"data: %d\n\n" % i for i in range(1, 4)]
        return _pieces(b"data: 0\n\n", events, query.get("mark"))
    if path == "/endless":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (b"x" * 65536 for _ in range(100000))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]

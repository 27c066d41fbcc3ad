"""A WSGI app for the HTTP/2 tests: what the environ says, uploads read slowly,
big streamed responses, failures before and during a response, and requests
that wait for a mark file in H2_MARK_DIR (so a test decides when they end)."""

import json
import os
import time
from pathlib import Path


def _wait_mark(name: str, limit: float = 20.0) -> None:
    mark = Path(os.environ["H2_MARK_DIR"]) / name
    deadline = time.monotonic() + limit
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    text = [("content-type", "text/plain")]
    if path == "/environ":
        keys = ("SERVER_PROTOCOL", "REMOTE_ADDR", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME")
        body = json.dumps({k: environ.get(k) for k in keys}).encode()
        start_response("200 OK", [("content-type", "application/json")])
        return [body]
    if path == "/upload":
        # read a first piece, then (optionally) wait for the test's go before the rest
        first = environ["wsgi.input"].read(1000)
        if environ.get("QUERY_STRING") == "hold":
            _wait_mark("go")
        total = len(first)
        while chunk := environ["wsgi.input"].read(65536):
            total += len(chunk)
        start_response("200 OK", text)
        return [b"%d" % total]
    if path == "/big":
        size = int(environ.get("QUERY_STRING") or 1 << 20)
        start_response("200 OK", text)
        return (b"x" * 65536 for _ in range(size // 65536))
    if path == "/boom":
        raise RuntimeError("boom before the response")
    if path == "/midboom":
        start_response("200 OK", text)

        def failing():
            yield b"x" * 1000
            raise RuntimeError("boom mid-response")

        return failing()
    if path.startswith("/wait/"):
        name = path[len("/wait/") :]
        (Path(os.environ["H2_MARK_DIR"]) / f"started-{name}").write_text("")
        _wait_mark(name)
        start_response("200 OK", text)
        return [b"waited"]
    start_response("200 OK", text)
    return [environ["SERVER_PROTOCOL"].encode()]

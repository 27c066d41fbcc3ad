"""The example app `make demo` serves: plain WSGI, no framework needed.

unicorn --chdir examples demo_app:app            # what make demo runs
curl http://127.0.0.1:8000/
curl -d 'hello' http://127.0.0.1:8000/echo
curl -N http://127.0.0.1:8000/stream              # chunked, one line a tick
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable

PAGE = """<!doctype html>
<title>unicorn demo</title>
<h1>unicorn is serving this page</h1>
<p>Worker pid {pid}. Try <a href="/stream">/stream</a> (a streamed response),
<a href="/info">/info</a> (the WSGI environ), or POST to /echo.</p>
"""


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/":
        body = PAGE.format(pid=os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", environ.get("CONTENT_TYPE") or "text/plain")])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _ticks(5)
    if path == "/info":
        shown = {k: v for k, v in environ.items() if isinstance(v, str | int | bool)}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(shown, indent=2, sort_keys=True).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


def _ticks(count: int) -> Iterable[bytes]:
    for i in range(count):
        yield f"tick {i + 1}/{count} from pid {os.getpid()}\n".encode()
        time.sleep(0.2)

"""A plain WSGI application with one route per behaviour the integration tests check."""

from __future__ import annotations

import os
import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/whoami":
        text = f"{os.getpid()} {environ.get('REMOTE_PORT', '')}"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text.encode()]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"part %d\n" % i for i in range(5))
    if path == "/big":
        # Enough bytes to fill every socket buffer: the client leaves half way.
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (b"x" * 65536 for _ in range(2000))
    if path == "/slow":
        mark = os.environ.get("ROUTES_MARK_DIR")
        if mark:  # lets a test see that the request is in the application
            with open(os.path.join(mark, "entered"), "w"):
                pass
        time.sleep(float(environ.get("QUERY_STRING") or "0.5"))
    if path == "/error":
        raise RuntimeError("the application failed on purpose")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok " + path.encode()]

"""A WSGI app for the in-server test: each path calls the dirty pool through get_dirty_client()."""

from __future__ import annotations

import json
import os
import time

from unicorn_dirty import DirtyError, get_dirty_client

ECHO = "sample_apps:EchoApp"


def application(environ, start_response):
    client = get_dirty_client()
    path = environ["PATH_INFO"]
    if path.startswith("/sse/"):
        # server-sent events straight from a dirty stream; closing this iterator
        # (the HTTP client went away) cancels the work in the dirty worker
        kind, marker = path.split("/")[2:4]
        action = "endless" if kind == "sync" else "aendless"
        start_response(
            "200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
        )
        return (f"data: {chunk!r}\n\n".encode() for chunk in client.stream(ECHO, action, marker))
    if path == "/mark":
        from unicorn_dirty import stash

        body = json.dumps(stash.get("marks", environ["QUERY_STRING"]))
    elif path == "/try":  # the error a call gets, and how long it took to get it
        start = time.monotonic()
        try:
            body = json.dumps({"value": client.execute(ECHO, "noop")})
        except DirtyError as exc:
            body = json.dumps(
                {"error": exc.to_dict(), "seconds": round(time.monotonic() - start, 3)}
            )
    elif path == "/stream":
        body = json.dumps(list(client.stream(ECHO, "count", 3)))
    elif path == "/status":
        body = json.dumps({"status": client.status(), "socket": os.environ["UNICORN_DIRTY_SOCKET"]})
    else:
        body = json.dumps(client.execute(ECHO, "echo", path))
    data = body.encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]

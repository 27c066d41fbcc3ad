"""A WSGI app for the in-server test: each path calls the dirty pool through get_dirty_client()."""

from __future__ import annotations

import json
import os

from unicorn_dirty import get_dirty_client

ECHO = "sample_apps:EchoApp"


def application(environ, start_response):
    client = get_dirty_client()
    path = environ["PATH_INFO"]
    if path == "/stream":
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

"""WSGI and ASGI apps answering with what the server says about the request's
origin (client, scheme, mount point, path) as JSON, for the forwarded-header table."""

import json


def wsgi(environ, start_response):
    body = json.dumps(
        {
            "client": environ.get("REMOTE_ADDR"),
            "scheme": environ["wsgi.url_scheme"],
            "root_path": environ.get("SCRIPT_NAME", ""),
            "path": environ["PATH_INFO"],
            "remote_user": environ.get("HTTP_REMOTE_USER"),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    client = scope["client"]
    headers = dict(scope["headers"])
    body = json.dumps(
        {
            "client": client[0] if client else None,
            "scheme": scope["scheme"],
            "root_path": scope["root_path"],
            "path": scope["path"],
            "remote_user": (headers.get(b"remote_user") or b"").decode() or None,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})

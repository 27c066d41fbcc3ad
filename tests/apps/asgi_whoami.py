"""An ASGI app that answers with the client address from its scope."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    host, port = scope["client"] or ("-", 0)
    body = f"{host} {port}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

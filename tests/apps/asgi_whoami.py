"""An ASGI app that reads its whole request (as Django does) and answers with
the client address from its scope and the body's length."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    host, port = scope["client"] or ("-", 0)
    body = f"{host} {port}".encode()
    headers = [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(body)).encode()),
        (b"x-body-size", str(size).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})

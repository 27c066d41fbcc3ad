"""Small real Django, Quart and Litestar applications for the asgi contract suite.

Each serves the routes the Starlette and FastAPI apps in ``asgi_frameworks`` serve
(``/``, ``/echo``, ``/stream``, ``/info``, ``/boom``), the framework's own way.
Quart and Litestar also echo on a WebSocket at ``/ws``; Django core has no
WebSocket support (that takes Channels), so the Django app has none.

Lifespan: Quart and Litestar run their startup/shutdown hooks from the ASGI
lifespan protocol and report them on stderr; Django's ASGI handler refuses the
lifespan scope, so ``/info`` there shows no state.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import types

GREETING = "hello from lifespan"


def __getattr__(name: str):
    """Build ``django_app``, ``quart_app`` or ``litestar_app`` on first use, so that
    a server imports only its own framework (together they take seconds to import)."""
    builders = {"django_app": _django, "quart_app": _quart, "litestar_app": _litestar}
    if name not in builders:
        raise AttributeError(name)
    app = builders[name]()
    globals()[name] = app
    return app


def _say(text: str) -> None:
    """A line on stderr, which the test harness keeps next to the error log."""
    print(text, file=sys.stderr, flush=True)


async def _lines():
    for i in range(5):
        yield f"line {i}\n"
        await asyncio.sleep(0)


def _django():
    """Settings in code, a mix of sync and async views."""
    from django.conf import settings
    from django.core.asgi import get_asgi_application
    from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
    from django.urls import path

    def hello(req):  # sync: Django runs it in a thread
        return HttpResponse("hello", content_type="text/plain")

    async def echo(req):
        return HttpResponse(req.body, content_type="application/octet-stream")

    async def stream(req):
        return StreamingHttpResponse(_lines(), content_type="text/plain")

    def info(req):
        return JsonResponse(
            {
                "path": req.path,
                "query": dict(req.GET.items()),
                "client": req.META.get("REMOTE_ADDR"),
                "state": req.scope.get("state", {}).get("greeting"),
                "scheme": req.scheme,
            }
        )

    async def boom(req):
        raise RuntimeError("framework boom")

    urls = types.ModuleType("asgi_more_frameworks_urls")  # a URLconf needs no file
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("", hello),
        path("echo", echo),
        path("stream", stream),
        path("info", info),
        path("boom", boom),
    ]
    settings.configure(
        DEBUG=False,
        SECRET_KEY="integration-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=urls,
        INSTALLED_APPS=[],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],  # sets Content-Length
        DATABASES={},
        USE_TZ=True,
        LOGGING={  # with DEBUG off Django logs 500s nowhere unless told to
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"stderr": {"class": "logging.StreamHandler"}},
            "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
        },
    )
    return get_asgi_application()


def _quart():
    from quart import Quart, request, websocket

    app = Quart(__name__)

    @app.before_serving
    async def startup():
        app.config["GREETING"] = GREETING
        _say("quart lifespan startup")

    @app.after_serving
    async def shutdown():
        _say("quart lifespan shutdown")

    @app.get("/")
    async def hello():
        return "hello", 200, {"content-type": "text/plain"}

    @app.post("/echo")
    async def echo():
        return await request.get_data(), 200, {"content-type": "application/octet-stream"}

    @app.get("/stream")
    async def stream():
        return _lines(), 200, {"content-type": "text/plain"}

    @app.get("/info")
    async def info():
        return {
            "path": request.path,
            "query": request.args.to_dict(),
            "client": request.remote_addr,
            "state": app.config.get("GREETING"),
            "scheme": request.scheme,
        }

    @app.get("/boom")
    async def boom():
        raise RuntimeError("framework boom")

    @app.websocket("/ws")
    async def ws():
        while True:
            await websocket.send(await websocket.receive())

    return app


def _litestar():
    from litestar import Litestar, MediaType, Request, WebSocket, get, post, websocket
    from litestar.logging import LoggingConfig
    from litestar.response import Stream

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar):
        app.state.greeting = GREETING
        _say("litestar lifespan startup")
        try:
            yield
        finally:
            _say("litestar lifespan shutdown")

    @get("/", media_type=MediaType.TEXT)
    async def hello() -> str:
        return "hello"

    @post("/echo", status_code=200, media_type="application/octet-stream")
    async def echo(request: Request) -> bytes:
        return await request.body()

    @get("/stream")
    async def stream() -> Stream:
        return Stream(_lines(), media_type=MediaType.TEXT)

    @get("/info")
    async def info(request: Request) -> dict:
        return {
            "path": request.url.path,
            "query": dict(request.query_params),
            "client": request.client.host if request.client else None,
            "state": getattr(request.app.state, "greeting", None),
            "scheme": request.url.scheme,
        }

    @get("/boom")
    async def boom() -> str:
        raise RuntimeError("framework boom")

    @websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await socket.send_text(message["text"])
            else:
                await socket.send_bytes(message["bytes"])

    return Litestar(
        route_handlers=[hello, echo, stream, info, boom, ws],
        lifespan=[lifespan],
        logging_config=LoggingConfig(log_exceptions="always"),
        # the annotations are strings here (``from __future__ import annotations``)
        signature_namespace={"Request": Request, "WebSocket": WebSocket, "Stream": Stream},
    )

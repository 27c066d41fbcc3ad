"""Small real Starlette and FastAPI applications for the asgi contract suite."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect


@contextlib.asynccontextmanager
async def _lifespan(app):
    yield {"greeting": "hello from lifespan"}


async def _hello(request):
    return PlainTextResponse("hello")


async def _echo(request):
    return Response(await request.body(), media_type="application/octet-stream")


async def _stream(request):
    async def lines():
        for i in range(5):
            yield f"line {i}\n"
            await asyncio.sleep(0)

    return StreamingResponse(lines(), media_type="text/plain")


async def _info(request):
    return JSONResponse(
        {
            "path": request.url.path,
            "query": dict(request.query_params),
            "client": request.client.host if request.client else None,
            "state": request.state.greeting,
            "scheme": request.url.scheme,
        }
    )


async def _boom(request):
    raise RuntimeError("framework boom")


async def _ws_echo(websocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


starlette_app = Starlette(
    routes=[
        Route("/", _hello),
        Route("/echo", _echo, methods=["POST"]),
        Route("/stream", _stream),
        Route("/info", _info),
        Route("/boom", _boom),
        WebSocketRoute("/ws", _ws_echo),
    ],
    lifespan=_lifespan,
)

fastapi_app = FastAPI(lifespan=_lifespan)


@fastapi_app.get("/")
async def fa_hello():
    return PlainTextResponse("hello")


@fastapi_app.post("/echo")
async def fa_echo(request: Request):
    return Response(await request.body(), media_type="application/octet-stream")


@fastapi_app.get("/stream")
async def fa_stream():
    return await _stream(None)


@fastapi_app.get("/info")
async def fa_info(request: Request):
    return await _info(request)


@fastapi_app.get("/boom")
def fa_boom():  # a sync endpoint: runs in the thread pool
    raise RuntimeError("framework boom")


@fastapi_app.websocket("/ws")
async def fa_ws(websocket: WebSocket):
    await _ws_echo(websocket)

"""ASGI over HTTP/1.1: an ``asyncio.Protocol`` driving one ``H1Connection`` per socket.

Theory of operation
-------------------
``H1Protocol`` is the transport's protocol object. Bytes go straight into the
connection's ``H1Connection`` (``receive_data``) and ``_process`` pulls events
with ``next_event()`` until the parser needs more bytes or a request is being
served. Each request head becomes a :class:`RequestCycle`: the ``http``
scope, and ``receive``/``send`` as bound methods of that object.

A scope is a copy, not a fresh build: the connection keeps a dict of the keys
all its requests share (server, client, scheme, root_path, ...) and, filled in
from it, the keys of the last request line it saw (method, path, raw_path,
http_version); a request repeating that line copies the latter and sets only
``query_string`` and ``headers``. Decoded paths are remembered worker-wide in
a small bounded memo. A trusted peer's fields are looked through for a
forwarded header, and parsed only when one is there, unless they equal the
connection's last fields that held none.

The application runs *eagerly*: its coroutine is wrapped in a Task whose
first step runs at once, inside ``data_received``, instead of being scheduled
for the next turn of the loop. An application that answers without awaiting
anything not yet ready (hello world, a cached page, a small echo) has
finished, written its response and gone before ``data_received`` returns; no
loop round trip, no scheduled callback. Only an application that really waits
keeps a pending Task. It is a real Task all the same, because Starlette, anyio
and ``asyncio.timeout`` look at ``asyncio.current_task()`` from the first
line on. Python 3.12 has this built in (``eager_start``); on 3.11 the Task's
constructor is handed a ``call_soon`` that keeps the step instead of
scheduling it, and the step is run on the spot (see :func:`start_eagerly`).

The request body is *pulled*: ``receive()`` asks the parser for the next
``Data`` event, so body bytes stay in the parser's buffer, unconsumed and
uncopied, until the application wants them. Reading from the socket is paused
whenever bytes arrive that nobody is waiting for (a body the application is
not reading yet, or a pipelined request behind the one being answered) and
resumed when ``receive()`` finds the parser empty, so a slow application
holds at most a couple of reads of a large upload in memory.

The response head is kept back until the first body message so that head and
body leave in one ``transport.write``; if the application awaits between the
two, the head is flushed when its step ends. Writing is flow-controlled:
``send()`` waits while the transport is above its high-water mark.

When the response ends and the application has returned, the parser has
already gone back to IDLE (keep-alive) and ``_process`` goes on with any
pipelined request in its buffer. Connections idle between requests are closed
by the worker's sweep after ``keepalive`` seconds, and at once when the worker
stops.
"""

from __future__ import annotations

import asyncio
import os
import time
import types
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

from unicorn_asgi.eager import current_tasks, start_eagerly
from unicorn_asgi.errors import ClientDisconnected
from unicorn_asgi.tls_scope import first_certificate, tls_extension
from unicorn_core.http_settings import edge_options, http2_options
from unicorn_http import (
    CONNECT_REFUSED,
    METHOD_NAMES,
    MUST_CLOSE,
    NEED_DATA,
    ConnectionClosed,
    ConnectionEdge,
    Data,
    EdgeRules,
    EndOfMessage,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    RequestInfo,
    log_access,
)

__all__ = [
    "ASGIConfig",
    "H1Protocol",
    "RequestCycle",
    "scope_paths",
]

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Any]

_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0", b"2": "2", b"3": "3"}
_500_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"connection", b"close"),
]
_500_BODY = b"Internal Server Error\n"
#: a body bigger than this is written beside its head rather than joined to it
_JOIN_LIMIT = 16384
_PATHSEND_BLOCK = 1 << 18
#: raw path -> scope path, for the paths a worker sees again and again
_paths: dict[bytes, str] = {}
_PATHS_KEPT = 1024
_Coroutine = types.CoroutineType


async def _raise(exc: BaseException) -> None:
    raise exc


def _cancel_if_running(task: asyncio.Task) -> None:
    if not task.done():
        task.cancel()


def scope_paths(config: ASGIConfig, raw_path: bytes) -> tuple[str, bytes]:
    """A request target's path as the scope's ``path`` and ``raw_path``, with ``root_path``."""
    text_path = _paths.get(raw_path)
    if text_path is None:
        text_path = _decode_path(raw_path)
    root = config.root_path
    if root:
        return root + text_path, config.root_path_bytes + raw_path
    return text_path, raw_path


def _decode_path(raw_path: bytes) -> str:
    """Percent-decoded UTF-8 (undecodable bytes kept as surrogates), remembered."""
    path = unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path
    try:
        text_path = path.decode()
    except UnicodeDecodeError:
        text_path = path.decode("utf-8", "surrogateescape")
    if len(raw_path) <= 256:
        if len(_paths) >= _PATHS_KEPT:
            _paths.clear()
        _paths[raw_path] = text_path
    return text_path


# --- per-worker configuration -----------------------------------------------------------


class ASGIConfig:
    """What every connection of one worker shares, read from the settings once.

    ``cfg`` is any object with the settings as attributes (core's ``Config``, or
    a ``SimpleNamespace`` in tests); missing ones take their defaults.
    """

    def __init__(
        self,
        app: ASGIApp,
        cfg: Any,
        log: Any,
        *,
        worker: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
        state: dict | None = None,
    ) -> None:
        def get(name: str, default: Any) -> Any:
            value = getattr(cfg, name, default)
            return default if value is None else value

        self.app = app
        self.log = log
        self.worker = worker
        self.loop = loop or asyncio.get_event_loop()
        #: lifespan state; each request scope gets a shallow copy
        self.state = state
        self.keepalive = float(get("keepalive", 2))
        #: asgi_disconnect_grace_period: after a disconnect, then the task is cancelled
        self.disconnect_grace = float(get("asgi_disconnect_grace_period", 3))
        #: client_header_timeout: the deadline of a request head (0: none)
        self.header_timeout = float(get("client_header_timeout", 20.0))
        #: HTTP/2 is offered (ALPN on TLS; http2_cleartext in the clear)
        self.http2 = "h2" in (get("http_protocols", ["h1"]) or ())
        cleartext = str(get("http2_cleartext", "off")) if self.http2 else "off"
        #: a trusted peer may open with the HTTP/2 preface / ask for Upgrade: h2c
        self.h2_prior_knowledge = cleartext in ("prior-knowledge", "both")
        self.h2_only = cleartext == "prior-knowledge"
        self.h2_upgrade = cleartext in ("upgrade", "both")
        self.h2_options = http2_options(cfg)
        #: SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441): on once a handler is installed
        self.h2_options["enable_connect_protocol"] = False
        self.worker_connections = max(1, int(get("worker_connections", 1000)))
        #: the protocol and the trust rules every connection shares (unicorn_http.edge)
        self.edge = EdgeRules(**edge_options(cfg), log=log)
        root = str(get("root_path", "")).rstrip("/")
        self.root_path = root
        self.root_path_bytes = root.encode("utf-8")
        self.asgi = {"version": "3.0", "spec_version": "2.4"}
        self.extensions: dict[str, dict] = {
            "http.response.trailers": {},
            "http.response.informational": {},
            "http.response.early_hint": {},
            "http.response.pathsend": {},
        }
        #: the ``tls`` extension's server_cert: the first certificate of ``certfile``
        self.server_cert = first_certificate(get("certfile", None))
        self.access = None
        if getattr(log, "access_enabled", False) or getattr(log, "statsd", None) is not None:
            self.access = getattr(log, "access", None)
        self.pre_request = getattr(worker, "pre_request_hook", None)
        #: the worker counts requests itself (busy/idle, /metrics): core's direct calls
        self.counting = bool(getattr(worker, "counts_requests", False))
        self.post_request = getattr(worker, "post_request_hook", None)
        #: the open connections (H1Protocol objects)
        self.connections: set[H1Protocol] = set()
        #: applications still running in a task (they may outlive their connection)
        self.tasks: set[asyncio.Task] = set()
        #: set when the worker drains: no new request is read, responses close
        self.stopping = False
        #: a coarse clock, the loop's time as of the last sweep
        self.clock = self.loop.time()
        #: called with the number of connections after one opens or closes
        self.on_count: Callable[[int], None] | None = None
        #: ``Upgrade`` token (lower-case bytes) -> ``handler(protocol, request) -> bool``:
        #: the seam for WebSocket (and h2c). A handler returning True has taken the
        #: connection over; without one an upgrade request is an ordinary http request
        #: the application answers (101 is refused in http.response.start).
        self.upgrades: dict[bytes, Callable[[H1Protocol, Request], bool]] = {}
        #: HTTP/2 extended CONNECT ``:protocol`` (lower-case bytes) ->
        #: ``handler(stream, request, scope)``, which takes the stream over (RFC 8441)
        self.connect_protocols: dict[bytes, Callable[[Any, Request, dict], None]] = {}

    def running_cycles(self) -> list[RequestCycle]:
        """The requests being answered now, on every connection (HTTP/2: every stream)."""
        found = []
        for proto in self.connections:
            streams = getattr(proto, "streams", None)
            if streams is not None:
                found.extend(s.cycle for s in streams.values() if s.cycle is not None)
            elif type(proto.cycle) is RequestCycle:
                found.append(proto.cycle)
        return found


# --- the request ------------------------------------------------------------------------


class RequestCycle:
    """One request and its response: the scope, and ``receive``/``send``."""

    __slots__ = (
        "body_done",
        "body_sent",
        "complete",
        "conn",
        "disconnected",
        "expect_continue",
        "head",
        "overdue",
        "pending",
        "proto",
        "req",
        "resp_headers",
        "scope",
        "sent",
        "shutdown",
        "started",
        "started_at",
        "status",
        "task",
        "trailers",
        "waiter",
    )

    def __init__(
        self, proto: H1Protocol, req: Request, scope: dict, body_done: bool = False
    ) -> None:
        self.proto = proto
        self.conn = proto.conn
        self.req = req
        self.scope = scope
        #: the parser has no more of this request's body
        self.body_done = body_done
        #: the last http.request (more_body False) reached the application
        self.body_sent = False
        self.complete = False
        self.disconnected = False
        self.shutdown = False
        self.expect_continue = req.expect_continue
        self.started = False
        self.head: bytes | None = None
        self.pending: bytes | None = None
        self.waiter: asyncio.Future | None = None
        self.status = 0
        self.resp_headers: Any = ()
        self.sent = 0
        self.trailers = False
        self.task: asyncio.Task | None = None
        self.started_at = 0.0
        #: reported as running past ``timeout``
        self.overdue = False

    # -- the application ----------------------------------------------------------------

    def start(self) -> None:
        """Count the request, run ``pre_request``, and start the application: its
        first step at once (eager start) unless a task is running already. The
        same for an HTTP/1.1 connection and an HTTP/2 stream (``proto``)."""
        proto = self.proto
        config = proto.config
        self.started_at = time.monotonic()
        if config.counting:
            config.worker.request_started()
        if config.pre_request is not None:
            try:
                config.pre_request(config.worker, self.info())
            except Exception:
                config.log.exception("Exception in pre_request hook")
        try:
            coro = config.app(self.scope, self.receive, self.send)
        except Exception as exc:
            coro = _raise(exc)  # answered like an exception inside the application
        if type(coro) is not _Coroutine:
            coro = self.run()
        loop = proto.loop
        if loop not in current_tasks:
            proto.stepping = True
            task = start_eagerly(loop, coro)
            if task.done():
                self.finished(task)  # the caller, up the stack, goes on with the connection
                proto.stepping = False
                return
            proto.stepping = False
            self.flush_head()
        else:
            task = loop.create_task(coro)
        self.task = task
        config.tasks.add(task)
        task.add_done_callback(self.finished)

    def account(self) -> None:
        """The application returned: the access log, ``post_request``, the counts."""
        config = self.proto.config
        if self.task is not None:
            config.tasks.discard(self.task)
        scope = self.scope
        if config.access is not None:
            client = scope["client"]
            log_access(
                config.access,
                config.log,
                self.req,
                client[0] if client else "unix",
                scope["method"],
                self.status or 500,
                self.sent,
                time.monotonic() - self.started_at,
                self.resp_headers,
                scope,
            )
        if config.post_request is not None:
            try:
                config.post_request(config.worker, self.info(), scope, self)
            except Exception:
                config.log.exception("Exception in post_request hook")
        worker = config.worker
        if worker is not None:
            if config.counting:
                worker.request_finished(
                    scope["method"], self.status or 500, time.monotonic() - self.started_at
                )
            worker.handled_request()

    async def run(self) -> None:
        """The application as a coroutine, for one that is not a coroutine function."""
        await self.proto.config.app(self.scope, self.receive, self.send)

    def finished(self, task: asyncio.Task) -> None:
        """The application's task is done: answer for it, then go on."""
        proto = self.proto
        try:
            exc = task.exception()
        except asyncio.CancelledError as cancelled:
            exc = cancelled
        if exc is not None:
            self._failed(exc)
        elif not self.complete:
            if not self.started:
                proto.config.log.error("ASGI application returned without starting a response")
                self._answer_500()
            else:
                proto.config.log.error("ASGI application returned without completing its response")
                proto.abort()
        proto.cycle_done(self)
        # The task holds the exception, whose traceback holds the application's
        # frames, which hold this cycle: let go of the task so the lot is freed now
        # and the application's async generators are finalized (their finally
        # blocks cancel work) without waiting for the cyclic collector.
        self.task = None

    def _failed(self, exc: BaseException) -> None:
        proto = self.proto
        log = proto.config.log
        if self.disconnected or isinstance(exc, asyncio.CancelledError):
            log.debug("Request ended with the connection: %r", exc)
            proto.abort()
            return
        log.error("Exception in ASGI application", exc_info=exc)
        if self.complete:
            return  # the response went out whole; the connection can go on
        if self.started:
            proto.abort()  # the head is out: only closing is honest
        else:
            self._answer_500()

    def _answer_500(self) -> None:
        self.status = 500
        proto = self.proto
        if proto.closed:
            return
        conn = self.conn
        conn.keep_alive = False
        try:
            data = conn.respond(500, _500_HEADERS, _500_BODY)
        except LocalProtocolError:
            proto.abort()
            return
        self.started = self.complete = True
        self.sent = len(_500_BODY)
        proto.transport.write(data)
        proto.close()

    # -- receive ------------------------------------------------------------------------

    async def receive(self) -> dict:
        if self.body_done and not self.body_sent and not self.complete:
            # A request without a body (read whole before the application ran): its
            # one http.request comes first, as the spec has it; after that, and once
            # the response is complete, only http.disconnect.
            self.body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if self.body_done or self.complete:
            # Once the response is complete the parser drains whatever body is left
            # and goes on to the next request: none of it is this request's any more.
            if not (self.complete or self.disconnected or self.shutdown):
                await self._wait()
            return {"type": "http.disconnect"}
        if self.disconnected:
            return {"type": "http.disconnect"}
        if self.expect_continue:
            self.expect_continue = False
            if not self.started:
                self.proto.write(self.conn.send_response(100, []))
        pending = self.pending
        if pending is not None:
            self.pending = None
            return {"type": "http.request", "body": pending, "more_body": True}
        conn = self.conn
        proto = self.proto
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                self._bad_body(exc)
                return {"type": "http.disconnect"}
            kind = type(event)
            if kind is Data:
                body = event.data
                # Look one event ahead: a body already whole ends in this message.
                try:
                    after = conn.next_event()
                except RemoteProtocolError:
                    after = None  # raised again by the next receive()
                kind = type(after)
                if kind is EndOfMessage:
                    self.body_done = self.body_sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                if kind is Data:
                    self.pending = after.data  # type: ignore[union-attr]
                elif after is NEED_DATA:
                    proto.resume_reading()
                return {"type": "http.request", "body": body, "more_body": True}
            if kind is EndOfMessage:
                self.body_done = self.body_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if event is NEED_DATA:
                if self.disconnected or proto.closed:
                    return {"type": "http.disconnect"}
                proto.resume_reading()
                await self._wait()
                if self.disconnected or self.complete:
                    return {"type": "http.disconnect"}
                continue
            # ConnectionClosed in the middle of a body
            self.disconnected = True
            return {"type": "http.disconnect"}

    def _wait(self) -> asyncio.Future:
        waiter = self.proto.loop.create_future()
        self.waiter = waiter
        return waiter

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def cancel_after(self, grace: float) -> None:
        """The client went away: the application has ``grace`` seconds to finish
        (asgi_disconnect_grace_period), then its task is cancelled."""
        task = self.task
        if task is None or task.done():
            return
        if grace <= 0:
            task.cancel()
        else:
            self.proto.loop.call_later(grace, _cancel_if_running, task)

    def _bad_body(self, exc: RemoteProtocolError) -> None:
        """The body broke the framing (or the client left in its middle)."""
        self.disconnected = True
        proto = self.proto
        if proto.closed:
            return
        proto.config.log.info(
            "Bad request body from %s: %s (%d)",
            proto.peer_text(),
            exc.reason,
            exc.status,
        )
        if not self.started:
            self.started = self.complete = True
            self.status = exc.status
            proto.write(self.conn.send_error(exc))
            proto.close()
        else:
            proto.abort()

    # -- send ------------------------------------------------------------------------

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._start(message)
        elif kind == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.complete:
                if self.disconnected or self.shutdown:
                    raise ClientDisconnected("the client closed the connection")
                raise RuntimeError("http.response.body sent after the response was complete")
            more = message.get("more_body", False)
            self._body(message.get("body", b""), more)
            if more:
                proto = self.proto
                if proto.write_paused:
                    await proto.drained()
                if self.disconnected:
                    raise ClientDisconnected("the client closed the connection")
        elif kind == "http.response.trailers":
            self._trailers(message)
        elif kind == "http.response.pathsend":
            await self._pathsend(message["path"])
        elif kind == "http.response.informational":
            self._informational(message.get("status", 103), message.get("headers", ()))
        elif kind == "http.response.early_hint":
            links = message.get("links", ())
            self._informational(103, [(b"link", link) for link in links])
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} on an http connection")

    def _start(self, message: dict) -> None:
        if self.started:
            raise RuntimeError("http.response.start sent twice")
        if self.disconnected:
            raise ClientDisconnected("the client closed the connection")
        proto = self.proto
        config = proto.config
        conn = self.conn
        headers = message.get("headers", ())
        if type(headers) is not list:
            headers = list(headers)
        worker = config.worker
        if (
            config.stopping
            or not config.keepalive
            or (worker is not None and worker.nr + 1 >= worker.max_requests)
        ):
            conn.keep_alive = False
        status = message["status"]
        if type(status) is not int or status < 200:
            # 1xx go through http.response.informational; 101 needs the WebSocket
            # support that is not here yet
            raise RuntimeError(f"invalid status {status!r} in http.response.start")
        try:
            head = conn.send_response(status, headers)
        except LocalProtocolError as exc:
            raise RuntimeError(f"invalid http.response.start: {exc.reason}") from None
        except (TypeError, AttributeError):
            raise RuntimeError(
                "invalid http.response.start: headers must be (bytes, bytes) pairs"
            ) from None
        self.started = True
        self.status = status
        self.resp_headers = headers
        if "trailers" in message:
            self.trailers = message["trailers"]
        self.head = head
        if not proto.stepping:
            # Inside a running task: flush the head when this step ends unless a
            # body joins it first.
            proto.loop.call_soon(self.flush_head)

    def flush_head(self) -> None:
        head = self.head
        if head is not None:
            self.head = None
            self.proto.write(head)

    def _body(self, body: bytes, more: bool) -> None:
        conn = self.conn
        try:
            data = conn.send_data(body) if body else b""
            tail = b"" if more or self.trailers else conn.send_end()
        except LocalProtocolError as exc:
            conn.keep_alive = False
            raise RuntimeError(f"invalid http.response.body: {exc.reason}") from None
        except TypeError:
            raise RuntimeError("http.response.body: body must be bytes") from None
        self.sent += len(body)
        proto = self.proto
        head = self.head
        if head is not None:
            self.head = None
            if len(data) > _JOIN_LIMIT:
                proto.writelines((head, data, tail))
            elif not proto.closed:
                proto.transport.write(head + data + tail if tail else head + data)
        elif tail:
            proto.write(data + tail if data else tail)
        elif data:
            proto.write(data)
        if not more and not self.trailers:
            self._complete()

    def _trailers(self, message: dict) -> None:
        if not self.trailers or not self.started or self.complete:
            raise RuntimeError("http.response.trailers without trailers announced in the start")
        if message.get("more_trailers", False):
            raise RuntimeError("more_trailers is not supported")
        headers = message.get("headers", ())
        headers = headers if type(headers) is list else list(headers)
        conn = self.conn
        try:
            tail = conn.send_end(headers)
        except LocalProtocolError:
            tail = conn.send_end()  # no chunked framing to carry them (Content-Length, HEAD)
        self.trailers = False
        self.flush_head()
        self.proto.write(tail)
        self._complete()

    def _informational(self, status: int, headers: Any) -> None:
        if self.started:
            return  # too late for a 1xx; the spec lets the server drop it
        if not 100 < status < 200 or status == 101:
            raise RuntimeError(f"invalid informational status {status}")
        data = self.conn.send_response(status, headers if type(headers) is list else list(headers))
        self.proto.write(data)

    async def _pathsend(self, path: str) -> None:
        if not self.started or self.complete:
            raise RuntimeError("http.response.pathsend outside a started response")
        proto = self.proto
        with open(path, "rb") as f:
            while True:
                block = f.read(_PATHSEND_BLOCK)
                if not block:
                    break
                self._body(block, True)
                if proto.write_paused:
                    await proto.drained()
                if self.disconnected:
                    raise ClientDisconnected("the client closed the connection")
        self._body(b"", False)

    def end_event_stream(self) -> bool:
        """Shutdown: end a ``text/event-stream`` response cleanly (its client will
        reconnect elsewhere); True when it was one."""
        if not self.started or self.complete:
            return False
        for name, value in self.resp_headers:
            if name.lower() == b"content-type" and value.lower().startswith(b"text/event-stream"):
                break
        else:
            return False
        self.flush_head()
        conn = self.conn
        conn.keep_alive = False
        try:
            tail = conn.send_end()
        except LocalProtocolError:
            self.proto.abort()
            return True
        self.proto.write(tail)
        self._complete()
        return True

    def _complete(self) -> None:
        self.complete = True
        if self.waiter is not None:
            self.wake()  # a receive() waiting for the disconnect returns now
        if self.conn.our_state is MUST_CLOSE:
            self.proto.close()

    # -- what hooks and the access log see ----------------------------------------------

    @property
    def status_code(self) -> int:
        return self.status

    def info(self) -> RequestInfo:
        """The ``req`` of ``pre_request``/``post_request`` hooks."""
        client = self.scope["client"]
        return RequestInfo(self.req, client[0] if client else "unix", scope=self.scope)

    @property
    def headers(self) -> list:
        return [(bytes(n), bytes(v)) for n, v in self.resp_headers]


# --- the connection ---------------------------------------------------------------------


class H1Protocol(asyncio.Protocol):
    """One client connection."""

    __slots__ = (
        "client",
        "closed",
        "config",
        "conn",
        "cycle",
        "drain_waiter",
        "edge",
        "extensions",
        "last_active",
        "line_method",
        "line_path",
        "line_scope",
        "line_version",
        "loop",
        "preface",
        "read_paused",
        "requests",
        "scheme",
        "scope_base",
        "server",
        "stepping",
        "transport",
        "trusted",
        "unforwarded",
        "write_paused",
    )

    def __init__(self, config: ASGIConfig, is_ssl: bool = False) -> None:
        self.config = config
        self.loop = config.loop
        self.edge: ConnectionEdge | None = None
        #: the wire protocol's connection (a ``unicorn_http.ServerConnection``)
        self.conn: Any = None
        self.transport: Any = None
        self.cycle: RequestCycle | None = None
        self.closed = False
        self.read_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future | None = None
        self.stepping = False
        self.scheme = "https" if is_ssl else "http"
        self.client: tuple | None = None
        self.server: tuple | None = None
        self.trusted = False
        self.preface: bytes | None = None
        #: the scope's extensions: the worker's, plus ``tls`` on a TLS connection
        self.extensions = config.extensions
        #: the last request's fields when they held no forwarded header
        self.unforwarded: list | None = None
        #: the scope keys every request on this connection shares; copied per request
        self.scope_base: dict = {}
        #: the request line last seen (method, path, version) and its scope keys
        self.line_method: bytes | None = None
        self.line_path: bytes | None = None
        self.line_version: bytes | None = None
        self.line_scope: dict = {}
        #: when the connection last became idle: its start, or the end of a response.
        #: Bytes of a head trickling in do not move it (client_header_timeout).
        self.last_active = config.clock
        #: requests answered on this connection (0: still waiting for its first)
        self.requests = 0

    # -- asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self.transport = transport
        config = self.config
        sock = transport.get_extra_info("sockname")
        if not isinstance(sock, tuple) and sock:
            sock = os.fsdecode(sock)
        edge = self.edge = ConnectionEdge(
            config.edge, transport.get_extra_info("peername"), sock, self.scheme == "https"
        )
        self.conn = edge.conn
        if not edge.admitted:
            self.closed = True
            transport.close()
            return
        self.client = edge.client
        self.server = edge.server
        self.trusted = edge.trusted
        ssl_object = transport.get_extra_info("ssl_object") if self.scheme == "https" else None
        if ssl_object is not None:
            try:
                tls = tls_extension(ssl_object, config.server_cert)
            except Exception:  # the connection is served all the same, without it
                config.log.exception("Could not describe the TLS connection for the scope")
            else:
                self.extensions = {**config.extensions, "tls": tls}
            if config.http2 and ssl_object.selected_alpn_protocol() == "h2":
                self._to_http2()
                return
        #: bytes a trusted cleartext peer sent that may be the HTTP/2 preface
        self.preface = b"" if config.h2_prior_knowledge and self.trusted_peer() else None
        self._scope_base()
        self.last_active = config.clock
        connections = config.connections
        connections.add(self)
        if config.on_count is not None:
            config.on_count(len(connections))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        config = self.config
        connections = config.connections
        connections.discard(self)
        cycle = self.cycle
        if cycle is not None:
            cycle.disconnected = True
            cycle.wake()
            cycle.cancel_after(config.disconnect_grace)
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if config.on_count is not None:
            config.on_count(len(connections))

    def data_received(self, data: bytes) -> None:
        if self.edge.proxy_pending is not None:  # type: ignore[union-attr]
            data = self._take_proxy_header(data)
            if not data:
                return
        if self.preface is not None:
            data = self._maybe_http2(data)
            if not data:
                return
        conn = self.conn
        try:
            conn.receive_data(data)
        except LocalProtocolError:
            return  # bytes after EOF
        cycle = self.cycle
        if cycle is None:
            self._process()
        elif cycle.waiter is not None and not cycle.body_done:
            cycle.wake()
        elif not self.read_paused:
            # Nobody is asking for these bytes (a body not being read yet, or a
            # pipelined request): stop reading until someone is.
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        """The client closed its side: the parser learns of it, so a head or packet
        cut short is refused (and logged) rather than dropped in silence."""
        conn = self.conn
        if conn is not None and self.cycle is None and not self.closed:
            try:
                conn.receive_data(b"")
            except LocalProtocolError:
                return None
            self._process()
        return None

    def _take_proxy_header(self, data: bytes) -> bytes:
        """Take the PROXY protocol header off the front of the stream: the client it
        names replaces the peer (the balancer) in the scope; the rest is HTTP."""
        edge = self.edge
        try:
            rest = edge.take_proxy_header(data)  # type: ignore[union-attr]
        except RemoteProtocolError as exc:
            self._refuse(exc)
            return b""
        if edge.proxy_pending is None and edge.client != self.client:  # type: ignore[union-attr]
            self.client = edge.client  # type: ignore[union-attr]
            self._scope_base()
        return rest

    def trusted_peer(self) -> bool:
        """The peer is in forwarded_allow_ips (the trust h2c asks for)."""
        return self.config.edge.forwarded_allow(self.edge.peer_host)  # type: ignore[union-attr]

    def _to_http2(self, initial: bytes = b"") -> None:
        """Hand the transport to an HTTP/2 session (ALPN h2, or the preface)."""
        from unicorn_asgi.http2 import H2Session

        self.closed = True  # this object serves no more; the session does
        self.config.connections.discard(self)
        H2Session(self.config, self).take_over(self.transport, initial)

    def _maybe_http2(self, data: bytes) -> bytes:
        """Prior knowledge (RFC 9113 section 3.3): a trusted peer's connection that
        opens with the preface is HTTP/2; on a prior-knowledge-only port, anything
        else from it is refused."""
        from unicorn_http.h2 import looks_like_preface

        data = self.preface + data  # type: ignore[operator]
        verdict = looks_like_preface(data)
        if verdict is None:
            self.preface = data
            return b""
        self.preface = None
        if verdict:
            self._to_http2(data)
            return b""
        if self.config.h2_only:
            self._refuse(
                RemoteProtocolError(
                    "expected the HTTP/2 connection preface (http2_cleartext is prior-knowledge)",
                    400,
                )
            )
            return b""
        return data

    def _scope_base(self) -> None:
        config = self.config
        # In the order of the keys a scope has always had; the per-request ones
        # are placeholders that _start overwrites.
        base = {
            "type": "http",
            "asgi": config.asgi,
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": "GET",
            "root_path": config.root_path,
            "path": "",
            "raw_path": b"",
            "query_string": b"",
            "headers": [],
            "extensions": self.extensions,
        }
        if config.state is not None:
            base["state"] = None
        self.scope_base = base
        self.line_path = None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if self.cycle is None and not self.closed:
            self._process()  # the next pipelined request, held back while writing was paused

    # -- reading requests ----------------------------------------------------------------

    def _process(self) -> None:
        """Read events until the parser needs bytes or a request is being served."""
        conn = self.conn
        while self.cycle is None and not self.closed:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                self._refuse(exc)
                return
            kind = type(event)
            if kind is Request:
                self._start(event)  # type: ignore[arg-type]
            elif event is NEED_DATA:
                # While the worker drains, a connection between requests is left
                # to the sweep: the client may be sending its next request after a
                # keep-alive response, and that request is served (with close).
                if self.read_paused and not self.write_paused:
                    self.resume_reading()
                return
            elif kind is ConnectionClosed:
                self.close()
                return
            elif kind is Data or kind is EndOfMessage:
                continue  # the tail of a body drained after its response
            else:  # PAUSED: a response is owed; never seen without a cycle
                return

    def _start(self, req: Request) -> None:
        config = self.config
        if req.method == b"CONNECT":
            self._refuse(CONNECT_REFUSED)
            return
        upgrade = req.upgrade
        if (
            upgrade is not None
            and upgrade in config.upgrades
            and config.upgrades[upgrade](self, req)
        ):
            return
        if (
            req.path == self.line_path
            and req.method == self.line_method
            and req.http_version == self.line_version
        ):
            scope = self.line_scope.copy()
        else:
            scope = self._line_scope(req).copy()
        scope["query_string"] = req.query
        scope["headers"] = req.headers
        state = config.state
        if state is not None:
            scope["state"] = state.copy()
        origin = self.conn.origin
        if origin is not None:
            # The protocol names the client itself (uwsgi: nginx's variables).
            if origin.client is not None:
                scope["client"] = origin.client
            if origin.server is not None:
                scope["server"] = origin.server
            if origin.scheme is not None:
                scope["scheme"] = origin.scheme
        if self.trusted:
            headers = req.headers
            # Fields equal to ones already seen without a forwarded header need no
            # second look (a keep-alive client repeats its fields, and the parser
            # then hands out the same pairs, which compare by identity).
            if headers != self.unforwarded:
                names = config.edge.forward_names
                for name, _ in headers:
                    if name in names:
                        try:
                            self._forwarded(scope, headers)
                        except RemoteProtocolError as exc:
                            self._refuse(exc)
                            return
                        break
                else:
                    self.unforwarded = list(headers)  # a copy the application cannot change
        if req.content_length or req.chunked:
            cycle = RequestCycle(self, req, scope)
        else:
            self.conn.next_event()  # the EndOfMessage of a request without a body
            cycle = RequestCycle(self, req, scope, True)
        self.cycle = cycle
        cycle.start()

    def _line_scope(self, req: Request) -> dict:
        """The scope keys a request line decides, kept for the next requests on the
        connection with the same method, path and version (clients polling an
        endpoint, health checks, proxies)."""
        text_path, raw_path = scope_paths(self.config, req.path)
        try:
            method = METHOD_NAMES[req.method]
        except KeyError:
            method = req.method.decode("ascii")
        scope = self.scope_base.copy()
        scope["http_version"] = _VERSIONS[req.http_version]
        scope["method"] = method
        scope["path"] = text_path
        scope["raw_path"] = raw_path
        self.line_scope = scope
        self.line_method = req.method
        self.line_path = req.path
        self.line_version = req.http_version
        return scope

    def _forwarded(self, scope: dict, headers: list) -> None:
        """Scheme, client and mount point from a trusted front end's headers (the
        edge's one reading of them); raises ``RemoteProtocolError`` when they
        contradict each other."""
        found = self.config.edge.forwarded(headers)
        if found.scheme is not None:
            scope["scheme"] = found.scheme
        if found.client is not None:
            scope["client"] = (found.client, 0)
        if found.script_name is not None:
            scope["root_path"] = found.script_name

    def cycle_done(self, cycle: RequestCycle) -> None:
        """The application returned: log, count, and go on with the connection."""
        if self.cycle is cycle:
            self.cycle = None
        config = self.config
        cycle.account()
        self.requests += 1
        self.last_active = config.clock
        if self.closed:
            return
        if not cycle.complete or self.conn.our_state is MUST_CLOSE:
            self.close()
            return
        if self.write_paused:
            # The client is not reading its responses: read no further request
            # until it does (resume_writing goes on), so pipelined requests cannot
            # pile up responses in the transport without bound.
            if not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()
            return
        if not self.stepping:
            self.loop.call_soon(self._process)
        # when stepping, _process is further up the stack and goes on by itself

    def _refuse(self, exc: RemoteProtocolError) -> None:
        self.write(self.edge.refuse(exc))  # type: ignore[union-attr]
        self.close()

    # -- transport helpers ---------------------------------------------------------------

    def peer_text(self) -> str:
        return self.edge.peer_text  # type: ignore[union-attr]

    def write(self, data: bytes) -> None:
        if data and not self.closed:
            self.transport.write(data)

    def writelines(self, parts: Iterable[bytes]) -> None:
        if not self.closed:
            self.transport.writelines(parts)

    def resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def drained(self) -> asyncio.Future:
        """A future done when the transport can take more bytes (or is gone)."""
        waiter = self.drain_waiter
        if waiter is None:
            waiter = self.drain_waiter = self.loop.create_future()
            if self.closed:
                waiter.set_result(None)
        return waiter

    def close(self) -> None:
        """Close once what was written is flushed."""
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        """Close now, dropping what was not sent (the response is broken)."""
        if self.transport is not None and not self.transport.is_closing():
            self.closed = True
            self.transport.abort()
        else:
            self.closed = True

    # -- the worker's sweep and shutdown -----------------------------------------------

    @property
    def idle(self) -> bool:
        return self.cycle is None

    @property
    def partial_head(self) -> bool:
        """Bytes of a request head have arrived and wait for the rest."""
        conn = self.conn
        return conn is not None and bool(conn.trailing_data[0])

    def sweep(self, now: float, keepalive: float, header_timeout: float) -> None:
        """The worker's clock (idle connections only): close one whose wait is over.

        A head still incomplete ``header_timeout`` after the connection became
        idle gets 408, however its bytes trickle; a new connection waits that
        long for its first request too. Otherwise an idle keep-alive connection
        is closed after ``keepalive``, or, while the worker drains, once its
        keep-alive time is up with no byte of a request pending (a request on
        the wire is served, with ``Connection: close``).
        """
        if self.write_paused:
            return  # not idle: a response waits for the client to read it
        waited = now - self.last_active
        if self.partial_head:
            if header_timeout and waited > header_timeout:
                self._refuse(
                    RemoteProtocolError(
                        f"request head not complete within client_header_timeout "
                        f"({header_timeout:g} s)",
                        408,
                    )
                )
        elif self.requests == 0 and not self.config.stopping:
            if header_timeout and waited > header_timeout:
                self.close()
        elif waited > keepalive:
            self.close()

    def stop(self) -> None:
        """The worker drains: idle connections are left to the sweep, which closes
        them when no request is on its way; a wait for the client is ended."""
        cycle = self.cycle
        if cycle is None:
            return
        else:
            cycle.shutdown = True
            if cycle.body_done:
                cycle.wake()
            cycle.end_event_stream()

"""WebSocket connections for the ASGI worker (the ``websocket`` scope, ASGI 2.4).

Theory of operation
-------------------
An HTTP/1.1 request with ``Upgrade: websocket`` reaches ``upgrade_websocket``
through ``ASGIConfig.upgrades``. It checks the opening handshake with
``unicorn_http.WebSocketHandshake`` (a bad one is answered 400/426 and the
application never runs), builds the scope, and hands the transport to a
``WebSocketSession`` (``transport.set_protocol``): from then on bytes go to the
session, not to the HTTP parser.

The session is also the connection's *cycle* for ``H1Protocol``: the keep-alive
sweep leaves it alone, and a draining worker calls ``end_event_stream()``,
which closes an open WebSocket with 1012 (service restart).

The application's messages move a small state machine (``_SEND`` below):
CONNECTING -> OPEN on ``websocket.accept`` (the 101 goes out, bytes that came
early are fed to the codec); CONNECTING -> closed with 403 on
``websocket.close``; CONNECTING -> RESPONSE on ``websocket.http.response.start``
(an ordinary HTTP response denies the upgrade); OPEN -> CLOSING on
``websocket.close``; and CLOSED once the peer is gone. Anything else is an
error that names the state and the message.

Received frames are decoded by ``unicorn_http.WSConnection``; whole messages
queue for ``receive()``. When more than ``_QUEUE_HIGH`` wait unread, reading
pauses until the application catches up, so a fast sender cannot fill memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from unicorn_asgi.errors import ClientDisconnected
from unicorn_asgi.http11 import scope_paths
from unicorn_core.settings import Setting
from unicorn_http import (
    NEED_DATA,
    BytesMessage,
    CloseReceived,
    LocalProtocolError,
    PerMessageDeflate,
    RemoteProtocolError,
    Request,
    TextMessage,
    WebSocketHandshake,
    WebSocketHandshakeError,
    WebSocketProtocolError,
)

__all__ = [
    "SETTINGS",
    "H2WebSocket",
    "WebSocketSession",
    "connect_websocket",
    "install",
    "upgrade_websocket",
]

SETTINGS = (
    Setting(
        name="websocket",
        section="ASGI",
        cli=("--no-websocket",),
        type="bool",
        default=True,
        flag_value=False,
        doc="Serve WebSockets on the `asgi` worker: HTTP/1.1 `Upgrade: websocket` "
        "and, on HTTP/2, extended CONNECT (RFC 8441, announced with "
        "SETTINGS_ENABLE_CONNECT_PROTOCOL). `--no-websocket` turns both off: an "
        "upgrade request reaches the application as an ordinary `http` request, "
        "and an extended CONNECT is refused with RST_STREAM.",
    ),
    Setting(
        name="websocket_max_message_size",
        section="ASGI",
        cli=("--websocket-max-message-size",),
        type="positive_int",
        meta="BYTES",
        default=16 * 1024 * 1024,
        doc="The largest WebSocket message the `asgi` worker accepts, after "
        "decompression; a larger one closes the connection with 1009 (message "
        "too big). 0 lifts the limit.",
    ),
    Setting(
        name="websocket_per_message_deflate",
        section="ASGI",
        cli=("--no-websocket-per-message-deflate",),
        type="bool",
        default=True,
        flag_value=False,
        doc="Offer permessage-deflate compression (RFC 7692) to WebSocket clients "
        "that ask for it. `--no-websocket-per-message-deflate` turns it off "
        "(to save CPU on data that is compressed already).",
    ),
)


def install(config: Any, cfg: Any) -> None:
    """Read the WebSocket settings into ``config`` and take ``Upgrade: websocket``
    (HTTP/1.1) and extended CONNECT with ``:protocol`` websocket (HTTP/2)."""
    if getattr(cfg, "websocket", True) is False:
        return
    size = getattr(cfg, "websocket_max_message_size", None)
    config.ws_max_message_size = 16 * 1024 * 1024 if size is None else int(size)
    deflate = getattr(cfg, "websocket_per_message_deflate", None)
    config.ws_deflate = True if deflate is None else bool(deflate)
    config.upgrades[b"websocket"] = upgrade_websocket
    config.connect_protocols[b"websocket"] = connect_websocket
    config.h2_options["enable_connect_protocol"] = True


_QUEUE_HIGH = 16
_CLOSE_WAIT = 5.0  # how long we wait for the peer's Close after sending ours

CONNECTING = "CONNECTING"
OPEN = "OPEN"
CLOSING = "CLOSING"
RESPONSE = "RESPONSE"
CLOSED = "CLOSED"

# (state, message type) -> handler name; a pair not here is the application's error.
_SEND = {
    (CONNECTING, "websocket.accept"): "_accept",
    (CONNECTING, "websocket.close"): "_deny",
    (CONNECTING, "websocket.http.response.start"): "_response_start",
    (RESPONSE, "websocket.http.response.body"): "_response_body",
    (OPEN, "websocket.send"): "_send_message",
    (OPEN, "websocket.close"): "_close",
    (CLOSING, "websocket.close"): "_ignore",
}

_WS_SCHEMES = {"http": "ws", "https": "wss"}


def _ws_extensions(proto: Any) -> dict:
    """A WebSocket scope's extensions: denial responses, and ``tls`` on a TLS connection."""
    extensions: dict = {"websocket.http.response": {}}
    tls = proto.extensions.get("tls")
    if tls is not None:
        extensions["tls"] = tls
    return extensions


def upgrade_websocket(proto: Any, req: Request) -> bool:
    """``ASGIConfig.upgrades[b"websocket"]``: take the connection over."""
    config = proto.config
    try:
        handshake = WebSocketHandshake.from_request(req)
    except WebSocketHandshakeError as exc:
        proto._refuse(exc)
        return True
    if not (req.content_length or req.chunked):
        proto.conn.next_event()  # the handshake's EndOfMessage
    text_path, raw_path = scope_paths(config, req.path)
    scope = {
        "type": "websocket",
        "asgi": config.asgi,
        "http_version": "1.1",
        "scheme": _WS_SCHEMES.get(proto.scheme, "ws"),
        "server": proto.server,
        "client": proto.client,
        "root_path": config.root_path,
        "path": text_path,
        "raw_path": raw_path,
        "query_string": req.query,
        "headers": req.headers,
        "subprotocols": handshake.subprotocols,
        "extensions": _ws_extensions(proto),
    }
    if config.state is not None:
        scope["state"] = config.state.copy()
    if proto.trusted:
        try:
            proto._forwarded(scope, req.headers)
        except RemoteProtocolError as exc:
            proto._refuse(exc)
            return True
        scope["scheme"] = _WS_SCHEMES.get(scope["scheme"], scope["scheme"])
    session = WebSocketSession(proto, handshake, scope)
    proto.cycle = session
    proto.transport.set_protocol(session)
    session.start()
    return True


class WebSocketSession(asyncio.Protocol):
    """One WebSocket: the application's ``receive``/``send`` and the transport's callbacks.

    The transport is reached through ``_write``, ``_pause_reading``,
    ``_resume_reading`` and ``_close_transport`` only, which ``H2WebSocket``
    replaces to run the same session on an HTTP/2 stream."""

    #: the status of an accepted handshake (RFC 6455 section 4.2.2; RFC 8441 section 5: 200)
    accept_status = 101

    def __init__(self, proto: Any, handshake: WebSocketHandshake, scope: dict) -> None:
        self.proto = proto
        self.config = proto.config
        self.conn = proto.conn
        self.handshake = handshake
        self.scope = scope
        self.state = CONNECTING
        self.ws: Any = None
        self.early: list[bytes] = []
        self.queue: deque[dict] = deque()
        self.waiter: asyncio.Future | None = None
        self.connected = False  # websocket.connect delivered
        self.close_code: int | None = None
        self.close_reason = ""
        self.read_paused = False
        self.task: asyncio.Task | None = None
        # the cycle interface H1Protocol and the worker's drain use
        self.shutdown = False
        self.body_done = True
        self.disconnected = False

    # -- running the application ---------------------------------------------------------

    def start(self) -> None:
        config = self.config
        task = config.loop.create_task(self._run())
        self.task = task
        config.tasks.add(task)
        task.add_done_callback(config.tasks.discard)

    async def _run(self) -> None:
        log = self.config.log
        try:
            await self.config.app(self.scope, self.receive, self.send)
        except Exception:
            log.exception("Exception in ASGI application (WebSocket %s)", self.scope["path"])
            if self.state == CONNECTING:
                self._write(self.conn.respond(500, [(b"content-type", b"text/plain")], b""))
                self._close_transport()
            elif self.state == OPEN:
                self._close_frame(1011, "")
            return
        if self.state == CONNECTING:
            # Returned without accepting: the upgrade is denied.
            self._deny({})
        elif self.state == OPEN:
            self._close_frame(1000, "")
        elif self.state == RESPONSE:
            log.error("ASGI application returned without completing its denial response")
            self._close_transport()

    # -- receive ---------------------------------------------------------------------------

    async def receive(self) -> dict:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        while not self.queue:
            if self.disconnected or self.state == CLOSED:
                return self._disconnect_message()
            waiter = self.waiter = self.config.loop.create_future()
            try:
                await waiter
            finally:
                self.waiter = None
        message = self.queue.popleft()
        self._maybe_resume()
        return message

    def _maybe_resume(self) -> None:
        """Read again once the application has caught up and the client reads what
        we write (the Pongs and Close echoes the protocol answers on its own)."""
        if self.read_paused and len(self.queue) < _QUEUE_HIGH // 2 and not self.proto.write_paused:
            self.read_paused = False
            self._resume_reading()

    def _disconnect_message(self) -> dict:
        return {
            "type": "websocket.disconnect",
            "code": self.close_code if self.close_code is not None else 1006,
            "reason": self.close_reason,
        }

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- send ------------------------------------------------------------------------------

    async def send(self, message: dict) -> None:
        kind = message.get("type")
        if self.disconnected or self.state == CLOSED:
            raise ClientDisconnected(f"WebSocket closed; cannot send {kind}")
        handler = _SEND.get((self.state, kind))
        if handler is None:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in WebSocket state {self.state}")
        getattr(self, handler)(message)
        if self.proto.write_paused:
            await self.proto.drained()

    def _accept(self, message: dict) -> None:
        extra = [(bytes(name), bytes(value)) for name, value in message.get("headers") or ()]
        try:
            headers, ws = self.handshake.accept(
                message.get("subprotocol"),
                extra,
                permessage_deflate=PerMessageDeflate() if self.config.ws_deflate else None,
                max_message_size=self.config.ws_max_message_size,
            )
        except LocalProtocolError as exc:
            raise RuntimeError(f"websocket.accept refused: {exc}") from None
        self._write(self.conn.send_response(self.accept_status, headers))
        self.ws = ws
        self.state = OPEN
        trailing, _ = self.conn.trailing_data
        if trailing:
            self.early.insert(0, trailing)
        early, self.early = self.early, []
        for data in early:
            ws.receive_data(data)
        if early:
            self._pump()

    def _deny(self, message: dict) -> None:
        # RFC 6455 leaves the status to the server; ASGI says 403.
        self._write(self.conn.respond(403, [(b"content-type", b"text/plain")], b""))
        self.state = CLOSED
        self.close_code = 1000
        self._close_transport()

    def _response_start(self, message: dict) -> None:
        headers = [(bytes(n), bytes(v)) for n, v in message.get("headers") or ()]
        self._write(self.conn.send_response(int(message["status"]), headers))
        self.state = RESPONSE

    def _response_body(self, message: dict) -> None:
        body = message.get("body", b"")
        if body:
            self._write(self.conn.send_data(body))
        if not message.get("more_body", False):
            self._write(self.conn.send_end())
            self.state = CLOSED
            self._close_transport()

    def _send_message(self, message: dict) -> None:
        text = message.get("text")
        if text is not None:
            self._write(self.ws.send_text(text))
        else:
            self._write(self.ws.send_bytes(message.get("bytes") or b""))

    def _close(self, message: dict) -> None:
        self._close_frame(int(message.get("code", 1000)), message.get("reason") or "")

    def _ignore(self, message: dict) -> None:
        pass

    def _close_frame(self, code: int, reason: str) -> None:
        """Send our Close, then wait a while for the peer's before closing the transport."""
        if self.state != OPEN:
            return
        self._write(self.ws.send_close(code, reason))
        self.state = CLOSING
        self.close_code = code
        self.config.loop.call_later(_CLOSE_WAIT, self._close_transport)

    # -- the transport's side --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.ws is None:
            self.early.append(data)
            if sum(map(len, self.early)) > 65536 and not self.read_paused:
                self.read_paused = True
                self._pause_reading()
            return
        self.ws.receive_data(data)
        self._pump()

    def _pump(self) -> None:
        ws = self.ws
        queue = self.queue
        while True:
            try:
                event = ws.next_event()
            except WebSocketProtocolError as exc:
                self.config.log.info(
                    "WebSocket protocol error from %s: %s (%d)",
                    self.proto.peer_text(),
                    exc.reason,
                    exc.code,
                )
                self._write(ws.data_to_send())
                self._finish(exc.code, "")
                return
            out = ws.data_to_send()
            if out:
                self._write(out)
            if event is NEED_DATA:
                break
            kind = type(event)
            if kind is TextMessage:
                queue.append({"type": "websocket.receive", "text": event.data})
            elif kind is BytesMessage:
                queue.append({"type": "websocket.receive", "bytes": event.data})
            elif kind is CloseReceived:
                self._finish(event.code, event.reason)
                return
        if queue:
            self.wake()
        # Stop reading while the application is behind, and while the client does
        # not read our writes: a Ping flood from a client that never reads would
        # otherwise pile up its Pongs in the transport without bound.
        if (len(queue) >= _QUEUE_HIGH or self.proto.write_paused) and not self.read_paused:
            self.read_paused = True
            self._pause_reading()

    def _finish(self, code: int, reason: str) -> None:
        """The WebSocket is over (the peer's Close, or a protocol error)."""
        if self.state == OPEN or self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self.state = CLOSED
        self._close_transport()
        self.wake()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.disconnected = True
        if self.state != CLOSED:
            self.state = CLOSED
            if self.close_code is None:
                self.close_code = 1006
        self.wake()
        self.proto.connection_lost(exc)

    def pause_writing(self) -> None:
        self.proto.pause_writing()

    def resume_writing(self) -> None:
        self.proto.resume_writing()
        self._maybe_resume()

    def eof_received(self) -> bool | None:
        return None

    # -- the cycle interface: the worker drains ----------------------------------------------

    def end_event_stream(self) -> bool:
        """The worker stops: an open WebSocket is closed with 1012 (service restart)."""
        if self.state == OPEN:
            self._close_frame(1012, "server shutting down")
            return True
        return False

    def _write(self, data: bytes) -> None:
        if data:
            self.proto.write(data)

    def _pause_reading(self) -> None:
        self.proto.transport.pause_reading()

    def _resume_reading(self) -> None:
        self.proto.transport.resume_reading()

    def _close_transport(self) -> None:
        self.proto.close()


# -- WebSocket over HTTP/2 (RFC 8441) ------------------------------------------------------


def connect_websocket(stream: Any, req: Request, scope: dict) -> None:
    """``ASGIConfig.connect_protocols[b"websocket"]``: an HTTP/2 extended CONNECT
    with ``:protocol`` websocket. ``scope`` is the stream's ``http`` scope, built
    (forwarded headers included) by ``H2Session``; it becomes a ``websocket`` one."""
    try:
        handshake = WebSocketHandshake.from_connect(req)
    except WebSocketHandshakeError as exc:
        stream.config.log.info(
            "Bad WebSocket handshake from %s: %s (%d)", stream.peer_text(), exc.reason, exc.status
        )
        stream.send_error(exc)
        stream.session.forget(stream)
        return
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = _WS_SCHEMES.get(scope["scheme"], scope["scheme"])
    scope["subprotocols"] = handshake.subprotocols
    scope["extensions"] = _ws_extensions(stream.session)
    session = H2WebSocket(stream, handshake, scope)
    stream.tunnel = session
    session.start()


class H2WebSocket(WebSocketSession):
    """A WebSocket on one HTTP/2 stream (RFC 8441): the same session, its frames
    carried in DATA frames.

    ``proto`` is the ``H2Stream``. Reading is paced by the stream's window: the
    bytes received while reading is paused are handed back to the client only
    once the application catches up. Frames the client's window cannot take
    yet wait in ``pending`` (the application waits in ``send()`` meanwhile;
    the Pongs of a Ping flood are bounded because reading pauses too). The
    end of the WebSocket is our END_STREAM; the client's END_STREAM is its
    end of stream (1006 without a Close), its RST_STREAM a lost connection."""

    accept_status = 200

    def __init__(self, stream: Any, handshake: WebSocketHandshake, scope: dict) -> None:
        super().__init__(stream, handshake, scope)
        self.pending: list[bytes] = []
        #: received bytes not yet given back to the client's window
        self.owed = 0
        #: our side is over: END_STREAM sent (or waiting behind ``pending``), or reset
        self.ended = False
        self.released = False

    def start(self) -> None:
        super().start()
        self.task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._maybe_release()

    # -- the stream's events (H2Session._dispatch) ------------------------------------------

    def stream_event(self, event: object) -> None:
        data = getattr(event, "data", None)
        if data is None:
            # END_STREAM: the client's side of the tunnel ended (its FIN)
            self.data_received(b"")
            return
        self.data_received(data)
        if self.read_paused:
            self.owed += len(data)
        else:
            self.proto.session.consumed(self.proto.stream_id, len(data))

    def writable(self) -> None:
        """The client opened its window (H2Stream.writable)."""
        stream = self.proto
        if self.pending and stream.session.h2.writable(stream.stream_id):
            data = b"".join(self.pending)
            self.pending.clear()
            stream.send_data(data)
        if self.ended and not self.pending:
            self._end_stream()
        self._maybe_resume()

    def connection_lost(self, exc: BaseException | None) -> None:
        """RST_STREAM from the client, or the connection went away (H2Stream.gone)."""
        self.disconnected = True
        self.pending.clear()
        if self.state != CLOSED:
            self.state = CLOSED
            if self.close_code is None:
                self.close_code = 1006
        self.ended = True
        self.wake()
        self._maybe_release()

    # -- the transport, as an HTTP/2 stream -------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not data or self.ended:
            return  # after our END_STREAM (a Pong to a late Ping) nothing more goes out
        stream = self.proto
        if self.pending or not stream.session.h2.writable(stream.stream_id):
            self.pending.append(data)
            stream.write_blocked = True
        else:
            stream.send_data(data)

    def _pause_reading(self) -> None:
        """Nothing to do: the bytes that arrive from now on are ``owed``."""

    def _resume_reading(self) -> None:
        owed, self.owed = self.owed, 0
        if owed:
            self.proto.session.consumed(self.proto.stream_id, owed)

    def _close_transport(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self.pending:
            # a client that never opens its window does not keep the stream
            self.config.loop.call_later(_CLOSE_WAIT, self._give_up)
        else:
            self._end_stream()

    def _end_stream(self) -> None:
        stream = self.proto
        if not stream.reset and stream.our_state != "DONE":
            stream.send_end()
        self._maybe_release()

    def _give_up(self) -> None:
        if self.pending:
            self.pending.clear()
            self.proto.abort()
            self._maybe_release()

    def _maybe_release(self) -> None:
        """Both the application and the stream are over: the session forgets it."""
        if self.released or not self.ended or self.pending:
            return
        task = self.task
        if task is not None and not task.done():
            return
        self.released = True
        stream = self.proto
        stream.tunnel = None
        stream.closed = True
        stream.session.forget(stream)

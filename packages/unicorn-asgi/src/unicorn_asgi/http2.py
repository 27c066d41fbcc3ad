"""ASGI over HTTP/2: one ``H2Session`` per connection, one ``H2Stream`` per request.

Theory of operation
-------------------
A connection becomes HTTP/2 in one of three ways, all decided by
``H1Protocol`` before it reads a request: ALPN selected ``h2`` on a TLS
connection; a trusted peer opened a cleartext connection with the HTTP/2
preface (``http2_cleartext`` prior-knowledge); or an HTTP/1.1 request asked
for ``Upgrade: h2c`` and was answered 101 (``http2_cleartext`` upgrade). The
transport is then handed to an :class:`H2Session`, which drives the sans-IO
``unicorn_http.h2.H2Connection``.

Each stream is an :class:`H2Stream`, which looks to the HTTP/1.1 worker's
``RequestCycle`` like the connection it already knows: ``next_event()`` gives
the body's ``Data`` and ``EndOfMessage``, ``send_response``/``send_data``/
``send_end`` put the response on the stream, ``write_paused`` and
``drained()`` are the stream's flow control. So the ASGI contract (receive,
send, trailers, early hints, pathsend, disconnects, eager start) is written
once for both versions. Every frame is written as soon as it is made: HPACK
state is shared by the streams of a connection, so header blocks must leave
in the order they were encoded.

An extended CONNECT (RFC 8441) whose ``:protocol`` has a handler in
``ASGIConfig.connect_protocols`` is not a request cycle: the handler takes
the stream (``websocket.connect_websocket`` runs the WebSocket session on it),
and the stream's DATA, END_STREAM, window and reset go to its ``tunnel``.

Flow control both ways: the client's window bounds what a stream writes (a
stream whose send buffer is full makes its application wait in ``send()``
until WINDOW_UPDATEs drain it), and our receive window is refilled only as
the application reads the body, so a slow application backpressures the
client.

Stopping: GOAWAY with the last stream id; the streams in flight finish
within ``graceful_timeout`` (event streams are ended), then the connection
closes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from unicorn_asgi.http11 import RequestCycle, scope_paths
from unicorn_http import (
    METHOD_NAMES,
    NEED_DATA,
    ConnectionClosed,
    Data,
    EndOfMessage,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
)

__all__ = ["H2Session", "H2Stream"]

_IDLE, _BODY, _DONE = "IDLE", "SEND_BODY", "DONE"
_ERROR_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]


class H2Stream:
    """One request on an HTTP/2 connection: the connection (``conn``) and the
    protocol (``proto``) a ``RequestCycle`` drives, for that stream alone."""

    __slots__ = (
        "closed",
        "config",
        "conn",
        "cycle",
        "drain_waiter",
        "events",
        "keep_alive",
        "loop",
        "our_state",
        "request",
        "reset",
        "session",
        "stepping",
        "stream_id",
        "their_state",
        "tunnel",
        "write_blocked",
    )

    #: a stream names no client of its own (the connection's edge does)
    origin = None
    read_paused = False

    def __init__(self, session: H2Session, stream_id: int, request: Request) -> None:
        self.session = session
        self.config = session.config
        self.loop = session.loop
        self.stream_id = stream_id
        self.request = request
        self.conn = self
        self.events: deque = deque()
        self.their_state = _BODY
        self.our_state = _IDLE
        self.keep_alive = True
        self.closed = False
        self.reset = False
        self.stepping = False
        self.write_blocked = False
        self.drain_waiter: asyncio.Future | None = None
        self.cycle: RequestCycle | None = None
        #: an extended CONNECT's session (RFC 8441), fed the stream's DATA instead of a cycle
        self.tunnel: Any = None

    # -- the connection a RequestCycle reads and answers ---------------------------------

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        return b"", False

    def receive_data(self, data: bytes) -> None:
        raise LocalProtocolError("an HTTP/2 stream is fed by its session")

    def next_event(self) -> object:
        events = self.events
        if events:
            event = events.popleft()
            if type(event) is Data:
                # The application takes these bytes: the client may send as many more.
                self.session.consumed(self.stream_id, len(event.data))
            return event
        if self.reset:
            return ConnectionClosed()
        return NEED_DATA

    def send_response(self, status: int, headers: list, reason: bytes = b"") -> bytes:
        session = self.session
        session.h2.send_response(self.stream_id, status, headers)
        if status >= 200:
            self.our_state = _BODY
        session.flush()
        return b""

    def send_data(self, data: bytes) -> bytes:
        session = self.session
        if data and not self.reset:
            if not session.h2.send_data(self.stream_id, data):
                self.write_blocked = True
            session.flush()
        return b""

    def send_data_length(self, count: int) -> None:
        raise LocalProtocolError("HTTP/2 bodies go through send_data")

    def send_end(self, trailers: list | None = None) -> bytes:
        session = self.session
        if not self.reset:
            session.h2.send_end(self.stream_id, trailers or None)
            session.flush()
        self.our_state = _DONE
        return b""

    def respond(self, status: int, headers: list, body: bytes = b"", reason: bytes = b"") -> bytes:
        session = self.session
        if not self.reset:
            session.h2.respond(self.stream_id, status, headers, body)
            session.flush()
        self.our_state = _DONE
        return b""

    def send_error(self, exc: RemoteProtocolError) -> bytes:
        body = f"{exc.status} {exc.reason}\n".encode()
        return self.respond(exc.status, list(_ERROR_HEADERS), body)

    # -- the protocol a RequestCycle writes through --------------------------------------

    @property
    def transport(self) -> Any:
        return self.session.transport

    @property
    def write_paused(self) -> bool:
        return self.write_blocked or self.session.write_paused

    def write(self, data: bytes) -> None:
        """Frames are written by the session as they are made; nothing waits here."""

    def writelines(self, parts: Any) -> None:
        """See :meth:`write`."""

    def drained(self) -> asyncio.Future:
        waiter = self.drain_waiter
        if waiter is None:
            waiter = self.drain_waiter = self.loop.create_future()
            if self.reset or self.session.closed or not self.write_paused:
                waiter.set_result(None)
        return waiter

    def writable(self) -> None:
        """The stream's send buffer drained, or the transport's did."""
        if not self.session.write_paused:
            self.write_blocked = False
        if self.tunnel is not None:
            self.tunnel.writable()
        waiter = self.drain_waiter
        if waiter is not None and not self.write_paused:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def resume_reading(self) -> None:
        """Flow control (``consumed``) paces the client; the socket is always read."""

    def peer_text(self) -> str:
        return self.session.edge.peer_text

    def close(self) -> None:
        """After a whole response there is nothing to close; otherwise the stream ends."""
        if self.our_state is not _DONE and not self.reset:
            self.abort()
        self.closed = True

    def abort(self) -> None:
        """The response cannot be finished (the application failed mid-body): RST_STREAM."""
        self.closed = True
        if not self.reset:
            self.reset = True
            self.session.h2.reset_stream(self.stream_id)
            self.session.flush()
        self.wake_drain()

    def gone(self) -> None:
        """The client reset the stream (or the connection went away)."""
        self.reset = True
        self.closed = True
        cycle = self.cycle
        if cycle is not None:
            cycle.disconnected = True
            cycle.wake()
            cycle.cancel_after(self.config.disconnect_grace)
        if self.tunnel is not None:
            self.tunnel.connection_lost(None)
        self.wake_drain()

    def wake_drain(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def cycle_done(self, cycle: RequestCycle) -> None:
        self.session.stream_done(self, cycle)


class H2Session(asyncio.Protocol):
    """One HTTP/2 connection of the ASGI worker."""

    def __init__(self, config: Any, proto: Any) -> None:
        from unicorn_http.h2 import H2Connection  # the [http2] extra

        self.config = config
        self.loop = config.loop
        self.edge = proto.edge
        self.transport = proto.transport
        self.client = proto.client
        self.server = proto.server
        self.scheme = proto.scheme
        self.trusted = proto.trusted
        self.extensions = proto.extensions
        self.h2 = H2Connection(**config.h2_options)
        self.streams: dict[int, H2Stream] = {}
        #: inside data_received: frames made meanwhile leave in one write at its end
        self.batching = False
        self.closed = False
        self.write_paused = False
        self.stopping = False
        self.last_active = config.clock
        #: a stream still running, for the worker's sweep (None: the connection is idle)
        self.cycle: object | None = None

    # -- how a connection becomes HTTP/2 -------------------------------------------------

    def take_over(self, transport: Any, initial: bytes = b"") -> None:
        """TLS with ALPN h2, or a cleartext connection that opened with the preface."""
        self._register(transport)
        self.h2.initiate_connection()
        self.flush()
        if initial:
            self.data_received(initial)

    def take_over_upgrade(self, transport: Any, events: list, rest: bytes) -> None:
        """An HTTP/1.1 request upgraded with ``Upgrade: h2c``: after the 101, the
        request is stream 1 (``events``) and the client's preface follows."""
        self._register(transport)
        self.flush()
        self._dispatch(events)
        if rest:
            self.data_received(rest)

    def _register(self, transport: Any) -> None:
        self.transport = transport
        transport.set_protocol(self)
        config = self.config
        connections = config.connections
        connections.add(self)
        if config.on_count is not None:
            config.on_count(len(connections))

    # -- asyncio callbacks ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        from unicorn_http.errors import H2ProtocolError

        try:
            events = self.h2.receive_data(data)
        except H2ProtocolError as exc:
            self.config.log.info(
                "HTTP/2 connection error from %s: %s (%s)",
                self.edge.peer_text,
                exc.reason,
                getattr(exc, "error_code", ""),
            )
            self.flush()
            self._close()
            return
        self.batching = True
        try:
            self._dispatch(events)
        finally:
            self.batching = False
        self.flush()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        config = self.config
        config.connections.discard(self)
        for stream in list(self.streams.values()):
            stream.gone()
        if config.on_count is not None:
            config.on_count(len(config.connections))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            stream.writable()

    def eof_received(self) -> bool | None:
        return None

    # -- events --------------------------------------------------------------------------

    def _dispatch(self, events: list) -> None:
        from unicorn_http.h2 import GoAwayReceived, StreamReset, Writable

        streams = self.streams
        for sid, event in events:
            kind = type(event)
            if kind is Request:
                self._start(sid, event)
            elif kind is Data or kind is EndOfMessage:
                stream = streams.get(sid)
                if stream is None:
                    continue
                if stream.tunnel is not None:
                    stream.tunnel.stream_event(event)
                    continue
                if kind is EndOfMessage:
                    stream.their_state = _DONE
                stream.events.append(event)
                if stream.cycle is not None:
                    stream.cycle.wake()
            elif kind is Writable:
                stream = streams.get(sid)
                if stream is not None:
                    stream.write_blocked = False
                    stream.writable()
            elif kind is StreamReset:
                stream = streams.get(sid)
                if event.reason:
                    self.config.log.info(
                        "HTTP/2 stream %d from %s refused: %s",
                        sid,
                        self.edge.peer_text,
                        event.reason,
                    )
                if stream is not None:
                    stream.gone()
            elif kind is GoAwayReceived:
                self.stopping = True
            elif kind is ConnectionClosed:
                self._close()

    def _start(self, sid: int, req: Request) -> None:
        config = self.config
        stream = H2Stream(self, sid, req)
        self.streams[sid] = stream
        self.cycle = stream
        text_path, raw_path = scope_paths(config, req.path)
        method = METHOD_NAMES.get(req.method) or req.method.decode("ascii")
        scope = {
            "type": "http",
            "asgi": config.asgi,
            "http_version": "2",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": method,
            "root_path": config.root_path,
            "path": text_path,
            "raw_path": raw_path,
            "query_string": req.query,
            "headers": req.headers,
            "extensions": self.extensions,
        }
        if config.state is not None:
            scope["state"] = config.state.copy()
        if self.trusted:
            names = config.edge.forward_names
            if any(name in names for name, _ in req.headers):
                try:
                    found = config.edge.forwarded(req.headers)
                except RemoteProtocolError as exc:
                    self.edge.rules.log.info(
                        "Bad request from %s: %s (%d)", self.edge.peer_text, exc.reason, exc.status
                    )
                    stream.send_error(exc)
                    self.streams.pop(sid, None)
                    return
                if found.scheme is not None:
                    scope["scheme"] = found.scheme
                if found.client is not None:
                    scope["client"] = (found.client, 0)
                if found.script_name is not None:
                    scope["root_path"] = found.script_name
        if req.upgrade is not None and req.method == b"CONNECT":
            # RFC 8441 extended CONNECT: the handler takes the stream over
            handler = config.connect_protocols.get(req.upgrade)
            if handler is not None:
                handler(stream, req, scope)
                return
        cycle = RequestCycle(stream, req, scope)  # type: ignore[arg-type]
        stream.cycle = cycle
        cycle.start()

    def stream_done(self, stream: H2Stream, cycle: RequestCycle) -> None:
        """The application of one stream returned: log, count, forget the stream."""
        if not cycle.complete and not stream.reset:
            stream.abort()
        cycle.account()
        stream.cycle = None
        self.forget(stream)

    def forget(self, stream: H2Stream) -> None:
        """The stream is over for us (its application returned): drop it."""
        config = self.config
        self.streams.pop(stream.stream_id, None)
        self.last_active = config.clock
        if not self.streams:
            self.cycle = None
            if config.stopping and self.h2.finished:
                self._close()
        elif self.cycle is stream:
            self.cycle = next(iter(self.streams.values()))

    # -- writing and flow control ----------------------------------------------------------

    def flush(self) -> None:
        """Write the frames made so far (one write per batch of received frames:
        they queue in order in the connection, which keeps HPACK's order)."""
        if self.batching:
            return
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    def consumed(self, stream_id: int, n: int) -> None:
        self.h2.consumed(stream_id, n)
        self.flush()

    # -- the worker's sweep and shutdown --------------------------------------------------

    @property
    def idle(self) -> bool:
        return not self.streams

    def sweep(self, now: float, keepalive: float, header_timeout: float) -> None:
        """Idle only (no stream): a frame or header block left incomplete for
        ``client_header_timeout`` ends the connection (slowloris over HTTP/2), and
        so does ``keepalive`` without a new stream."""
        pending = self.h2.pending_since
        if pending is not None and header_timeout and time.monotonic() - pending > header_timeout:
            self.config.log.info(
                "HTTP/2 connection from %s: frame not complete within client_header_timeout",
                self.edge.peer_text,
            )
            self.h2.close()
            self.flush()
            self._close()
        elif now - self.last_active > keepalive or self.config.stopping:
            self.h2.close_gracefully()
            self.flush()
            self._close()

    def stop(self) -> None:
        """The worker drains: GOAWAY, then let the streams in flight finish."""
        self.h2.close_gracefully()
        self.flush()
        if not self.streams:
            self._close()
            return
        for stream in list(self.streams.values()):
            if stream.tunnel is not None:
                stream.tunnel.end_event_stream()
            cycle = stream.cycle
            if cycle is not None:
                cycle.shutdown = True
                if cycle.body_done:
                    cycle.wake()
                cycle.end_event_stream()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def close(self) -> None:
        self._close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


def upgrade_h2c(proto: Any, req: Request) -> bool:
    """``ASGIConfig.upgrades[b"h2c"]`` (http2_cleartext upgrade, RFC 7540 section 3.2):
    a trusted peer's bodiless request with ``HTTP2-Settings`` is answered 101 and
    becomes stream 1 of an HTTP/2 connection. Anything else is served as HTTP/1.1
    (a server may ignore an upgrade)."""
    from unicorn_http.errors import H2ProtocolError

    if req.content_length or req.chunked or not proto.trusted_peer():
        return False
    settings = [v for n, v in req.headers if n == b"http2-settings"]
    if len(settings) != 1:
        return False
    conn = proto.conn
    conn.next_event()  # the EndOfMessage of the bodiless request
    session = H2Session(proto.config, proto)
    try:
        events = session.h2.initiate_upgrade_connection(settings[0].strip(), req)
    except H2ProtocolError as exc:
        proto._refuse(RemoteProtocolError(exc.reason, 400))
        return True
    proto.transport.write(
        conn.send_response(101, [(b"Connection", b"Upgrade"), (b"Upgrade", b"h2c")])
    )
    rest, _ = conn.trailing_data
    proto.config.connections.discard(proto)
    proto.closed = True
    session.take_over_upgrade(proto.transport, events, rest)
    return True

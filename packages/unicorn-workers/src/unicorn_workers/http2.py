"""WSGI over HTTP/2 for the gthread and green workers.

Theory of operation
-------------------
A connection becomes HTTP/2 before its first request is read: TLS with ALPN
``h2`` (the handshake done explicitly first when ``do_handshake_on_connect``
is off, or the selected protocol would not be known yet), or, on cleartext
with ``http2_cleartext`` prior-knowledge, a trusted peer whose first bytes
are the connection preface (peeked, not read, so anything else is served as
HTTP/1.1 by the worker's usual path); or, with ``http2_cleartext`` upgrade,
a trusted peer's HTTP/1.1 request with ``Upgrade: h2c`` that the worker's
HTTP/1.1 loop read: it is answered 101 and becomes stream 1
(``HTTP2Support.upgrade_h2c``).

Ownership. The sans-IO ``unicorn_http.h2.H2Connection`` is not thread-safe
and its HPACK state needs header blocks to leave in the order they were
encoded. An :class:`H2Session` runs one *connection thread* (a greenlet on
the green workers) that alone touches the socket: it reads frames, feeds them
to the connection, dispatches the events, and writes ``data_to_send()``.
Each stream's request runs on a pool thread (gthread) or its own greenlet
(green) through the same request code as HTTP/1.1 (``wsgi.ClientConnection.
handle``), driving a :class:`StreamWire` in place of the HTTP/1.1 parser. A
stream never writes to the socket: it calls the connection under the
session's lock (which also guards the streams' event queues) and pokes the
connection thread through a wakeup pipe to write what was made. The lock is
held only for the sans-IO calls, never across a socket operation, so a
stream blocked on the client cannot stall the others.

Flow control both ways. A stream's request body is queued as the connection
thread receives it, and its receive window is refilled only as the
application reads ``wsgi.input`` (``StreamWire.next_event``): a slow
application leaves the client's window closed, and no more than one window
per stream is ever buffered here. Writing, ``send_data`` keeps what the
client's windows do not allow in the stream's bounded buffer; when that is
full the application's thread waits on the session's condition until a
WINDOW_UPDATE drains it (``Writable``), so the response iterable is pulled
only as fast as the client reads.

Errors and stopping. An application failing before its response gets a 500
and a log line (the HTTP/1.1 code path); failing mid-response, its stream is
reset (RST_STREAM INTERNAL_ERROR) and the other streams go on. When the worker
stops (SIGTERM, HUP, ``max_requests``) the connection thread sends GOAWAY
naming the last stream accepted; those finish within ``graceful_timeout``.
A connection with no stream for ``keepalive`` seconds is closed with GOAWAY;
``http2_max_concurrent_streams`` is enforced by the connection
(REFUSED_STREAM).
"""

from __future__ import annotations

import dataclasses
import os
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from unicorn_core.http_settings import http2_options
from unicorn_http import (
    DONE,
    IDLE,
    NEED_DATA,
    SEND_BODY,
    ConnectionClosed,
    Data,
    EndOfMessage,
    RemoteProtocolError,
    Request,
)
from unicorn_workers.wsgi import ClientConnection, WSGIConfig, _ClientGone

__all__ = ["H2Session", "HTTP2Support", "StreamConnection", "StreamWire"]

_TICK = 0.25
_PREFACE_LEN = 24
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class HTTP2Support:
    """What the settings say about HTTP/2 for one worker, and its negotiation."""

    def __init__(self, cfg: Any, log: Any) -> None:
        protocols = getattr(cfg, "http_protocols", None) or ["h1"]
        self.enabled = "h2" in protocols
        cleartext = str(getattr(cfg, "http2_cleartext", "off")) if self.enabled else "off"
        self.prior_knowledge = cleartext in ("prior-knowledge", "both")
        self.only = cleartext == "prior-knowledge"
        #: a trusted peer's HTTP/1.1 ``Upgrade: h2c`` is answered 101 (upgrade_h2c)
        self.upgrade = cleartext in ("upgrade", "both")
        # no WebSocket over HTTP/2 on WSGI: extended CONNECT (RFC 8441) is not announced
        self.options = (
            {**http2_options(cfg), "enable_connect_protocol": False} if self.enabled else {}
        )
        self.handshake = not getattr(cfg, "do_handshake_on_connect", True)
        self.log = log
        if self.enabled and not cfg.is_ssl and not (self.prior_knowledge or self.upgrade):
            log.warning(
                "http_protocols includes h2 but there is no TLS and http2_cleartext is "
                "off: HTTP/2 will never be negotiated on this worker"
            )

    @classmethod
    def from_cfg(cls, cfg: Any, log: Any) -> HTTP2Support | None:
        support = cls(cfg, log)
        return support if support.enabled else None

    def negotiate(self, conn: ClientConnection) -> str | None:
        """``"h2"``: the connection is HTTP/2 now; ``"probe"``: its first bytes tell
        (see :meth:`probe`); None: HTTP/1.1."""
        sock = conn.sock
        if conn.is_ssl:
            if self.handshake and sock.version() is None:
                # do_handshake_on_connect off: ALPN is only known after the handshake.
                sock.do_handshake()
            return "h2" if sock.selected_alpn_protocol() == "h2" else None
        if self.prior_knowledge and conn.edge.trusted:
            return "probe"
        return None

    def upgrade_h2c(self, conn: ClientConnection, req: Request) -> tuple | None:
        """``http2_cleartext`` upgrade (RFC 7540 section 3.2), for a request the
        HTTP/1.1 loop read: a trusted peer's bodiless request with one
        ``HTTP2-Settings`` is answered 101 and becomes stream 1. Returns what
        ``H2Session`` takes (``upgraded``: the connection and stream 1's events)
        and the bytes already read past the request; None to serve it as
        HTTP/1.1 (a server may ignore an upgrade), or when a bad
        ``HTTP2-Settings`` was answered 400 (``conn.broken`` is then set)."""
        from unicorn_http.errors import H2ProtocolError
        from unicorn_http.h2 import H2Connection

        if (
            not self.upgrade
            or conn.is_ssl  # h2c is cleartext; TLS negotiates h2 by ALPN (RFC 7540 3.2)
            or req.content_length
            or req.chunked
            or not conn.edge.trusted
        ):
            return None
        settings = [v for n, v in req.headers if n == b"http2-settings"]
        if len(settings) != 1:
            return None
        wire = conn.wire
        wire.next_event()  # the EndOfMessage of the bodiless request
        h2 = H2Connection(**self.options)
        try:
            events = h2.initiate_upgrade_connection(settings[0].strip(), req)
        except H2ProtocolError as exc:
            conn.refuse(RemoteProtocolError(exc.reason, 400))
            conn.broken = True
            return None
        try:
            conn._send(wire.send_response(101, [(b"Connection", b"Upgrade"), (b"Upgrade", b"h2c")]))
        except _ClientGone:
            conn.broken = True
            return None
        rest, _ = wire.trailing_data
        return (h2, events), rest

    def probe(self, conn: ClientConnection) -> bool | None:
        """Peek at a trusted cleartext peer's first bytes: True for the HTTP/2
        preface (or the start of it), False for anything else, None at EOF.
        On a prior-knowledge-only port anything else gets 400 (and False)."""
        from unicorn_http.h2 import looks_like_preface

        try:
            head = conn.sock.recv(_PREFACE_LEN, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return True  # nothing yet: the connection thread waits for it
        except OSError:
            return None
        if not head:
            return None
        if looks_like_preface(head) is False:
            if self.only:
                conn.refuse(
                    RemoteProtocolError(
                        "expected the HTTP/2 connection preface "
                        "(http2_cleartext is prior-knowledge)",
                        400,
                    )
                )
                conn.broken = True
            return False
        return True


class StreamWire:
    """One stream as the ``ServerConnection`` that ``ClientConnection.handle`` drives."""

    #: a stream names no client of its own (the connection's edge does)
    origin = None

    def __init__(self, session: H2Session, stream_id: int, request: Request, ended: bool) -> None:
        self.session = session
        self.stream_id = stream_id
        self.request = request
        self.events: deque = deque()
        self.ended = ended  # the request body is all here
        self.reset = False
        self.keep_alive = True
        self.our_state = IDLE
        self.their_state = DONE if ended else SEND_BODY

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        return b"", False

    def receive_data(self, data: bytes) -> None:
        raise RuntimeError("an HTTP/2 stream is fed by its session")

    def next_event(self) -> object:
        session = self.session
        with session.lock:
            if self.events:
                event = self.events.popleft()
                if type(event) is Data:
                    # The application takes these bytes: the client may send as many more.
                    session.h2.consumed(self.stream_id, len(event.data))
                    session.poke()
                return event
            if self.reset:
                return ConnectionClosed()
            return NEED_DATA

    def wait_body(self, deadline: float | None) -> bool:
        """Wait until body events are queued (True), or the stream is over or the
        deadline passed (False)."""
        cond = self.session.cond
        with cond:
            while not self.events and not self.reset:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                cond.wait(_TICK if left is None else min(left, _TICK))
            return bool(self.events)

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        session = self.session
        with session.lock:
            if self.reset:
                raise _ClientGone
            result = method(self.stream_id, *args)
            session.poke()
            return result

    def send_response(self, status: int, headers: list, reason: bytes = b"") -> bytes:
        self._call(self.session.h2.send_response, status, headers)
        if status >= 200:
            self.our_state = SEND_BODY
        return b""

    def send_data(self, data: bytes) -> bytes:
        if not data:
            return b""
        session = self.session
        h2 = session.h2
        cond = session.cond
        deadline = time.monotonic() + session.write_timeout
        with cond:
            # The client's window is full and our buffer too: wait for WINDOW_UPDATEs.
            while not self.reset and not h2.writable(self.stream_id):
                if time.monotonic() > deadline:
                    h2.reset_stream(self.stream_id)
                    self.reset = True
                    session.poke()
                    break
                cond.wait(_TICK)
        self._call(h2.send_data, data)
        return b""

    def send_end(self) -> bytes:
        self._call(self.session.h2.send_end)
        self.our_state = DONE
        return b""

    def respond(self, status: int, headers: list, body: bytes = b"") -> bytes:
        self._call(self.session.h2.respond, status, headers, body)
        self.our_state = DONE
        return b""


class StreamConnection(ClientConnection):
    """``ClientConnection`` for one stream: the connection's edge and base environ,
    the stream's wire; the request code is HTTP/1.1's."""

    def __init__(self, parent: ClientConnection, wire: StreamWire) -> None:
        # Not super().__init__: the edge (peer, PROXY header, trust) is the connection's.
        self.sock = parent.sock
        self.config = parent.config
        self.is_ssl = parent.is_ssl
        self.edge = parent.edge
        self.wire = wire
        self.broken = False
        self.body_error = None
        self.continue_sent = False
        self.requests = 0
        self.idle = False
        self.registered = False
        self.last_active = time.monotonic()
        self.current = None
        self.started = 0.0
        self.overdue = False
        self.remote_addr = parent.remote_addr
        self.scheme = parent.scheme
        self._server = parent._server
        self.base = dict(parent.base)
        self.base["wsgi.early_hints"] = self.early_hints
        self._host_seen = None
        self.start_response = self._start_response
        self._reset()

    def fill(self) -> bool:
        return self.wire.wait_body(None) or not self.wire.reset  # type: ignore[attr-defined]

    def fill_by(self, deadline: float) -> bool | None:
        if self.wire.wait_body(deadline):  # type: ignore[attr-defined]
            return True
        return None if not self.wire.reset else False  # type: ignore[attr-defined]

    def _send(self, data: bytes) -> None:
        # Every frame is made by the wire's calls; nothing is left to write here.
        if self.broken:
            raise _ClientGone

    def refuse(self, exc: RemoteProtocolError) -> None:
        wire = self.wire
        self.edge.rules.log.info(
            "Bad request from %s on HTTP/2 stream %d: %s (%d)",
            self.edge.peer_text,
            wire.stream_id,  # type: ignore[attr-defined]
            exc.reason,
            exc.status,
        )
        if wire.our_state is IDLE:
            try:
                wire.respond(exc.status, _TEXT, exc.reason.encode("utf-8", "replace") + b"\n")
            except _ClientGone:
                self.broken = True

    def send_continue(self) -> None:
        self.continue_sent = True
        req = self.wire.request
        if req is not None and req.expect_continue and self.wire.our_state is IDLE:
            try:
                self.wire.send_response(100, [])
            except _ClientGone:
                self.broken = True

    def _sendfile(self, wrapper: Any, req: Request) -> bool:
        return False  # DATA frames under flow control, not os.sendfile

    def close(self) -> None:
        self.base = {}
        self.start_response = None  # type: ignore[assignment]


class H2Session:
    """One HTTP/2 connection of a WSGI worker: its connection thread and its streams."""

    def __init__(
        self,
        conn: ClientConnection,
        support: HTTP2Support,
        control: Any,
        spawn: Callable[[Callable[[], None]], None],
        *,
        keepalive: float,
        graceful_timeout: float,
        upgraded: tuple | None = None,
    ) -> None:
        from unicorn_http.h2 import H2Connection  # the [http2] extra

        self.conn = conn
        self.sock = conn.sock
        self.config: WSGIConfig = conn.config
        self.log = conn.config.log
        self.control = control
        self.spawn = spawn
        self.keepalive = keepalive
        self.graceful_timeout = graceful_timeout
        self.write_timeout = float(self.config.timeout or 30.0)
        #: after an h2c Upgrade (HTTP2Support.upgrade_h2c): the connection made
        #: for the 101, and the HTTP/1.1 request as stream 1's events
        self.h2, self._upgraded = (
            upgraded if upgraded is not None else (H2Connection(**support.options), None)
        )
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.streams: dict[int, StreamWire] = {}
        self.running = 0
        self.last_active = time.monotonic()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._poked = False

    # -- called by streams (lock held) ---------------------------------------------------

    def poke(self) -> None:
        """Frames were made: the connection thread writes them."""
        if not self._poked:
            self._poked = True
            try:
                os.write(self._w, b"!")
            except OSError:
                pass

    # -- the connection thread -----------------------------------------------------------

    def serve(self, initial: bytes = b"") -> None:
        try:
            self._serve(initial)
        finally:
            with self.cond:
                for wire in self.streams.values():
                    wire.reset = True
                self.cond.notify_all()
            os.close(self._r)
            os.close(self._w)

    def _serve(self, initial: bytes) -> None:
        from unicorn_http.errors import H2ProtocolError

        h2 = self.h2
        sock = self.sock
        is_ssl = self.conn.is_ssl
        control = self.control
        with self.cond:
            if self._upgraded is None:
                h2.initiate_connection()
            else:
                self._dispatch(self._upgraded)
        stopping_at: float | None = None
        data = initial
        while True:
            if data:
                received, data = data, b""
                try:
                    with self.cond:
                        events = h2.receive_data(received)
                        self._dispatch(events)
                except H2ProtocolError as exc:
                    self.log.info(
                        "HTTP/2 connection error from %s: %s (%s)",
                        self.conn.edge.peer_text,
                        exc.reason,
                        getattr(exc, "error_code", ""),
                    )
                    self._write()
                    return
            if not self._write() or h2.closed:
                return
            now = time.monotonic()
            if stopping_at is None and not control.alive:
                stopping_at = now + self.graceful_timeout
                with self.lock:
                    h2.close_gracefully()
                continue
            if stopping_at is not None:
                if h2.finished and not self.running:
                    self._linger()
                    return
                if now > stopping_at:
                    self.log.warning(
                        "Graceful timeout: closing an HTTP/2 connection with %d stream(s) "
                        "in flight",
                        len(self.streams),
                    )
                    return
            elif not self.streams and not self.running:
                if now - self.last_active > self.keepalive:
                    with self.lock:
                        h2.close_gracefully()
                    if self._write():
                        self._linger()
                    return
                pending = h2.pending_since
                limit = self.config.header_timeout
                if pending is not None and limit and time.monotonic() - pending > limit:
                    self.log.info(
                        "HTTP/2 connection from %s: frame not complete within "
                        "client_header_timeout",
                        self.conn.edge.peer_text,
                    )
                    with self.lock:
                        h2.close()
                    self._write()
                    return
            if is_ssl and sock.pending():
                ready = [sock]
            else:
                try:
                    ready, _, _ = select.select([sock, self._r], [], [], _TICK)
                except InterruptedError:
                    continue
            if self._r in ready:
                try:
                    # one read empties it (one byte per poke); a loop to EAGAIN
                    # would wait forever under eventlet's green os.read
                    os.read(self._r, 4096)
                except OSError:
                    pass
            if sock in ready:
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                    continue
                except OSError:
                    return
                if not data:
                    return

    def _linger(self) -> None:
        """After our GOAWAY: end our side and read what the client still sends for
        a moment, so that closing does not reset the connection (which could
        discard the GOAWAY before the client reads it)."""
        sock = self.sock
        try:
            if not self.conn.is_ssl:
                sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                ready, _, _ = select.select([sock], [], [], deadline - time.monotonic())
                if not ready or not sock.recv(65536):
                    return
        except (OSError, ValueError):
            pass

    def _write(self) -> bool:
        with self.lock:
            self._poked = False
            out = self.h2.data_to_send()
        if out:
            try:
                self.sock.sendall(out)
            except OSError:
                return False
        return True

    def _dispatch(self, events: list) -> None:
        """The connection's events (lock held)."""
        from unicorn_http.h2 import StreamReset, Writable

        streams = self.streams
        notify = False
        for sid, event in events:
            kind = type(event)
            if kind is Request:
                self._start(sid, event, events)
            elif kind is Data or kind is EndOfMessage:
                wire = streams.get(sid)
                if wire is not None:
                    if kind is EndOfMessage:
                        wire.ended = True
                        wire.their_state = DONE
                    wire.events.append(event)
                    notify = True
            elif kind is Writable:
                notify = True
            elif kind is StreamReset:
                wire = streams.pop(sid, None)
                if event.reason:
                    self.log.info(
                        "HTTP/2 stream %d from %s refused: %s",
                        sid,
                        self.conn.edge.peer_text,
                        event.reason,
                    )
                if wire is not None:
                    wire.reset = True
                    notify = True
            elif kind is ConnectionClosed:
                notify = True
        if notify:
            self.cond.notify_all()

    def _start(self, sid: int, req: Request, events: list) -> None:
        ended = any(s == sid and type(e) is EndOfMessage for s, e in events)
        if req.content_length is None and not ended:
            # A body without content-length: read to END_STREAM (the chunked path).
            req = dataclasses.replace(req, chunked=True)
        wire = StreamWire(self, sid, req, ended)
        self.streams[sid] = wire
        self.running += 1
        self.spawn(lambda: self._run(wire))

    def _run(self, wire: StreamWire) -> None:
        """One stream's request, on a pool thread or a greenlet."""
        stream = StreamConnection(self.conn, wire)
        try:
            stream.handle(wire.request)
        except Exception:
            self.log.exception("Error serving HTTP/2 stream %d", wire.stream_id)
        finally:
            stream.close()
            with self.lock:
                if wire.our_state is not DONE and not wire.reset:
                    # The application failed mid-response: the framing is broken.
                    self.h2.reset_stream(wire.stream_id)
                wire.reset = True
                self.streams.pop(wire.stream_id, None)
                self.running -= 1
                self.last_active = time.monotonic()
                self.poke()
            self.control.handled_request()

"""WSGI (PEP 3333) on top of unicorn_http: one ``ClientConnection`` per socket.

Theory of operation
-------------------
A worker builds one :class:`WSGIConfig` when it starts: everything read from
the settings, the caches and the constant part of every environ. Each accepted
socket gets a :class:`ClientConnection`, which owns a ``ConnectionEdge``
(``unicorn_http.edge``: trust, PROXY header, refusals), the protocol
connection it made (``wire``: the sans-IO parser and serializer of the
protocol the ``protocol`` setting chose, HTTP/1.1 or uwsgi) and a *base
environ*: the keys that do not change between the requests of one connection
(client and server address, ``wsgi.*`` values, scheme). A request's environ is a copy of that dict plus the
request line and headers, so the per-request work is one dict copy and one
pass over the headers.

The worker drives the connection: it feeds bytes with :meth:`fill` (or
``wire.receive_data``) and asks :meth:`next_request` for the next request head;
:meth:`handle` then runs the application on it and writes the response. The
body is read lazily through ``wsgi.input`` (:class:`Input`), which pulls
events from the same protocol connection and blocks on the socket only when the
application asks for bytes that have not arrived. Whatever body the
application leaves unread is drained by the protocol connection before the next
pipelined request is parsed, or the connection is closed when draining would
cost too much.

The response head is sent with the first non-empty body chunk (PEP 3333), or
with the whole body when the application returns a list, in which case it
gets a ``Content-Length`` and stays keep-alive without chunking. A failure
before the head is sent becomes a 500 with the traceback logged; a failure
after it closes the connection (the framing is broken). A client that goes
away costs only its own request: socket errors mark the connection broken and
end it quietly.
"""

from __future__ import annotations

import io
import os
import select
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from unicorn_core.http_settings import edge_options
from unicorn_core.settings import Setting
from unicorn_http import (
    CLOSED,
    CONNECT_REFUSED,
    ERROR,
    IDLE,
    METHOD_NAMES,
    MUST_CLOSE,
    NEED_DATA,
    PROTOCOL_NAMES,
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
from unicorn_workers import __version__

__all__ = [
    "ClientConnection",
    "FileWrapper",
    "Input",
    "RequestBodyError",
    "WSGIConfig",
]

SETTINGS = (
    Setting(
        name="sendfile",
        section="HTTP",
        cli=("--no-sendfile",),
        env="SENDFILE",
        type="bool",
        default=True,
        flag_value=False,
        doc="Serve `wsgi.file_wrapper` responses with `os.sendfile` when the "
        "response has a known length and the connection is not TLS. "
        "`--no-sendfile` turns it off (some virtual file systems mishandle it).",
    ),
    Setting(
        name="header_map",
        section="HTTP",
        cli=("--header-map",),
        type="choice",
        choices=("drop", "refuse", "dangerous"),
        meta="STRING",
        default="drop",
        doc="What to do with request header names containing `_`, which a WSGI "
        "environ cannot tell from `-` (`X-User_Id` and `X-User-Id` both become "
        "`HTTP_X_USER_ID`, a spoofing vector behind proxies): `drop` them "
        "silently, `refuse` the request with 400, or pass them on (`dangerous`).",
    ),
)


def settings() -> tuple[Setting, ...]:
    """The ``unicorn.settings`` entry point: the WSGI workers' own settings."""
    return SETTINGS


RECV_SIZE = 65536
SERVER_SOFTWARE = f"unicorn/{__version__}"

# RFC 9110 section 7.6.1: connection-specific fields an application must not set;
# the server frames the response itself.
_HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    )
)
_NO_BODY_STATUS = frozenset((204, 304))
_CACHE_LIMIT = 512

_500_BODY = b"Internal Server Error\n"
_500_HEADERS = [(b"Content-Type", b"text/plain; charset=utf-8")]


class RequestBodyError(OSError):
    """``wsgi.input`` could not deliver the body: the client broke the framing
    (``.error`` is the ``RemoteProtocolError``) or went away (``.error`` is None)."""

    def __init__(self, message: str, error: RemoteProtocolError | None = None) -> None:
        super().__init__(message)
        self.error = error


class _ClientGone(Exception):
    """Internal: the socket failed while writing the response."""


# --- configuration, built once per worker ---------------------------------------------


class ErrorStream:
    """``wsgi.errors``: text written by the application goes to the error log."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def write(self, text: str) -> int:
        message = text.rstrip("\n")
        if message:
            self._log.error(message)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


class WSGIConfig:
    """What every connection of one worker shares, read from the settings once.

    ``cfg`` is any object with the settings as attributes (core's ``Config`` or
    a ``SimpleNamespace`` in tests); missing ones take gunicorn's defaults.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        cfg: Any,
        log: Any,
        *,
        worker: Any = None,
        multithread: bool = False,
        multiprocess: bool | None = None,
        keepalive: bool = True,
    ) -> None:
        def get(name: str, default: Any) -> Any:
            value = getattr(cfg, name, default)
            return default if value is None else value

        self.app = app
        self.log = log
        self.worker = worker
        self.keepalive = keepalive
        #: set while the worker drains or is full: responses say Connection: close
        self.close_after_response = False
        self.timeout = float(get("timeout", 30)) or None
        #: client_header_timeout and client_body_timeout, in seconds (0: none)
        self.header_timeout = float(get("client_header_timeout", 20.0))
        self.body_timeout = float(get("client_body_timeout", 30.0))
        #: the protocol and the trust rules every connection shares (unicorn_http.edge)
        self.edge = EdgeRules(**edge_options(cfg), log=log)
        self.sendfile = bool(get("sendfile", True))
        self.header_map = get("header_map", "drop")
        root = get("root_path", "") or os.environ.get("SCRIPT_NAME", "")
        self.root_path = root.rstrip("/")
        if multiprocess is None:
            multiprocess = int(get("workers", 1)) > 1
        self.errors = ErrorStream(log)
        self.base = {
            "wsgi.version": (1, 0),
            "wsgi.errors": self.errors,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "SCRIPT_NAME": self.root_path,
        }
        self.access_enabled = bool(getattr(log, "access_enabled", False))
        self.access = (
            log.access
            if (self.access_enabled or getattr(log, "statsd", None) is not None)
            and hasattr(log, "access")
            else None
        )
        self.pre_request = getattr(worker, "pre_request_hook", None) if worker else None
        #: the worker counts requests itself (busy/idle, /metrics): core's direct calls
        self.counting = bool(getattr(worker, "counts_requests", False))
        self.post_request = getattr(worker, "post_request_hook", None) if worker else None
        #: header name (lower-case bytes) -> environ key ("" when the header is dropped)
        self.keys: dict[bytes, str] = {
            b"content-type": "CONTENT_TYPE",
            b"content-length": "CONTENT_LENGTH",
        }
        self.status_cache: dict[str, tuple[int, bytes]] = {}

    def environ_key(self, name: bytes) -> str:
        key = self.keys.get(name)
        if key is not None:
            return key
        text = name.decode("latin-1")
        if "_" in text and self.header_map != "dangerous":
            # A proxy that maps "-" to "_" cannot tell X-Auth_User from X-Auth-User:
            # drop (or refuse) names that would collide, as gunicorn does.
            key = ""
        else:
            key = "HTTP_" + text.upper().replace("-", "_")
        if len(self.keys) < _CACHE_LIMIT:
            self.keys[name] = key
        return key

    def status(self, status: str) -> tuple[int, bytes]:
        """``"200 OK"`` -> ``(200, b"")`` (empty reason: the serializer's prebuilt line)."""
        cached = self.status_cache.get(status)
        if cached is not None:
            return cached
        if type(status) is not str:
            raise TypeError(f"status must be a str, not {type(status).__name__}")
        code_text, _, reason = status.partition(" ")
        if len(code_text) != 3 or not code_text.isdigit():
            raise ValueError(f"invalid status {status!r}: must start with a 3-digit code")
        code = int(code_text)
        try:
            standard = HTTPStatus(code).phrase
        except ValueError:
            standard = None
        result = (code, b"" if reason == standard else reason.encode("latin-1"))
        if len(self.status_cache) < _CACHE_LIMIT:
            self.status_cache[status] = result
        return result


# --- wsgi.file_wrapper ---------------------------------------------------------------


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks; served with ``sendfile`` when it can."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = self.blksize
        while True:
            block = read(size)
            if not block:
                return
            yield block


# --- wsgi.input ------------------------------------------------------------------------


class _EmptyInput:
    """``wsgi.input`` of a request without a body; stateless, so shared."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())


EMPTY_INPUT = _EmptyInput()


#: client_body_timeout's allowance: one more second for every this many bytes received
BODY_MIN_RATE = 1024


class Input:
    """``wsgi.input``: the request body, read from the socket as the application asks.

    With ``client_body_timeout`` the body must arrive within that many seconds
    plus one for each KiB received; a slower body raises ``RequestBodyError``
    carrying a 408, so a trickling upload holds its thread for a bounded time.
    """

    __slots__ = ("_buf", "_conn", "_done", "_received", "_started")

    def __init__(self, conn: ClientConnection) -> None:
        self._conn = conn
        self._buf = bytearray()
        self._done = False
        self._started = 0.0
        self._received = 0

    def _chunk(self) -> bytes:
        """The next piece of body, or b"" at its end."""
        if self._done:
            return b""
        conn = self._conn
        wire = conn.wire
        while True:
            try:
                event = wire.next_event()
            except RemoteProtocolError as exc:
                self._done = True
                conn.body_error = exc
                raise RequestBodyError(f"bad request body: {exc.reason}", exc) from None
            kind = type(event)
            if kind is Data:
                self._received += len(event.data)
                return event.data
            if event is NEED_DATA:
                if not conn.continue_sent:
                    conn.send_continue()
                limit = conn.config.body_timeout
                if limit:
                    if not self._started:
                        self._started = time.monotonic()
                    deadline = self._started + limit + self._received / BODY_MIN_RATE
                    if conn.fill_by(deadline) is None:
                        self._done = True
                        exc = RemoteProtocolError(
                            f"request body not received within client_body_timeout "
                            f"({limit:g} s, then 1 s per KiB)",
                            408,
                        )
                        conn.body_error = exc
                        conn.wire.keep_alive = False
                        raise RequestBodyError(exc.reason, exc)
                elif not conn.fill():
                    continue  # EOF fed: the parser now raises or ends
            else:
                self._done = True
                return b""

    def read(self, size: int | None = -1) -> bytes:
        buf = self._buf
        if size is None or size < 0:
            parts = [bytes(buf)] if buf else []
            buf.clear()
            while chunk := self._chunk():
                parts.append(chunk)
            return b"".join(parts)
        while len(buf) < size:
            chunk = self._chunk()
            if not chunk:
                break
            if not buf and len(chunk) == size:
                return chunk
            buf += chunk
        out = bytes(buf[:size])
        del buf[:size]
        return out

    def readline(self, size: int | None = -1) -> bytes:
        buf = self._buf
        limit = size if size is not None and size >= 0 else sys.maxsize
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl >= 0 and nl < limit:
                end = nl + 1
                break
            if len(buf) >= limit:
                end = limit
                break
            start = len(buf)
            chunk = self._chunk()
            if not chunk:
                end = min(len(buf), limit)
                break
            buf += chunk
        out = bytes(buf[:end])
        del buf[:end]
        return out

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


# --- the connection ----------------------------------------------------------------------


class ClientConnection:
    """One client socket: its edge and protocol connection, the base environ, and the
    response state."""

    def __init__(
        self,
        sock: Any,
        peer: Any,
        config: WSGIConfig,
        *,
        is_ssl: bool = False,
        server: Any = None,
    ) -> None:
        self.sock = sock
        self.config = config
        self.is_ssl = is_ssl
        if server is None:
            try:
                server = sock.getsockname()
            except OSError:
                server = ""
        edge = ConnectionEdge(config.edge, peer, server, is_ssl)
        self.edge = edge
        #: the wire protocol's connection (a ``unicorn_http.ServerConnection``)
        self.wire = edge.conn
        if not config.keepalive:
            self.wire.keep_alive = False
        #: set when a socket call failed: the client is gone, end quietly
        self.broken = False
        self.body_error: RemoteProtocolError | None = None
        self.continue_sent = False
        self.requests = 0
        #: armed in the poller and owned by no thread (gthread)
        self.idle = False
        #: known to the poller (gthread): a connection served straight from
        #: accept and closed after one request never is
        self.registered = False
        self.last_active = time.monotonic()
        #: the request being served and when it began (the per-request timeout)
        self.current: Request | None = None
        self.started = 0.0
        self.overdue = False

        client = edge.client
        self.remote_addr = client[0] if client is not None else ""
        self.scheme = edge.scheme
        if isinstance(server, tuple):
            self._server = (str(server[0]), str(server[1]))
        else:
            self._server = ("localhost", "443" if is_ssl else "80")
        env = dict(config.base)
        env["wsgi.url_scheme"] = edge.scheme
        env["REMOTE_ADDR"] = self.remote_addr
        if client is not None:
            env["REMOTE_PORT"] = str(client[1])
        env["SERVER_NAME"], env["SERVER_PORT"] = self._server
        env["wsgi.early_hints"] = self.early_hints
        self.base = env
        self._host_seen: tuple[str, str, str] | None = None
        self.start_response = self._start_response
        self._reset()

    @property
    def admitted(self) -> bool:
        """False when the peer may not speak the protocol (``uwsgi_allow_ips``):
        close the socket unanswered."""
        return self.edge.admitted

    # -- reading ------------------------------------------------------------------------

    def fill(self) -> bool:
        """Read once from the socket into the parser; False at end of file."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except OSError:
            self.broken = True
            data = b""
        return self.feed(data)

    def fill_by(self, deadline: float) -> bool | None:
        """:meth:`fill`, waiting for bytes until ``deadline`` (monotonic) at the
        latest: None when it passed with nothing read."""
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if not (self.is_ssl and self.sock.pending()):
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            if not poller.poll(left * 1000):
                return None
        return self.fill()

    def feed(self, data: bytes) -> bool:
        """Hand received bytes to the parser, after the PROXY header when one is due;
        False at end of file or when the connection was refused."""
        if self.edge.proxy_pending is not None and data:
            try:
                data = self.edge.take_proxy_header(data)
            except RemoteProtocolError as exc:
                self.refuse(exc)
                return False
            self._peer_changed()
            if not data:
                return True
        self.wire.receive_data(data)
        return bool(data)

    def _peer_changed(self) -> None:
        """A PROXY header named the client: it replaces the balancer in the environ."""
        client = self.edge.client
        if client is not None:
            self.remote_addr = client[0]
            self.base["REMOTE_ADDR"] = client[0]
            if client[1]:
                self.base["REMOTE_PORT"] = str(client[1])
            else:
                self.base.pop("REMOTE_PORT", None)

    def fill_ready(self) -> bool | None:
        """Like :meth:`fill` for a socket the poller reported readable: None when
        there is nothing to read after all (a stale report), without blocking."""
        if self.is_ssl:
            return self.fill()
        try:
            data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            self.broken = True
            data = b""
        return self.feed(data)

    def next_request(self) -> Request | object | None:
        """The next request head from what was received, ``NEED_DATA``, or None when
        the connection is over (closed by the peer, or refused with an error sent)."""
        wire = self.wire
        while True:
            try:
                event = wire.next_event()
            except RemoteProtocolError as exc:
                self.refuse(exc)
                return None
            kind = type(event)
            if kind is Request:
                return event
            if event is NEED_DATA:
                return NEED_DATA
            if kind is Data or kind is EndOfMessage:
                continue  # the tail of a body drained after its response
            return None  # ConnectionClosed (or PAUSED, which a driver never sees here)

    def refuse(self, exc: RemoteProtocolError) -> None:
        """Answer a request the parser refused (400, 414, 431 ...) and end the connection."""
        data = self.edge.refuse(exc)
        if data and not self.broken:
            try:
                self._send(data)
            except _ClientGone:
                pass

    @property
    def partial_head(self) -> bool:
        """Bytes of a request head have arrived and wait for the rest."""
        return bool(self.wire.trailing_data[0])

    def time_out_head(self, limit: float) -> None:
        """The head did not arrive within ``client_header_timeout``: 408, then close."""
        self.refuse(
            RemoteProtocolError(
                f"request head not complete within client_header_timeout ({limit:g} s)", 408
            )
        )

    @property
    def must_close(self) -> bool:
        """True once the connection cannot carry another request."""
        wire = self.wire
        return (
            self.broken
            or wire.our_state is MUST_CLOSE
            or wire.their_state is CLOSED
            or wire.their_state is ERROR
        )

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        # The base environ and start_response hold bound methods of self: break
        # the cycles so the connection is freed at once, not by the cyclic GC.
        self.base = {}
        self.start_response = None  # type: ignore[assignment]

    # -- writing ----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self.broken:
            raise _ClientGone
        try:
            self.sock.sendall(data)
        except OSError:
            self.broken = True
            raise _ClientGone from None

    def send_continue(self) -> None:
        """``100 Continue``, once, before the first body read of an ``Expect`` request."""
        self.continue_sent = True
        req = self.wire.request
        if req is not None and req.expect_continue and self.wire.our_state is IDLE:
            data = self.wire.send_response(100, [])
            if data:
                try:
                    self._send(data)
                except _ClientGone:
                    pass

    def early_hints(self, headers: list[tuple[str, str]]) -> None:
        """``wsgi.early_hints``: send a ``103 Early Hints`` before the response."""
        if self._head_sent or self.wire.our_state is not IDLE:
            return
        encoded = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
        data = self.wire.send_response(103, encoded)
        if data:
            self._send(data)

    # -- the request ------------------------------------------------------------------------

    def environ(self, req: Request) -> dict[str, Any]:
        """The request's environ: the base dict, the request line and the headers."""
        config = self.config
        env = self.base.copy()
        method = METHOD_NAMES.get(req.method)
        env["REQUEST_METHOD"] = method if method is not None else req.method.decode("latin-1")
        env["QUERY_STRING"] = req.query.decode("latin-1")
        env["RAW_URI"] = req.target.decode("latin-1")
        env["SERVER_PROTOCOL"] = PROTOCOL_NAMES[req.http_version]
        scheme = self.scheme
        origin = self.wire.origin
        if origin is not None:
            # The protocol names the client itself (uwsgi: nginx's variables).
            scheme = self._apply_origin(env, origin)

        keys = config.keys
        trusted = self.edge.trusted
        rules = config.edge
        host = None
        forwarded = False
        names = rules.forward_names
        for name, value in req.headers:
            key = keys.get(name)
            if key is None:
                key = config.environ_key(name)
            if not key:
                if trusted and rules.may_forward(name):
                    key = "HTTP_" + name.decode("latin-1").upper()
                elif config.header_map == "refuse":
                    raise RemoteProtocolError(
                        f"header name {name.decode('latin-1')!r} contains an underscore"
                    )
                else:
                    continue
            text = value.decode("latin-1")
            if key in env:
                env[key] = env[key] + "," + text
            else:
                env[key] = text
            if name == b"host":
                host = text
            elif trusted and name in names:
                forwarded = True
        root = config.root_path
        if forwarded:
            found = rules.forwarded(req.headers)
            if found.scheme is not None:
                scheme = env["wsgi.url_scheme"] = found.scheme
            if found.client is not None:
                env["REMOTE_ADDR"] = found.client
                env.pop("REMOTE_PORT", None)
            if found.script_name is not None:
                root = found.script_name
                env.pop("HTTP_SCRIPT_NAME", None)
                env["SCRIPT_NAME"] = root
        path = req.path
        if b"%" in path:
            path = unquote_to_bytes(path)
        path_info = path.decode("latin-1")
        if (
            root
            and path_info.startswith(root)
            and path_info[len(root) : len(root) + 1] in ("/", "")
        ):
            path_info = path_info[len(root) :]
        env["PATH_INFO"] = path_info
        if host is not None and (origin is None or origin.server is None):
            # The Host header names the server, unless the protocol did (uwsgi:
            # nginx's SERVER_NAME/SERVER_PORT, as uWSGI itself reads them).
            seen = self._host_seen
            if seen is None or seen[0] != host or seen[1] != scheme:
                seen = self._host_seen = (host, scheme, *_split_host(host, scheme))
            env["SERVER_NAME"] = seen[2]
            env["SERVER_PORT"] = seen[3]
        if req.content_length or req.chunked:
            env["wsgi.input"] = Input(self)
        else:
            env["wsgi.input"] = EMPTY_INPUT
        return env

    def _apply_origin(self, env: dict[str, Any], origin: Any) -> str:
        """The client, server and scheme a protocol named (uwsgi) into ``env``."""
        if origin.client is not None:
            env["REMOTE_ADDR"] = origin.client[0]
            env["REMOTE_PORT"] = str(origin.client[1])
        if origin.server is not None:
            env["SERVER_NAME"] = origin.server[0]
            env["SERVER_PORT"] = str(origin.server[1])
        if origin.remote_user is not None:
            env["REMOTE_USER"] = origin.remote_user
        scheme = origin.scheme or self.scheme
        env["wsgi.url_scheme"] = scheme
        return scheme

    def _reset(self) -> None:
        self._status: str | None = None
        self._headers: list[tuple[str, str]] | None = None
        self._head_sent = False
        self._sent = 0
        self._code = 0

    def _start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: Any = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self._head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self._status is not None:
            raise AssertionError("start_response() called again without exc_info")
        if type(headers) is not list:
            raise TypeError("response headers must be a list of (name, value) tuples")
        self._status = status
        self._headers = headers
        return self.write

    def _head(self, length: int | None) -> bytes:
        """Serialize the status line and headers; ``length`` becomes Content-Length
        when the whole body is known and the application gave none."""
        if self._status is None:
            raise AssertionError("the application did not call start_response()")
        config = self.config
        code, reason = config.status(self._status)
        encoded = []
        has_length = False
        wire = self.wire
        if config.close_after_response:
            wire.keep_alive = False
        for name, value in self._headers:  # type: ignore[union-attr]
            lname = name.lower()
            if lname in _HOP_BY_HOP:
                if lname == "connection" and "close" in value.lower():
                    wire.keep_alive = False
                continue
            if lname == "content-length":
                has_length = True
            encoded.append((name.encode("latin-1"), value.encode("latin-1")))
        if length is not None and not has_length and code not in _NO_BODY_STATUS and code >= 200:
            encoded.append((b"Content-Length", b"%d" % length))
        self._code = code
        data = wire.send_response(code, encoded, reason)
        self._head_sent = True
        return data

    def write(self, data: bytes) -> None:
        """The ``write()`` callable returned by start_response, and the body path."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"response body must be bytes, not {type(data).__name__}")
            data = bytes(data)
        if not data:
            return
        self._sent += len(data)
        if self._head_sent:
            self._send(self.wire.send_data(data))
        else:
            head = self._head(None)
            self._send(head + self.wire.send_data(data))

    def _finish(self) -> None:
        if self._head_sent:
            tail = self.wire.send_end()
            if tail:
                self._send(tail)
        else:
            self._send(self._head(0) + self.wire.send_end())

    def _send_whole(self, body: bytes) -> None:
        """A body known in full before the head: one write, with a Content-Length."""
        if type(body) is not bytes:
            if not isinstance(body, (bytearray, memoryview)):
                raise TypeError(f"response body must be bytes, not {type(body).__name__}")
            body = bytes(body)
        self._sent = len(body)
        wire = self.wire
        head = self._head(len(body))
        self._send(
            head + wire.send_data(body) + wire.send_end() if body else head + wire.send_end()
        )

    def _sendfile(self, wrapper: FileWrapper, req: Request) -> bool:
        """Serve a ``wsgi.file_wrapper`` with ``os.sendfile``; False when it cannot."""
        if not self.config.sendfile or self.is_ssl or self._head_sent:
            return False
        filelike = wrapper.filelike
        try:
            fileno = filelike.fileno()
            st = os.fstat(fileno)
            if not stat.S_ISREG(st.st_mode) or "b" not in getattr(filelike, "mode", "b"):
                return False
            offset = os.lseek(fileno, 0, os.SEEK_CUR)
        except (AttributeError, OSError, io.UnsupportedOperation):
            return False
        length = None
        for name, value in self._headers or ():
            if name.lower() == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    return False
        if length is None:
            length = max(st.st_size - offset, 0)
        head = self._head(length)
        self._send(head)
        wire = self.wire
        if length and req.method != b"HEAD" and self._code not in _NO_BODY_STATUS:
            sent = self._sendfile_loop(fileno, offset, length)
            if sent < length:
                # The file shrank under us: the framing cannot be honoured.
                wire.keep_alive = False
                self.broken = True
                raise _ClientGone
            self._sent = sent
            wire.send_data_length(sent)
        self._finish()
        return True

    def _sendfile_loop(self, fileno: int, offset: int, length: int) -> int:
        """``os.sendfile`` until ``length`` bytes are out or the file ends.

        The socket is blocking with ``SO_SNDTIMEO``: a client that stops reading
        makes a call fail after ``timeout`` (``socket.sendfile`` would then wait
        in a selector without a bound).
        """
        out = self.sock.fileno()
        sent = 0
        while sent < length:
            try:
                n = os.sendfile(out, fileno, offset + sent, min(length - sent, 1 << 30))
            except OSError:
                self.broken = True
                raise _ClientGone from None
            if not n:
                break
            sent += n
        return sent

    def handle(self, req: Request) -> None:
        """Run the application on ``req`` and write its response."""
        config = self.config
        self.requests += 1
        self.started = started = time.monotonic()
        self.current = req
        self._reset()
        self.continue_sent = False
        environ = None
        result = None
        try:
            try:
                if req.method == b"CONNECT":
                    raise CONNECT_REFUSED
                environ = self.environ(req)
            except RemoteProtocolError as exc:
                self.refuse(exc)
                return
            if not (req.content_length or req.chunked):
                self.wire.next_event()  # the EndOfMessage of a bodiless request
            if config.counting:
                config.worker.request_started()
            if config.pre_request is not None:
                config.pre_request(
                    config.worker,
                    RequestInfo(
                        req, (environ or self.base).get("REMOTE_ADDR", ""), environ=environ
                    ),
                )
            result = config.app(environ, self.start_response)
            kind = type(result)
            if (kind is list or kind is tuple) and not self._head_sent:
                self._send_whole(result[0] if len(result) == 1 else b"".join(result))
            elif kind is FileWrapper and self._sendfile(result, req):
                pass
            else:
                write = self.write
                for chunk in result:
                    if chunk:
                        write(chunk)
                self._finish()
        except _ClientGone:
            self._client_gone(req)
        except Exception:
            self._app_failed(req)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    config.log.exception("Error closing the application's response iterable")
        self.current = None
        self.last_active = now = time.monotonic()
        if config.counting:
            config.worker.request_finished(
                environ["REQUEST_METHOD"], self._code or 500, now - started
            )
        if config.access is not None:
            self._log_access(req, environ, now - started)
        if config.post_request is not None:
            try:
                config.post_request(
                    config.worker,
                    RequestInfo(
                        req, (environ or self.base).get("REMOTE_ADDR", ""), environ=environ
                    ),
                    environ,
                    self,
                )
            except Exception:
                config.log.exception("Exception in post_request hook")

    def _client_gone(self, req: Request) -> None:
        self.broken = True
        self.wire.keep_alive = False
        self.config.log.debug(
            "Client %s went away during %s %s",
            self.remote_addr or "unix",
            req.method.decode("latin-1"),
            req.target.decode("latin-1"),
        )

    def _app_failed(self, req: Request) -> None:
        exc = sys.exc_info()[1]
        log = self.config.log
        if self.broken:
            self._client_gone(req)
            return
        if isinstance(exc, RequestBodyError) and exc.error is not None:
            if not self._head_sent:
                self.refuse(exc.error)
                self._code = exc.error.status
            else:
                self.broken = True
            return
        log.exception("Error handling request %s", req.target.decode("latin-1"))
        self.wire.keep_alive = False
        if self._head_sent or self.wire.our_state is not IDLE:
            # The head is out: the framing is broken, only closing is honest.
            self.broken = True
            return
        self._code = 500
        try:
            self._send(self.wire.respond(500, list(_500_HEADERS), _500_BODY))
        except (_ClientGone, LocalProtocolError):
            self.broken = True

    def _log_access(self, req: Request, environ: Any, elapsed: float) -> None:
        log_access(
            self.config.access,  # type: ignore[arg-type]
            self.config.log,
            req,
            (environ or self.base).get("REMOTE_ADDR") or "-",
            METHOD_NAMES.get(req.method) or req.method.decode("latin-1"),
            self._code or 500,
            self._sent,
            elapsed,
            self._headers or (),
            environ,
        )

    # gunicorn's ``resp`` in post_request hooks
    @property
    def status(self) -> str | None:
        return self._status

    @property
    def status_code(self) -> int:
        return self._code

    @property
    def headers(self) -> list[tuple[str, str]]:
        return self._headers or []

    @property
    def sent(self) -> int:
        return self._sent


def _split_host(host: str, scheme: str) -> tuple[str, str]:
    """``Host`` -> (SERVER_NAME, SERVER_PORT), with the scheme's default port."""
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[: end + 1], host[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    return name, port or ("443" if scheme == "https" else "80")

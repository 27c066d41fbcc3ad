"""A sans-IO HTTP/1.1 server connection: bytes in, events out; events in, bytes out.

Theory of operation
-------------------
One ``H1Connection`` serves one TCP connection. It holds two small state
machines, one per direction, and couples them at the end of each exchange:

    request side (theirs)                     response side (ours)
    IDLE --head--> BODY --end--> DONE         IDLE --Response--> BODY --end--> DONE
      |                            |            |   \\--InformationalResponse(1xx)--/
      |          (no body) ------>-+            +--101 / 2xx to CONNECT--> SWITCHED
      +--EOF--> CLOSED

``BODY`` is one of three readers: Content-Length, chunked (size line, data,
CRLF after data, trailers) or, after the response ended early, *draining*
(the rest of an unread request body is read and thrown away so the next
request can be parsed). Each reader is a bound method kept in
``self.next_event``; a transition is an assignment, so the hot path never walks
an if-chain to find its state.

When our side reaches DONE the exchange is over: if both ends want to keep
the connection and the framing allows it, both machines go back to IDLE and
the next pipelined request (already buffered, perhaps) is parsed; otherwise
the connection is MUST_CLOSE and ``next_event()`` reports
``ConnectionClosed``. While the request is DONE but the response is not,
``next_event()`` returns ``PAUSED``: pipelined requests wait their turn and
the driver should stop reading from the socket. A 101 response (or a 2xx to
CONNECT) moves both sides to SWITCHED; ``trailing_data`` then holds the bytes
that belong to the new protocol.

Every refusal of the peer's bytes is a ``RemoteProtocolError`` carrying the
status to answer with; after one, the request side is ERROR for good (the
framing of what follows is unknowable) and the only thing left to do is
``send_error(exc)`` and close.

The pieces it is built from, each small and tested alone: the input is a
``ReceiveBuffer`` (``receivebuffer.py``: no copies, a search that resumes
where it stopped); field lines are checked by ``fields.py`` (one definition
of a valid field, for what we read and what we write); what a head says of
its body and of the connection is ``framing.request_framing``, pure
functions of the fields; what the connection remembers is a ``HeadMemory``.

A connection remembers what it has checked: request lines and field lines
it has parsed before (by their exact bytes, 16 KiB of them), and its last
field block with the framing it implied. Clients repeat themselves on a
keep-alive connection, so a repeat costs a dictionary lookup or one
comparison instead of the checks, which it passed already. Checked response
fields keep their serialized line per process in the same way. Nothing that
failed a check is remembered, and every limit still applies per request.

Where the rules come from: RFC 9112 (HTTP/1.1 message syntax and framing)
and RFC 9110 (semantics); each check below names its section.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate
from itertools import repeat

from .errors import LocalProtocolError, RemoteProtocolError
from .events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    InformationalResponse,
    Request,
    Response,
)
from .fields import check_field, is_field_name, is_field_value, parse_field_lines
from .framing import RequestFraming, request_framing
from .grammar import (
    CHUNK_SIZE_RE,
    FORBIDDEN_TRAILERS,
    HOST_RE,
    HTTP_VERSION_RE,
    OBS_FOLD_RE,
    REASONS,
    TARGET_CLASSES,
)
from .receivebuffer import ReceiveBuffer

__all__ = [
    "CLOSED",
    "DONE",
    "ERROR",
    "IDLE",
    "MUST_CLOSE",
    "SEND_BODY",
    "SWITCHED",
    "H1Connection",
    "date_header",
]

# States, shared by both sides. Plain strings: compared by identity, readable in reprs.
IDLE = "IDLE"
SEND_BODY = "SEND_BODY"
DONE = "DONE"
MUST_CLOSE = "MUST_CLOSE"
CLOSED = "CLOSED"
SWITCHED = "SWITCHED"
ERROR = "ERROR"

_KNOWN_METHODS = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"CONNECT", b"TRACE")
)
# Response headers the serializer acts on.
_RESPONSE_SPECIAL = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"date", b"server")
)

_TE_LINE = (b"transfer-encoding:",)
_FRAMING_LINES = (b"transfer-encoding:", b"content-length:")

_EMPTY_EOM = EndOfMessage([])
_REDRAIN = object()  # internal: a nested drain unwinds to the draining loop


class _Raise:
    """The reader of the ERROR state: raises the refusal again, every time."""

    __slots__ = ("error",)

    def __init__(self, error: RemoteProtocolError) -> None:
        self.error = error

    def __call__(self) -> Event | object:
        raise self.error


_CLOSED_EVENT = ConnectionClosed()
_ALWAYS_CLOSED = repeat(_CLOSED_EVENT).__next__
_ALWAYS_PAUSED = repeat(PAUSED).__next__
_CRLF = b"\r\n"

# Framing of our response body.
_NO_BODY = 0  # HEAD, 1xx, 204, 304: body bytes are dropped
_LENGTH = 1  # Content-Length
_CHUNKED = 2  # Transfer-Encoding: chunked
_UNTIL_CLOSE = 3  # HTTP/1.0 without a length: the body ends when we close

_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in REASONS.items()}

_clock = time.time
#: [the time the cached line goes stale, the ``Date`` line for the second before it]
_date_cache: list = [0.0, b""]


def date_header() -> bytes:
    """The ``Date`` header line for this second (RFC 9110 section 6.6.1), built once a second."""
    now = _clock()
    if now >= _date_cache[0]:
        second = int(now)
        _date_cache[1] = b"Date: " + formatdate(second, usegmt=True).encode() + _CRLF
        _date_cache[0] = second + 1.0
    return _date_cache[1]


def _status_line(status: int, reason: bytes) -> bytes:
    if not reason:
        line = _STATUS_LINES.get(status)
        if line is not None:
            return line
        reason = REASONS.get(status, b"Unknown")
    elif not is_field_value(reason):
        raise LocalProtocolError(f"CR, LF or a control byte in reason phrase {reason!r}")
    return b"HTTP/1.1 %d %b\r\n" % (status, reason)


#: (name, value) -> its header line, for response fields that passed the checks
#: and need no interpretation: most responses repeat the same few fields.
_RESPONSE_LINES: dict[tuple[bytes, bytes], bytes] = {}
#: (name, value) -> (line, length) for Content-Length fields
_LENGTH_LINES: dict[tuple[bytes, bytes], tuple[bytes, int]] = {}
_RESPONSE_LINES_MAX = 512
_RESPONSE_LINE_CACHEABLE = 256


def _remember(table: dict, pair: tuple[bytes, bytes], line: bytes, entry: object) -> None:
    """Keep ``entry`` for a checked response field, if it is a plain short pair."""
    if (
        type(pair) is tuple
        and type(pair[0]) is bytes
        and type(pair[1]) is bytes
        and len(line) <= _RESPONSE_LINE_CACHEABLE
    ):
        if len(table) >= _RESPONSE_LINES_MAX:
            table.clear()
        table[pair] = entry


def _field_line(pair: tuple[bytes, bytes], name: bytes, value: bytes) -> bytes:
    """The header line for an ordinary response field, checked (and remembered)."""
    check_field(name, value)
    line = name + b": " + value + _CRLF
    _remember(_RESPONSE_LINES, pair, line, line)
    return line


class HeadMemory:
    """What one connection remembers of the request heads it has parsed.

    Clients repeat most of their head on every request of a keep-alive
    connection, so a line seen before skips the checks it passed then:

    - ``lines``: request line -> (method, target, version, path, query);
    - ``fields``: field line -> its (name, value) pair;
    - ``block`` / ``block_version`` / ``block_headers`` / ``block_framing``:
      the last field block whole, the version it was judged under, its pairs
      and its :class:`~unicorn_http.framing.RequestFraming`: the same block
      again costs one comparison.

    ``lines`` and ``fields`` share a budget of ``BUDGET`` bytes of keys (the
    block is kept only when it fits the budget too); when it is spent both
    are forgotten and filled again. Only what passed every check is kept.
    """

    __slots__ = (
        "block",
        "block_framing",
        "block_headers",
        "block_version",
        "fields",
        "lines",
        "size",
    )

    #: bytes of request and field lines one connection remembers
    BUDGET = 16384

    def __init__(self) -> None:
        self.lines: dict[bytes, tuple[bytes, bytes, bytes, bytes, bytes]] = {}
        self.fields: dict[bytes, tuple[bytes, bytes]] = {}
        #: bytes of keys in ``lines`` and ``fields``
        self.size = 0
        self.block: bytes | None = None
        self.block_version: bytes | None = None
        self.block_headers: tuple = ()
        self.block_framing: RequestFraming | None = None

    def room(self, size: int) -> bool:
        """Whether ``size`` more bytes of lines may be remembered (forgetting the
        older ones when the budget is spent)."""
        size += self.size
        if size > self.BUDGET:
            self.fields.clear()
            self.lines.clear()
            size -= self.size
            if size > self.BUDGET:
                self.size = 0
                return False
        self.size = size
        return True

    def keep_block(
        self, block: bytes, version: bytes, headers: Headers, framing: RequestFraming
    ) -> None:
        """Remember ``block`` as the last field block, if it is not too large."""
        if len(block) <= self.BUDGET:
            self.block = block
            self.block_version = version
            self.block_headers = tuple(headers)
            self.block_framing = framing


def _unlimited(n: int) -> int:
    return n if n > 0 else 1 << 62


class _Options:
    """The options of an ``H1Connection``, prepared once for every connection
    made with the same constructor arguments (limits, 0 made unlimited)."""

    __slots__ = (
        "limit_chunk_extensions",
        "limit_request_field_size",
        "limit_request_fields",
        "limit_request_line",
        "limit_trailer_size",
        "max_body_size",
        "max_chunk_line",
        "max_drain",
        "max_head",
        "permit_obsolete_folding",
        "send_date",
        "server_line",
    )

    def __init__(
        self,
        limit_request_line: int,
        limit_request_fields: int,
        limit_request_field_size: int,
        limit_chunk_extensions: int,
        limit_trailer_size: int,
        max_body_size: int,
        max_drain: int,
        server: bytes | None,
        send_date: bool,
        permit_obsolete_folding: bool,
    ) -> None:
        line = self.limit_request_line = _unlimited(limit_request_line)
        fields = self.limit_request_fields = _unlimited(limit_request_fields)
        field_size = self.limit_request_field_size = _unlimited(limit_request_field_size)
        extensions = self.limit_chunk_extensions = _unlimited(limit_chunk_extensions)
        self.max_chunk_line = extensions + 16
        self.limit_trailer_size = _unlimited(limit_trailer_size)
        self.max_body_size = _unlimited(max_body_size)
        self.max_drain = max_drain
        # RFC 9112 section 5.2: obs-fold is refused unless asked for; then each
        # fold becomes one SP before the fields are parsed.
        self.permit_obsolete_folding = permit_obsolete_folding
        # Longest head we wait for: a request line and every field at its limit.
        self.max_head = min(
            line + 2 + min(fields, 1 << 20) * (min(field_size, 1 << 20) + 2) + 2, 1 << 30
        )
        self.server_line = b"Server: " + server + _CRLF if server else b""
        self.send_date = send_date


#: constructor arguments -> their prepared options
_PREPARED: dict[tuple, _Options] = {}


def _option(name: str) -> property:
    return property(lambda self: getattr(self._options, name), doc=f"the ``{name}`` option")


class H1Connection:
    """The server side of one HTTP/1.1 connection.

    Drive it with ``receive_data(bytes)`` (``b""`` at EOF) and ``next_event()``;
    answer with ``send(event)`` (or the shortcuts ``send_response``,
    ``send_data``, ``send_end``, ``respond``), each of which returns the bytes
    to write. Limits follow gunicorn's setting names; 0 means unlimited.
    ``max_drain`` bounds how much of an unread request body is read and thrown
    away to keep the connection (0: never; the connection closes instead).
    """

    __slots__ = (
        # a worker may hold a connection weakly (and tests check it is freed)
        "__weakref__",
        "_body_left",
        "_body_seen",
        "_drained",
        "_draining",
        "_error",
        "_ext_seen",
        "_framing",
        "_in",
        "_in_drain",
        "_memory",
        "_options",
        "_out_left",
        "_sent_continue",
        "keep_alive",
        "next_event",
        "our_state",
        "request",
        "their_state",
    )

    #: ``next_event() -> Request | Data | EndOfMessage | ConnectionClosed | NEED_DATA | PAUSED``:
    #: the next request event; raises ``RemoteProtocolError``. It is rebound to the
    #: reader of the current state at each transition.
    next_event: Callable[[], Event | object]

    #: HTTP/1.1 names no client of its own: the socket (or a PROXY header) does
    origin = None

    limit_request_line = _option("limit_request_line")
    limit_request_fields = _option("limit_request_fields")
    limit_request_field_size = _option("limit_request_field_size")
    limit_chunk_extensions = _option("limit_chunk_extensions")
    limit_trailer_size = _option("limit_trailer_size")
    max_body_size = _option("max_body_size")
    max_drain = _option("max_drain")
    permit_obsolete_folding = _option("permit_obsolete_folding")

    def __init__(
        self,
        *,
        limit_request_line: int = 4094,
        limit_request_fields: int = 100,
        limit_request_field_size: int = 8190,
        limit_chunk_extensions: int = 4096,
        limit_trailer_size: int = 8190,
        max_body_size: int = 0,
        max_drain: int = 1 << 20,
        server: bytes | None = b"unicorn",
        send_date: bool = True,
        permit_obsolete_folding: bool = False,
    ) -> None:
        # A server makes one connection per client, a sync worker one per
        # request: the options are prepared once per set of arguments.
        args = (
            limit_request_line,
            limit_request_fields,
            limit_request_field_size,
            limit_chunk_extensions,
            limit_trailer_size,
            max_body_size,
            max_drain,
            server,
            send_date,
            permit_obsolete_folding,
        )
        options = _PREPARED.get(args)
        if options is None:
            options = _Options(*args)
            if len(_PREPARED) < 64:
                _PREPARED[args] = options
        self._options = options
        self._in = ReceiveBuffer()
        self.their_state = IDLE
        self.our_state = IDLE
        #: the request being answered (None before the first head)
        self.request: Request | None = None
        self._body_left = 0
        self._body_seen = 0
        self._ext_seen = 0
        self._draining = False
        self._in_drain = False
        self._drained = 0
        #: set False to end the connection after the current response
        #: (max_requests, shutdown); the response then carries Connection: close
        self.keep_alive = True
        self._framing = _NO_BODY
        self._out_left = 0
        self._sent_continue = False
        self._error: RemoteProtocolError | None = None
        self._memory = HeadMemory()
        self.next_event = self._read_head

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the socket; ``b""`` means the peer closed its side."""
        self._in.feed(data)

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """Bytes received past the end of what was parsed (after a protocol switch), and EOF."""
        return self._in.join(), self._in.eof

    def _fail(self, reason: str, status: int = 400) -> RemoteProtocolError:
        return self._refuse(RemoteProtocolError(reason, status))

    def _refuse(self, error: RemoteProtocolError) -> RemoteProtocolError:
        """Enter ERROR for good: every later ``next_event()`` raises ``error`` again."""
        self.their_state = ERROR
        self._error = error
        self.next_event = _Raise(error)
        return error

    # In the end states next_event is a callable that holds no reference to the
    # connection: while it is a bound method the connection is a reference cycle,
    # freed only by the cyclic garbage collector.

    # ------------------------------------------------------------ request head

    def _read_head(self) -> Event | object:
        inp = self._in
        scanned = inp.scan
        head = inp.take_until(b"\r\n\r\n")
        if head is None:
            if not inp.buf and not inp.eof:
                return NEED_DATA
            return self._head_incomplete(inp.join(), scanned)
        if not head or (head[0] == 13 and head.startswith(_CRLF)):
            # RFC 9112 section 2.2: ignore empty lines received before the request-line.
            inp.unread(head + b"\r\n\r\n")
            buf = inp.join()
            stripped = buf.lstrip(b"\r\n")
            skipped = len(buf) - len(stripped)
            if skipped > 16 or (stripped and buf[:skipped] != _CRLF * (skipped // 2)):
                raise self._fail("too many or malformed empty lines before the request line")
            if not stripped:
                # Keep them until the request line starts: a CR may await its LF, and
                # the limit must count every empty line however the reads split them.
                return self._head_incomplete(buf, 0)
            inp.advance(buf, skipped)
            return self._read_head()
        try:
            req = self._parse_head(head)
        except RemoteProtocolError as error:
            # The head's parts (fields.py, framing.py) raise; the connection
            # records the refusal once, here.
            raise self._refuse(error) from None
        return self.start_request(req)

    def start_request(self, req: Request) -> Request:
        """Take ``req`` as the request being read; its body follows in this
        connection's input, framed as ``req`` says (chunked, Content-Length, none).

        ``next_event`` calls it for each head it parses. A protocol that reads
        heads of its own (uwsgi's variables block) calls it to reuse this
        connection's body readers and response serializer for the rest.
        """
        self.request = req
        self.their_state = SEND_BODY
        self._sent_continue = False
        if req.chunked:
            self._body_seen = 0
            self._ext_seen = 0
            self.next_event = self._read_chunk_size
        elif req.content_length:
            self._body_left = req.content_length
            self.next_event = self._read_length
        else:
            self.next_event = self._read_end
        return req

    def _head_incomplete(self, buf: bytes, scanned: int) -> object:
        """No whole head yet in ``buf`` (all the unconsumed input): refuse what
        can already be refused, or wait; ``scanned`` bytes were seen before."""
        le = buf.find(b"\r\n")
        if (
            le < 0 and len(buf) > self._options.limit_request_line + 2
        ) or le > self._options.limit_request_line:
            raise self._fail(
                f"request line longer than limit_request_line ({self._options.limit_request_line} bytes)",
                414,
            )
        if len(buf) > self._options.max_head:
            raise self._fail("request head larger than the header limits allow", 431)
        # Bytes before ``scanned`` were checked by the previous call: counting the
        # whole head again at every read would make a trickled head cost O(n^2).
        s = scanned
        if not s and buf[:1] == b"\x16":
            # A TLS record (ClientHello) on a plain-HTTP listener: say so at once
            # instead of waiting for an end of line that never comes.
            raise self._fail("TLS handshake on a plain HTTP port (is the client using https://?)")
        if buf.count(b"\n", s) != buf.count(b"\r\n", s - 1 if s else 0):
            # RFC 9112 section 2.2: bare LF is not a line terminator we accept.
            raise self._fail("bare LF in request head (lines must end with CRLF)")
        if buf.count(b"\r", s) - buf.endswith(b"\r") != buf.count(b"\r\n", s):
            # RFC 9112 section 2.2: nor is a bare CR; a CR at the very end may await its LF.
            raise self._fail("bare CR in request head (lines must end with CRLF)")
        if self._in.eof:
            if not buf.strip(b"\r\n"):
                self.their_state = CLOSED
                self.next_event = _ALWAYS_CLOSED
                return _CLOSED_EVENT
            raise self._fail("connection closed in the middle of a request head")
        return NEED_DATA

    def _parse_head(self, head: bytes) -> Request:
        """The request a head (without its final CRLFCRLF) says; raises
        ``RemoteProtocolError``, which ``_read_head`` records."""
        options = self._options
        if options.permit_obsolete_folding and (b"\r\n " in head or b"\r\n\t" in head):
            head = OBS_FOLD_RE.sub(b" ", head)
        line, _, block = head.partition(b"\r\n")
        memory = self._memory
        # A request line this connection has sent before was checked then.
        known = memory.lines.get(line)
        if known is None:
            known = self._parse_request_line(line)
        method, target, http_version, path, query = known
        if block == memory.block and http_version == memory.block_version:
            # The very fields of the last request: the same pairs, the same framing.
            headers = list(memory.block_headers)
            framing = memory.block_framing
        else:
            headers = self._parse_block(block, memory, options)
            framing = request_framing(headers, http_version)
            if (
                framing.content_length is not None
                and framing.content_length > options.max_body_size
            ):
                raise RemoteProtocolError(
                    f"request body over the limit of {options.max_body_size} bytes", 413
                )
            memory.keep_block(block, http_version, headers, framing)
        return Request(method, target, headers, http_version, path, query, *framing)

    def _parse_block(self, block: bytes, memory: HeadMemory, options: _Options) -> Headers:
        """The (name, value) pairs of a request head's field block, checked."""
        if not block:
            return []
        lines = block.split(b"\r\n")
        if len(lines) > options.limit_request_fields:
            raise RemoteProtocolError(
                f"more than limit_request_fields ({options.limit_request_fields}) header fields",
                431,
            )
        seen = memory.fields
        try:
            # A line this connection has sent before was checked then: its
            # (name, value) pair is reused as it is.
            return [seen[line] for line in lines]
        except KeyError:
            pass
        headers = parse_field_lines(
            lines, block, False, options.limit_request_fields, options.limit_request_field_size
        )
        if memory.room(len(block)):
            seen.update(zip(lines, headers, strict=True))
        return headers

    def _parse_request_line(self, line: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """(method, target, version, path, query) of a request line, checked."""
        if len(line) > self._options.limit_request_line:
            raise RemoteProtocolError(
                f"request line longer than limit_request_line ({self._options.limit_request_line} bytes)",
                414,
            )

        # RFC 9112 section 3: request-line = method SP request-target SP HTTP-version
        parts = line.split(b" ")
        if len(parts) != 3:
            raise RemoteProtocolError(
                "malformed request line (expected METHOD SP TARGET SP VERSION)"
            )
        method, target, version = parts
        if version == b"HTTP/1.1":
            http_version = b"1.1"
        elif version == b"HTTP/1.0":
            http_version = b"1.0"
        elif match := HTTP_VERSION_RE.fullmatch(version):
            if match.group(1) != b"1":
                raise RemoteProtocolError(
                    f"HTTP version {version.decode('ascii')} is not supported", 505
                )
            # RFC 9110 section 2.5: a higher minor version is processed as the highest we have.
            http_version = b"1.1"
        else:
            raise RemoteProtocolError("malformed HTTP version in request line")
        if method not in _KNOWN_METHODS and not is_field_name(method):
            raise RemoteProtocolError("request method is not a token (RFC 9110 section 9.1)")
        if not target or target.translate(TARGET_CLASSES).count(0):
            raise RemoteProtocolError(
                "request target is empty or holds control, space or DEL bytes"
            )

        # RFC 9112 section 3.2: the four forms of request-target.
        first = target[0]
        if first == 47:  # "/": origin-form
            path, _, query = target.partition(b"?")
            if method == b"CONNECT":
                raise RemoteProtocolError(
                    "CONNECT needs an authority-form target (RFC 9112 section 3.2.3)"
                )
        elif method == b"CONNECT":
            if not HOST_RE.fullmatch(target) or b":" not in target:
                raise RemoteProtocolError(
                    "CONNECT target must be host:port (RFC 9112 section 3.2.3)"
                )
            path, query = target, b""
        elif target == b"*":
            if method != b"OPTIONS":
                raise RemoteProtocolError(
                    "asterisk-form target is only for OPTIONS (RFC 9112 section 3.2.4)"
                )
            path, query = target, b""
        else:
            scheme, sep, rest = target.partition(b"://")
            if not sep or not scheme.isalpha():
                raise RemoteProtocolError(
                    "request target is not origin, absolute, authority or asterisk form"
                )
            slash = rest.find(b"/")
            qmark = rest.find(b"?")
            cut = len(rest) if slash < 0 else slash
            if 0 <= qmark < cut:
                cut = qmark
            path, _, query = rest[cut:].partition(b"?")
            if not path:
                path = b"/"

        parsed = (method, target, http_version, path, query)
        memory = self._memory
        if memory.room(len(line)):
            memory.lines[line] = parsed
        return parsed

    def _parse_fields(self, block: bytes) -> Headers:
        """Split and check a field block (a trailer section)."""
        options = self._options
        if options.permit_obsolete_folding:
            block = OBS_FOLD_RE.sub(b" ", block)
        try:
            return parse_field_lines(
                block.split(b"\r\n"),
                block,
                False,
                options.limit_request_fields,
                options.limit_request_field_size,
            )
        except RemoteProtocolError as error:
            raise self._refuse(error) from None

    # ------------------------------------------------------------ request body

    def _read_end(self) -> Event | object:
        """The end of a request without a body, or of a Content-Length body read whole."""
        if self._end_of_request():
            return self.next_event()
        return _EMPTY_EOM

    def _read_length(self) -> Event | object:
        return self._take_body(self._read_end)

    def _take_body(self, then: Callable[[], Event | object]) -> Event | object:
        """The next piece of a body whose remaining length is ``_body_left``; ``then`` reads on."""
        left = self._body_left
        chunk = self._in.take(left)
        if not chunk:
            if self._in.eof:
                raise self._fail(f"connection closed with {left} bytes of the request body to come")
            return NEED_DATA
        left -= len(chunk)
        self._body_left = left
        if not left:
            self.next_event = then
        if self._draining:
            return self._drain(chunk)
        return Data(chunk)

    def _read_chunk_size(self) -> Event | object:
        inp = self._in
        line = inp.take_until(_CRLF)
        limit = self._options.max_chunk_line
        if line is None or len(line) > limit:
            if line is not None or len(inp) > limit + 2:
                raise self._fail("chunk size line longer than the chunk extension limit")
            if inp.eof:
                raise self._fail("connection closed inside a chunked request body")
            return NEED_DATA
        # Fast path: plain hex digits. int(x, 16) alone would also take "0x",
        # "_" and a sign (RFC 9112 section 7.1 allows none), so those go the
        # strict way, through the grammar.
        if line.isalnum() and len(line) <= 16 and b"x" not in line and b"X" not in line:
            try:
                size = int(line, 16)
            except ValueError:
                size = self._chunk_size_line(line)
        else:
            size = self._chunk_size_line(line)
        if size == 0:
            self.next_event = self._read_trailers
            return self._read_trailers()
        self._body_seen += size
        if self._body_seen > self._options.max_body_size:
            raise self._fail(
                f"request body over the limit of {self._options.max_body_size} bytes", 413
            )
        self._body_left = size
        self.next_event = self._read_chunk_data
        return self._take_body(self._read_chunk_crlf)

    def _chunk_size_line(self, line: bytes) -> int:
        m = CHUNK_SIZE_RE.fullmatch(line)
        if m is None:
            raise self._fail(
                "invalid chunk size line (RFC 9112 section 7.1: 1*HEXDIG [ chunk-ext ])"
            )
        ext = m.end(2) - m.start(2)
        if ext:
            self._ext_seen += ext
            if self._ext_seen > self._options.limit_chunk_extensions:
                raise self._fail("chunk extensions over their limit")
        return int(m.group(1), 16)

    def _read_chunk_data(self) -> Event | object:
        return self._take_body(self._read_chunk_crlf)

    def _read_chunk_crlf(self) -> Event | object:
        crlf = self._in.take_prefix(_CRLF)
        if not crlf:
            if crlf is False:
                raise self._fail("chunk data not followed by CRLF (RFC 9112 section 7.1)")
            if self._in.eof:
                raise self._fail("connection closed inside a chunked request body")
            return NEED_DATA
        self.next_event = self._read_chunk_size
        return self._read_chunk_size()

    def _read_trailers(self) -> Event | object:
        inp = self._in
        if inp.take_prefix(_CRLF):
            if self._end_of_request():
                return self.next_event()
            return _EMPTY_EOM
        limit = self._options.limit_trailer_size
        block = inp.take_until(b"\r\n\r\n")
        if block is None:
            buf = inp.join()
            if len(buf) > limit:
                raise self._fail("trailer section over its limit", 431)
            if len(buf) >= 2 and buf.count(b"\n") != buf.count(b"\r\n"):
                raise self._fail("bare LF in the trailer section (RFC 9112 section 2.2)")
            if inp.eof:
                raise self._fail("connection closed before the end of the chunked body")
            return NEED_DATA
        if len(block) > limit:
            raise self._fail("trailer section over its limit", 431)
        trailers = self._parse_fields(block)
        for name, _ in trailers:
            if name in FORBIDDEN_TRAILERS:
                raise self._fail(
                    f"{name.decode('latin-1')} is not allowed in a trailer section (RFC 9110 section 6.5.1)"
                )
        if self._end_of_request():
            return self.next_event()
        return EndOfMessage(trailers)

    def _drain(self, chunk: bytes) -> Event | object:
        """Throw away the rest of a body the application did not read, then go on.

        Called by a body reader in place of returning ``Data``. The outermost call
        loops over the readers; nested calls unwind to it with ``_REDRAIN``.
        """
        self._drained += len(chunk)
        if self._drained > self._options.max_drain:
            self._to_must_close()
            return _CLOSED_EVENT
        if self._in_drain:
            return _REDRAIN
        self._in_drain = True
        try:
            while True:
                event = self.next_event()
                if event is not _REDRAIN:
                    # NEED_DATA, ConnectionClosed, or (the drained request over)
                    # whatever the next head gives.
                    return event
        finally:
            self._in_drain = False

    def _end_of_request(self) -> bool:
        """The request's body is over. True when it was being drained: its response
        is long sent, so its end is not reported and the next head is read at once."""
        self.their_state = DONE
        if self._draining:
            self._draining = False
            self._start_next_cycle()
            return True
        if self.our_state is MUST_CLOSE:
            self.next_event = _ALWAYS_CLOSED
        else:
            self.next_event = self._read_after_request
        return False

    def _read_after_request(self) -> Event | object:
        if self.our_state is DONE:
            self._start_next_cycle()
            return self.next_event()
        return PAUSED

    # ---------------------------------------------------------------- output

    def send(self, event: Event) -> bytes:
        """The bytes that put ``event`` on the wire."""
        kind = type(event)
        if kind is Data:
            return self.send_data(event.data)
        if kind is EndOfMessage:
            return self.send_end(event.headers)
        if kind is Response or kind is InformationalResponse:
            return self.send_response(event.status, event.headers, event.reason)
        if kind is ConnectionClosed:
            self._to_must_close()
            self.our_state = CLOSED
            return b""
        raise LocalProtocolError(f"cannot send {event!r}")

    def send_response(self, status: int, headers: Headers, reason: bytes = b"") -> bytes:
        """A status line and headers: 1xx informational or the final response head."""
        if self.our_state is not IDLE:
            raise LocalProtocolError(f"cannot start a response in state {self.our_state}")
        req = self.request
        their = self.their_state
        if (req is None or their is IDLE) and their is not ERROR:
            raise LocalProtocolError("no request to respond to")
        if status < 200:
            return self._informational(status, headers, reason)
        if status > 599:
            raise LocalProtocolError(f"invalid status code {status}")

        content_length = None
        chunked = False
        keep_alive = self.keep_alive
        add_date = self._options.send_date
        add_server = bool(self._options.server_line)
        line = None if reason else _STATUS_LINES.get(status)
        out = [line or _status_line(status, reason)]
        known = _RESPONSE_LINES
        for pair in headers:
            # A (name, value) pair sent before was checked then; its line is kept.
            try:
                line = known.get(pair)
                if line is not None:
                    out.append(line)
                    continue
                length = _LENGTH_LINES.get(pair)
            except TypeError:  # a pair that is a list, or holds a bytearray
                length = None
            if length is not None:
                if content_length is not None:
                    raise LocalProtocolError("more than one Content-Length")
                line, content_length = length
                out.append(line)
                continue
            name, value = pair
            lname = name.lower()
            if lname in _RESPONSE_SPECIAL:
                if lname == b"content-length":
                    if not value.isdigit() or content_length is not None:
                        raise LocalProtocolError(f"invalid Content-Length {value!r}")
                    content_length = int(value)
                    line = name + b": " + value + _CRLF
                    _remember(_LENGTH_LINES, pair, line, (line, content_length))
                    out.append(line)
                    continue
                check_field(name, value)
                if lname == b"transfer-encoding":
                    if value.lower().rstrip(b" \t")[-7:] != b"chunked":
                        raise LocalProtocolError(
                            "a response Transfer-Encoding must end with chunked"
                        )
                    chunked = True
                elif lname == b"connection":
                    # Hop-by-hop and ours to manage: honour a close, send our own line.
                    if b"close" in value.lower():
                        keep_alive = False
                    continue
                elif lname == b"date":
                    add_date = False
                else:
                    add_server = False
                out.append(name + b": " + value + _CRLF)
                continue
            out.append(_field_line(pair, name, value))

        http11 = req is not None and req.http_version == b"1.1"
        method = req.method if req is not None else None
        if keep_alive and (req is None or not req.keep_alive or their is ERROR):
            keep_alive = False
        if (
            method == b"HEAD"
            or status == 204
            or status == 304
            or (method == b"CONNECT" and status < 300)
        ):
            framing = _NO_BODY
        elif chunked and content_length is not None:
            raise LocalProtocolError("both Content-Length and Transfer-Encoding in a response")
        elif content_length is not None:
            framing = _LENGTH
            self._out_left = content_length
        elif chunked and http11:
            framing = _CHUNKED
        elif http11:
            framing = _CHUNKED
            out.append(b"Transfer-Encoding: chunked\r\n")
        else:
            framing = _UNTIL_CLOSE
            keep_alive = False
        self._framing = framing
        if (chunked and (not http11 or status == 204)) or (
            content_length is not None and status == 204
        ):
            # RFC 9112 section 6.1: no Transfer-Encoding to an HTTP/1.0 client, which
            # could not decode it (the body ends when we close instead); RFC 9110
            # sections 8.6 and 6.1: neither framing field in a 204.
            drop = _FRAMING_LINES if status == 204 else _TE_LINE
            out = [line for line in out if not line.lower().startswith(drop)]

        if keep_alive and their is SEND_BODY:
            if (
                req.expect_continue  # type: ignore[union-attr]
                and not self._sent_continue
                and (req.chunked or req.content_length)  # type: ignore[union-attr]
            ):
                # The client may still be holding the body back: only closing is safe.
                keep_alive = False
            elif not req.chunked and self._body_left > self._options.max_drain:  # type: ignore[union-attr]
                keep_alive = False
        if keep_alive:
            if not http11:
                out.append(b"Connection: keep-alive\r\n")
        elif req is None or req.keep_alive or http11:
            out.append(b"Connection: close\r\n")
        self.keep_alive = keep_alive

        if add_date:
            date = _date_cache
            out.append(date[1] if _clock() < date[0] else date_header())
        if add_server:
            out.append(self._options.server_line)
        out.append(_CRLF)
        self.our_state = SEND_BODY
        if framing is _NO_BODY and method == b"CONNECT" and status < 300:
            self._switch()
        return b"".join(out)

    def _informational(self, status: int, headers: Headers, reason: bytes) -> bytes:
        if status < 100:
            raise LocalProtocolError(f"invalid status code {status}")
        req = self.request
        if req is None or self.their_state is ERROR:
            raise LocalProtocolError("no request to send an informational response to")
        if req.http_version != b"1.1":
            # RFC 9110 section 15.2: no 1xx to an HTTP/1.0 client.
            return b""
        if status == 101 and req.upgrade is None:
            raise LocalProtocolError("101 Switching Protocols without an Upgrade request")
        if status == 100:
            if self._sent_continue:
                return b""
            self._sent_continue = True
        out = [_status_line(status, reason)]
        for name, value in headers:
            check_field(name, value)
            out.append(name + b": " + value + _CRLF)
        out.append(_CRLF)
        if status == 101:
            self._switch()
        return b"".join(out)

    def _switch(self) -> None:
        self.our_state = SWITCHED
        self.their_state = SWITCHED
        self.next_event = _ALWAYS_PAUSED

    def send_data(self, data: bytes) -> bytes:
        """Frame a piece of the response body (chunked, length-checked, or dropped for HEAD)."""
        if self.our_state is not SEND_BODY:
            raise LocalProtocolError(f"cannot send body data in state {self.our_state}")
        framing = self._framing
        if framing is _CHUNKED:
            if not data:
                return b""
            return b"%x\r\n%b\r\n" % (len(data), data)
        if framing is _LENGTH:
            left = self._out_left - len(data)
            if left < 0:
                self.keep_alive = False
                raise LocalProtocolError(
                    f"response body longer than its Content-Length by {-left} bytes"
                )
            self._out_left = left
            return data
        if framing is _NO_BODY:
            return b""
        return data

    def send_data_length(self, count: int) -> None:
        """Account for ``count`` body bytes the driver wrote itself (``os.sendfile``).

        Only a Content-Length body can be sent around the serializer: chunked
        framing needs the bytes. Over-long bodies are refused as in ``send_data``.
        """
        if self.our_state is not SEND_BODY:
            raise LocalProtocolError(f"cannot send body data in state {self.our_state}")
        if self._framing is _CHUNKED:
            raise LocalProtocolError("a chunked body cannot be sent around the serializer")
        if self._framing is _LENGTH:
            left = self._out_left - count
            if left < 0:
                self.keep_alive = False
                raise LocalProtocolError(
                    f"response body longer than its Content-Length by {-left} bytes"
                )
            self._out_left = left

    def send_end(self, trailers: Headers | None = None) -> bytes:
        """End the response body; trailers go out only on a chunked body."""
        if self.our_state is not SEND_BODY:
            raise LocalProtocolError(f"cannot end a response in state {self.our_state}")
        framing = self._framing
        out = b""
        if framing is _CHUNKED:
            if trailers:
                lines = [b"0\r\n"]
                for name, value in trailers:
                    check_field(name, value, "trailer")
                    lines.append(name + b": " + value + _CRLF)
                lines.append(_CRLF)
                out = b"".join(lines)
            else:
                out = b"0\r\n\r\n"
        elif trailers:
            raise LocalProtocolError("trailers need a chunked response (no Content-Length)")
        elif framing is _LENGTH and self._out_left:
            self.keep_alive = False
            self._to_must_close()
            raise LocalProtocolError(
                f"response ended {self._out_left} bytes short of its Content-Length"
            )
        if self.keep_alive and self.their_state is DONE:
            self._start_next_cycle()  # what _end_of_response would do, one call sooner
        else:
            self._end_of_response()
        return out

    def respond(
        self, status: int, headers: Headers, body: bytes = b"", reason: bytes = b""
    ) -> bytes:
        """A whole response in one call; adds Content-Length when the headers have none."""
        for name, _ in headers:
            lname = name.lower()
            if lname == b"content-length" or lname == b"transfer-encoding":
                break
        else:
            req = self.request
            if (
                status >= 200
                and status not in (204, 304)
                and (req is None or req.method != b"HEAD")
            ):
                headers = [*headers, (b"Content-Length", b"%d" % len(body))]
        out = self.send_response(status, headers, reason)
        if body:
            out += self.send_data(body)
        return out + self.send_end()

    def send_error(self, exc: RemoteProtocolError) -> bytes:
        """The plain-text error response for a refused request; the connection must then close.

        Also answers a connection refused before any request (a bad PROXY header):
        it reads nothing more, and ``next_event()`` says ``ConnectionClosed``.
        """
        self.keep_alive = False
        if self.our_state is not IDLE:
            self._to_must_close()
            return b""
        before_any_request = self.their_state is IDLE
        if before_any_request:
            self.their_state = ERROR
        body = f"{exc.status} {REASONS.get(exc.status, b'Error').decode()}: {exc.reason}\n".encode()
        headers = [(b"Content-Type", b"text/plain; charset=utf-8"), *exc.headers]
        out = self.respond(exc.status, headers, body)
        self._to_must_close()
        if before_any_request:
            self.next_event = _ALWAYS_CLOSED
        return out

    def _end_of_response(self) -> None:
        if self.keep_alive:
            self.our_state = DONE
            if self.their_state is DONE:
                self._start_next_cycle()
            elif self.their_state is SEND_BODY:
                self._draining = True
                self._drained = 0
        else:
            self._to_must_close()

    def _to_must_close(self) -> None:
        self.our_state = MUST_CLOSE
        if self.their_state is not ERROR:
            self.next_event = _ALWAYS_CLOSED

    def start_next_cycle(self) -> None:
        """Go on to the next request without answering this one.

        For request-only uses (a recorder, a proxy's inspection, a benchmark). A
        server never needs it: ending the response restarts the cycle itself.
        """
        if self.their_state is not DONE or self.our_state is SEND_BODY:
            raise LocalProtocolError(
                f"cannot start the next cycle in state theirs={self.their_state} ours={self.our_state}"
            )
        self._start_next_cycle()

    def _start_next_cycle(self) -> None:
        self.their_state = IDLE
        self.our_state = IDLE
        self.next_event = self._read_head
        self._framing = _NO_BODY
        self._body_left = 0
        self.request = None

    def __repr__(self) -> str:
        return f"<H1Connection theirs={self.their_state} ours={self.our_state}>"

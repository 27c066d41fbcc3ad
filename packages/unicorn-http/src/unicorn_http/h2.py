"""A sans-IO HTTP/2 server connection on the ``h2`` library (the ``[http2]`` extra).

Theory of operation
-------------------
``H2Connection`` serves one TCP connection after the HTTP/2 preface (TLS with
ALPN ``h2``, cleartext prior knowledge, or an HTTP/1.1 ``Upgrade: h2c``). It
wraps ``h2.connection.H2Connection`` and speaks in the events the HTTP/1.1
side already uses, so a worker consumes both the same way::

    conn = H2Connection(http2_max_concurrent_streams=100)
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    for stream_id, event in conn.receive_data(sock.recv(65536)):
        ...                      # Request, Data, EndOfMessage, StreamReset, Writable ...
    conn.send_response(stream_id, 200, [(b"content-type", b"text/plain")])
    conn.send_data(stream_id, b"hello", end_stream=True)
    sock.sendall(conn.data_to_send())

Every event comes out as ``(stream_id, event)``; connection-level events
(``GoAwayReceived``, ``ConnectionClosed``) carry stream id 0. A request is a
``Request`` (``http_version`` ``b"2"``), its body ``Data`` pieces and one
``EndOfMessage`` holding its trailers; then the stream waits for its response.

Flow control, both ways:

- *Ours (the client's uploads).* A stream's receive window is refilled only
  when the driver says the application consumed body bytes
  (``consumed(stream_id, n)``), so a slow application backpressures the client
  instead of this process buffering. Padding is handed back at once; whatever
  a stream never consumed goes back to the connection window when it closes.
- *Theirs (our responses).* ``send_data`` writes what the client's windows
  allow and keeps the rest in the stream's buffer. It returns False once the
  buffer is at ``stream_buffer_size``: the driver must wait for the stream's
  ``Writable`` event (sent when WINDOW_UPDATEs drained it) before sending more.
  Calling it again while the buffer is full is a ``LocalProtocolError``, so a
  client that never opens its window pins at most one buffer per stream.

Malformed requests (RFC 9113 section 8.1.1: pseudo-header rules, uppercase or
non-token names, connection-specific fields, a content-length the DATA frames
contradict) are *stream* errors: the stream is reset with PROTOCOL_ERROR, a
``StreamReset(remote=False, reason=...)`` tells the driver why, and the other
streams go on. Anything that breaks the connection's framing, compression
state or limits is a connection error: the GOAWAY is queued and
``receive_data`` raises ``H2ProtocolError`` carrying its error code; write
``data_to_send()`` and close.

Bounds against the known attacks, each counted per connection:

- more concurrent streams than ``http2_max_concurrent_streams``: REFUSED_STREAM
  (the header block is still decoded, to keep HPACK in step);
- rapid reset (CVE-2023-44487): more RST_STREAMs from the client than the
  budget in a window of ``flood_window`` seconds: GOAWAY ENHANCE_YOUR_CALM;
- SETTINGS, PING, PRIORITY, empty DATA and unknown-frame floods: the same;
  WINDOW_UPDATEs are allowed in proportion to the DATA frames we send;
- CONTINUATION flood (CVE-2024-27316): a header block spread over HEADERS and
  CONTINUATION frames may hold ``header_block_limit`` bytes (h2 also stops at
  64 frames): ENHANCE_YOUR_CALM;
- HPACK bombs: the decoded header list is bounded by
  ``http2_max_header_list_size`` while it is decoded: ENHANCE_YOUR_CALM;
- oversized frames are refused from their 9-byte header, before the payload
  is buffered: FRAME_SIZE_ERROR.

Slowloris over HTTP/2 is the worker's timeout; ``pending_since`` says since
when a frame or header block has been left incomplete.

Graceful close: ``close_gracefully()`` sends GOAWAY(NO_ERROR) naming the last
stream accepted; those streams finish, later ones are refused, and
``finished`` turns True when none is left.

Where h2 needed help, a small subclass (``_ServerH2``) overrides three of its
frame handlers (HEADERS, DATA, GOAWAY) and another (``_FrameBuffer``) three
hooks of its frame buffer; each override says why. h2's own inbound header
validation is off: requests are checked here in one pass (``_parse_request``).

Not thread-safe. A threaded driver holds one lock around each call *and* the
write of the ``data_to_send()`` that follows it: HPACK needs header blocks to
reach the client in the order they were encoded.
"""

from __future__ import annotations

import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass

try:
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.exceptions
    import h2.frame_buffer
    import h2.settings
    import h2.stream
    from hpack.exceptions import HPACKError, OversizedHeaderListError
    from hyperframe.frame import ContinuationFrame, GoAwayFrame, HeadersFrame, RstStreamFrame
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "unicorn_http.h2 needs the h2 library: install unicorn-http[http2] (or unicorn[http2])"
    ) from exc

from .errors import H2ProtocolError, LocalProtocolError
from .events import ConnectionClosed, Data, EndOfMessage, Headers, Request
from .grammar import FIELD_VALUE_BYTES, FORBIDDEN_TRAILERS, HOST_RE, TARGET_CLASSES, TCHAR
from .h1 import date_header

__all__ = [
    "CONNECTION_PREFACE",
    "ErrorCode",
    "GoAwayReceived",
    "H2Connection",
    "StreamReset",
    "Writable",
    "looks_like_preface",
]

ErrorCode = h2.errors.ErrorCodes

#: RFC 9113 section 3.4: what a client sends first on a prior-knowledge connection.
CONNECTION_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def looks_like_preface(data: bytes) -> bool | None:
    """Whether the first bytes of a cleartext connection are the HTTP/2 preface:
    True, False, or None when they are too few to tell yet."""
    if len(data) >= len(CONNECTION_PREFACE):
        return data.startswith(CONNECTION_PREFACE)
    if CONNECTION_PREFACE.startswith(data):
        return None
    return False


# --------------------------------------------------------------------- events


@dataclass(slots=True)
class StreamReset:
    """The stream is gone: the client reset it (``remote``), or we did because
    its request was malformed or refused (``reason`` says which rule)."""

    error_code: int
    remote: bool = True
    reason: str = ""


@dataclass(slots=True)
class Writable:
    """The stream's send buffer drained below its bound: the application may send again."""


@dataclass(slots=True)
class GoAwayReceived:
    """The client will open no more streams (and, with an error code, gave up on the rest)."""

    error_code: int
    last_stream_id: int


# ----------------------------------------------------------------- h2, helped


class _StreamError(h2.events.Event):
    """Internal: a request refused as a stream error inside h2's frame loop."""

    def __init__(self, stream_id: int, error_code: int, reason: str, window: int = 0) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.reason = reason
        self.window = window  # flow-controlled bytes of the frame that was refused


class _CompressionError(h2.exceptions.ProtocolError):
    # RFC 9113 section 4.3: a header block that fails to decode is a connection
    # error of type COMPRESSION_ERROR (h2 says PROTOCOL_ERROR).
    error_code = ErrorCode.COMPRESSION_ERROR


class _FrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's frame buffer, refusing an oversized frame from its header and bounding
    the bytes of one header block across CONTINUATION frames."""

    def __init__(self, max_frame_size: int, block_limit: int, spend: Callable[[int], None]) -> None:
        super().__init__(server=True)
        self.spend = spend
        self.max_frame_size = max_frame_size
        self.block_limit = block_limit
        self._block_size = 0

    def add_data(self, data: bytes) -> None:
        super().add_data(data)
        # h2 checks a frame's length only once the whole frame is buffered: a
        # 16 MiB length would be waited for. Every whole frame before this one
        # was consumed by the last receive_data, so the first header is the one
        # to check (RFC 9113 section 4.2).
        buf = self._data
        if len(buf) >= 3:
            length = (buf[0] << 16) | (buf[1] << 8) | buf[2]
            if length > self.max_frame_size:
                raise h2.exceptions.FrameTooLargeError(
                    f"frame of {length} bytes over SETTINGS_MAX_FRAME_SIZE "
                    f"({self.max_frame_size}) (RFC 9113 section 4.2)"
                )

    def __next__(self):  # type: ignore[no-untyped-def]
        buf = self._data
        if len(buf) >= 9:
            kind = buf[3]
            if (kind == 0x6 or kind == 0x4) and not buf[4] & 0x1:
                # PING and SETTINGS are counted before h2 answers them, so a
                # flood gets no more answers than the budget (RFC 9113 section 10.5).
                if len(buf) >= 9 + ((buf[0] << 16) | (buf[1] << 8) | buf[2]):
                    self.spend(_PINGS if kind == 0x6 else _SETTINGS)
            elif kind == 0x4 and (buf[0] or buf[1] or buf[2]):
                # RFC 9113 section 6.5: a SETTINGS ACK with a payload is a
                # FRAME_SIZE_ERROR (hyperframe's refusal would make it PROTOCOL_ERROR).
                raise h2.exceptions.FrameDataMissingError(
                    "SETTINGS frame with ACK and a payload (RFC 9113 section 6.5)"
                )
        return super().__next__()

    def _update_header_buffer(self, f):  # type: ignore[no-untyped-def]
        in_block = self._headers_buffer or (
            type(f) is HeadersFrame and "END_HEADERS" not in f.flags
        )
        if in_block and (type(f) is HeadersFrame or type(f) is ContinuationFrame):
            self._block_size += len(f.data)
            if self._block_size > self.block_limit:
                raise h2.exceptions.DenialOfServiceError(
                    f"header block over {self.block_limit} bytes across CONTINUATION "
                    "frames (CVE-2024-27316)"
                )
        result = super()._update_header_buffer(f)
        if not self._headers_buffer:
            self._block_size = 0
        return result

    @property
    def incomplete(self) -> bool:
        return bool(self._data) or bool(self._headers_buffer) or 0 < self._preamble_len < 24


class _ServerH2(h2.connection.H2Connection):
    """h2's connection with the server behaviour HTTP/2 asks for where h2 differs."""

    #: stream ids above this are refused (set by a graceful GOAWAY)
    refuse_above: int | None = None

    def _receive_headers_frame(self, frame):  # type: ignore[no-untyped-def]
        sid = frame.stream_id
        if sid not in self.streams and sid & 1:
            if sid > self.highest_inbound_stream_id:
                # h2 makes a stream over the limit a connection error; RFC 9113
                # section 5.1.2 lets it be a stream error, REFUSED_STREAM, which
                # tells the client it may retry.
                if self.refuse_above is not None and sid > self.refuse_above:
                    return self._refuse(frame, "stream opened after GOAWAY")
                limit = self.local_settings.max_concurrent_streams
                # (counting open streams walks them all: only when it may matter)
                if len(self.streams) >= limit and self.open_inbound_streams >= limit:
                    return self._refuse(frame, f"more than {limit} concurrent streams")
            elif self._stream_is_closed_by_reset(sid):
                # Trailers still in flight on a stream we reset (RFC 9113 section
                # 5.1, closed): ignored, but decoded to keep HPACK in step. h2
                # would count it as a new stream against the limit.
                self._decode_only(frame)
                return [], []
        try:
            return super()._receive_headers_frame(frame)
        except h2.exceptions.DenialOfServiceError:
            raise
        except h2.exceptions.ProtocolError as exc:
            if isinstance(exc.__cause__, (HPACKError, IndexError, TypeError, UnicodeDecodeError)):
                raise _CompressionError(str(exc)) from exc
            stream = self.streams.get(sid)
            if type(exc) is not h2.exceptions.ProtocolError or stream is None or stream.closed:
                raise
            # A malformed request (RFC 9113 section 8.1.1) is a stream error.
            self.reset_stream(sid, ErrorCode.PROTOCOL_ERROR)
            return [], [_StreamError(sid, ErrorCode.PROTOCOL_ERROR, str(exc))]

    def _decode_only(self, frame) -> None:  # type: ignore[no-untyped-def]
        try:
            list(h2.connection._decode_headers(self.decoder, frame.data))
        except h2.exceptions.DenialOfServiceError:
            raise
        except h2.exceptions.ProtocolError as exc:
            raise _CompressionError(str(exc)) from exc

    def _refuse(self, frame, reason: str):  # type: ignore[no-untyped-def]
        self._decode_only(frame)
        sid = frame.stream_id
        # as h2 would for a stream it opens: the connection is open from now on,
        # so the refused stream's DATA in flight is taken as on a reset stream
        self.state_machine.process_input(h2.connection.ConnectionInputs.RECV_HEADERS)
        self.highest_inbound_stream_id = sid
        self._closed_streams[sid] = h2.stream.StreamClosedBy.SEND_RST_STREAM
        rst = RstStreamFrame(sid)
        rst.error_code = ErrorCode.REFUSED_STREAM
        return [rst], [_StreamError(sid, ErrorCode.REFUSED_STREAM, reason)]

    def _receive_data_frame(self, frame):  # type: ignore[no-untyped-def]
        try:
            return super()._receive_data_frame(frame)
        except h2.exceptions.InvalidBodyLengthError as exc:
            # RFC 9113 section 8.1.1: DATA contradicting content-length makes the
            # request malformed, a stream error.
            self.reset_stream(frame.stream_id, ErrorCode.PROTOCOL_ERROR)
            return [], [
                _StreamError(
                    frame.stream_id,
                    ErrorCode.PROTOCOL_ERROR,
                    f"{exc} (RFC 9113 section 8.1.1)",
                    frame.flow_controlled_length,
                )
            ]

    def _receive_goaway_frame(self, frame):  # type: ignore[no-untyped-def]
        # h2 closes the connection on a GOAWAY and drops what we were sending; a
        # client's GOAWAY only says it opens no more streams (RFC 9113 section
        # 6.8): the responses in flight still go out.
        event = h2.events.ConnectionTerminated()
        event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]


# ---------------------------------------------------------------- the streams


class _Stream:
    """What the connection knows of one stream beyond h2's state."""

    __slots__ = (
        "blocked",
        "body_left",
        "content_length",
        "end",
        "no_body",
        "ours_done",
        "out",
        "out_size",
        "received",
        "responded",
        "scheme",
        "stream_id",
        "theirs_done",
        "unacked",
    )

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.scheme = b""
        self.content_length: int | None = None  # the request's
        self.received = 0  # request body bytes
        self.unacked = 0  # request body bytes not yet consumed by the application
        self.theirs_done = False
        self.ours_done = False
        self.responded = False
        self.no_body = False  # HEAD, 204, 304: body bytes are dropped
        self.body_left: int | None = None  # of our response's content-length
        self.out: list[bytes] = []  # response bytes waiting for the client's window
        self.out_size = 0
        self.end: Headers | bool | None = None  # END_STREAM (with trailers) waiting behind out
        self.blocked = False  # send_data said False; a Writable is owed


# Response fields HTTP/2 forbids (RFC 9113 section 8.2.2); an application
# written for HTTP/1.1 may still send them, and they are dropped.
_CONNECTION_FIELDS = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
# Request fields the parser looks at; every other one passes through.
_SPECIAL_REQUEST_FIELDS = _CONNECTION_FIELDS | {
    b"te",
    b"host",
    b"content-length",
    b"expect",
    b"cookie",
}
# RFC 9113 section 8.2.1: field names are tokens without uppercase letters.
_LOWER_TCHAR = bytes(c for c in TCHAR if not 65 <= c <= 90)
_OWS = (32, 9)
_STATUS = {code: b"%d" % code for code in range(100, 600)}
_HIGH = 1 << 62

# indexes into the flood counters
_RESETS, _PINGS, _SETTINGS, _PRIORITIES, _EMPTY_DATA, _UNKNOWN, _WINDOW_UPDATES = range(7)
_FLOOD_NAMES = (
    "RST_STREAM frames (rapid reset, CVE-2023-44487)",
    "PING frames",
    "SETTINGS frames",
    "PRIORITY frames",
    "empty DATA frames",
    "unknown frames",
    "WINDOW_UPDATE frames",
)


def _map_error(exc: h2.exceptions.ProtocolError) -> H2ProtocolError:
    """h2's exception -> ours, with the GOAWAY code and a status hint (the one place)."""
    code = int(getattr(exc, "error_code", ErrorCode.PROTOCOL_ERROR))
    if isinstance(exc.__cause__, OversizedHeaderListError):
        return H2ProtocolError(
            "decoded header list over http2_max_header_list_size (HPACK bomb)", code, 431
        )
    if isinstance(exc, _CompressionError):
        return H2ProtocolError(f"{exc} (RFC 9113 section 4.3)", code)
    if isinstance(exc, h2.exceptions.StreamClosedError):
        reason = f"frame on closed stream {exc.stream_id} (RFC 9113 section 5.1)"
    elif isinstance(exc, h2.exceptions.StreamIDTooLowError):
        reason = f"stream id {exc.stream_id} not above {exc.max_stream_id} (RFC 9113 section 5.1.1)"
    elif isinstance(exc, h2.exceptions.NoSuchStreamError):
        reason = f"frame on idle stream {exc.stream_id} (RFC 9113 section 5.1)"
    else:
        reason = str(exc) or type(exc).__name__
    return H2ProtocolError(reason, code)


class H2Connection:
    """The server side of one HTTP/2 connection. See the module docstring.

    Limits take gunicorn's setting names. ``stream_buffer_size`` bounds what one
    stream may hold waiting for the client's window; ``header_block_limit``
    bounds one compressed header block (default twice the header-list limit);
    the flood budgets count frames per ``flood_window`` seconds.
    """

    def __init__(
        self,
        *,
        http2_max_concurrent_streams: int = 100,
        http2_initial_window_size: int = 65535,
        http2_max_frame_size: int = 16384,
        http2_max_header_list_size: int = 65536,
        stream_buffer_size: int = 65536,
        header_block_limit: int | None = None,
        max_resets: int | None = None,
        max_pings: int = 100,
        max_settings: int = 100,
        max_priorities: int = 1000,
        max_empty_data: int = 100,
        max_unknown_frames: int = 1000,
        max_idle_window_updates: int = 1000,
        flood_window: float = 10.0,
        server: bytes | None = b"unicorn",
        send_date: bool = True,
        enable_connect_protocol: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 16384 <= http2_max_frame_size <= 16777215:
            raise ValueError("http2_max_frame_size must be 16384 to 16777215 (RFC 9113 6.5.2)")
        if not 0 <= http2_initial_window_size <= 2**31 - 1:
            raise ValueError("http2_initial_window_size must be 0 to 2**31-1 (RFC 9113 6.5.2)")
        if http2_max_concurrent_streams < 1 or http2_max_header_list_size < 1:
            raise ValueError(
                "http2_max_concurrent_streams and http2_max_header_list_size must be positive"
            )
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            # Requests are checked here, in one pass (see _parse_request).
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            # Response fields are checked and normalised here, once (see _fields).
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            split_outbound_cookies=False,
        )
        conn = _ServerH2(config)
        settings = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: http2_max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: http2_initial_window_size,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: http2_max_frame_size,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: http2_max_header_list_size,
        }
        if enable_connect_protocol:
            # RFC 8441 section 3: extended CONNECT (WebSocket over HTTP/2).
            settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        conn.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        conn.max_inbound_frame_size = http2_max_frame_size
        conn.decoder.max_header_list_size = http2_max_header_list_size
        if header_block_limit is None:
            header_block_limit = 2 * http2_max_header_list_size
        conn.incoming_buffer = _FrameBuffer(http2_max_frame_size, header_block_limit, self._spend)
        self._h2 = conn
        self.http2_max_concurrent_streams = http2_max_concurrent_streams
        self.http2_initial_window_size = http2_initial_window_size
        self.http2_max_frame_size = http2_max_frame_size
        self.http2_max_header_list_size = http2_max_header_list_size
        self.header_block_limit = header_block_limit
        self.stream_buffer_size = stream_buffer_size
        self.enable_connect_protocol = enable_connect_protocol
        if max_resets is None:
            max_resets = max(100, 2 * http2_max_concurrent_streams)
        self._limits = [
            max_resets,
            max_pings,
            max_settings,
            max_priorities,
            max_empty_data,
            max_unknown_frames,
            max_idle_window_updates,
        ]
        self._counts = [0] * 7
        self.flood_window = flood_window
        self._clock = clock
        self._window_start = clock()
        self._server = server
        self._send_date = send_date
        self._date_line = b""
        self._date_value = b""
        self._streams: dict[int, _Stream] = {}
        # streams whose Request came out of the current receive_data, and those
        # of them the client reset within the same bytes
        self._batch: dict[int, None] = {}
        self._elided: set[int] = set()
        # the PriorityUpdated h2 made of the last request's priority flag
        self._request_priority: object = None
        #: streams whose state is gone (reset, finished): late calls on them are no-ops
        self._gone: dict[int, None] = {}
        self._started = False
        self._goaway_sent = False
        self._closed = False
        #: monotonic time since which received bytes have formed no whole frame
        #: or header block (None: nothing incomplete). For the worker's timeout.
        self.pending_since: float | None = None

    # ------------------------------------------------------------- start

    def initiate_connection(self) -> None:
        """Queue our preface (SETTINGS): for TLS with ALPN h2 and for prior knowledge."""
        self._begin()
        self._h2.initiate_connection()
        self._open_connection_window()

    def initiate_upgrade_connection(
        self, settings_header: bytes, request: Request | None = None
    ) -> list[tuple[int, object]]:
        """Take over a connection upgraded from HTTP/1.1 (``Upgrade: h2c``, RFC 7540 3.2).

        Call before writing the 101: a bad ``HTTP2-Settings`` value raises
        ``H2ProtocolError`` (answer 400 over HTTP/1.1 instead). The request,
        whose body HTTP/1.1 has read, becomes stream 1; its events are returned
        and its response goes out on stream 1. The client's preface follows the
        101 and is fed to ``receive_data`` like any other bytes.
        """
        self._begin()
        try:
            # token68 without padding (RFC 7540 section 3.2.1); b64decode wants it
            padded = settings_header + b"=" * (-len(settings_header) % 4)
            self._h2.initiate_upgrade_connection(padded)
        except (binascii.Error, ValueError, h2.exceptions.ProtocolError) as exc:
            raise H2ProtocolError(
                f"invalid HTTP2-Settings header ({exc})", ErrorCode.PROTOCOL_ERROR
            ) from exc
        except Exception as exc:  # hyperframe's own errors on a malformed payload
            raise H2ProtocolError(
                f"invalid HTTP2-Settings header ({type(exc).__name__})", ErrorCode.PROTOCOL_ERROR
            ) from exc
        self._open_connection_window()
        stream = _Stream(1)
        stream.theirs_done = True
        self._streams[1] = stream
        if request is None:
            return []
        headers = [
            (name, value)
            for name, value in request.headers
            if name not in _CONNECTION_FIELDS and name not in (b"http2-settings", b"te")
        ]
        stream.scheme = b"http"
        stream.no_body = request.method == b"HEAD"
        upgraded = Request(
            request.method,
            request.target,
            headers,
            b"2",
            request.path,
            request.query,
            True,
            False,
            None,
            request.content_length,
            False,
        )
        return [(1, upgraded), (1, EndOfMessage([]))]

    def _begin(self) -> None:
        if self._started:
            raise LocalProtocolError("the connection was initiated already")
        self._started = True

    def _open_connection_window(self) -> None:
        # The connection window starts at 65535 whatever SETTINGS say (RFC 9113
        # 6.9.2); raise it to one stream's window so one upload can use it all.
        extra = self.http2_initial_window_size - 65535
        if extra > 0:
            self._h2.increment_flow_control_window(extra)

    # ------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> list[tuple[int, object]]:
        """Feed bytes read from the socket (``b""`` at EOF); the events they made.

        Raises ``H2ProtocolError`` on a connection error, its GOAWAY queued.
        """
        if not self._started:
            raise LocalProtocolError("initiate_connection() first")
        if not data:
            self._closed = True
            return [(0, ConnectionClosed())]
        if self._closed:
            return []
        h2conn = self._h2
        try:
            h2_events = h2conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            raise self._fail(exc) from exc
        out: list[tuple[int, object]] = []
        self._batch.clear()
        self._elided.clear()
        handlers = _HANDLERS
        try:
            for ev in h2_events:
                handler = handlers.get(type(ev))
                if handler is not None:
                    handler(self, ev, out)
        except h2.exceptions.ProtocolError as exc:
            raise self._fail(exc) from exc
        if self._elided:
            # Streams opened and reset within these bytes never reach the driver:
            # a rapid-reset client makes no application work (CVE-2023-44487).
            elided = self._elided
            out = [item for item in out if item[0] not in elided]
        if h2conn.incoming_buffer.incomplete:
            if self.pending_since is None:
                self.pending_since = self._clock()
        else:
            self.pending_since = None
        return out

    def _fail(self, exc: h2.exceptions.ProtocolError) -> H2ProtocolError:
        error = _map_error(exc)
        self._streams.clear()
        h2conn = self._h2
        if h2conn.state_machine.state is not h2.connection.ConnectionState.CLOSED:
            h2conn._terminate_connection(error.error_code)
        self._closed = True
        return error

    # One handler per h2 event type (see _HANDLERS below the class); events
    # a server has no use for (SettingsAcknowledged, PingAckReceived ...) have none.

    def _on_data(self, ev: h2.events.DataReceived, out: list) -> None:
        sid = ev.stream_id
        data = ev.data
        stream = self._streams.get(sid)
        if stream is None:
            # a stream refused in this same read: its window goes straight back
            self._h2.acknowledge_received_data(ev.flow_controlled_length, sid)
            return
        padding = ev.flow_controlled_length - len(data)
        if padding:
            self._h2.acknowledge_received_data(padding, sid)
        if data:
            stream.received += len(data)
            stream.unacked += len(data)
            out.append((sid, Data(data)))
        elif ev.stream_ended is None:
            self._spend(_EMPTY_DATA)

    def _on_stream_ended(self, ev: h2.events.StreamEnded, out: list) -> None:
        stream = self._streams.get(ev.stream_id)
        if stream is not None and not stream.theirs_done:
            self._their_end(stream, [], out)

    def _on_window_updated(self, ev: h2.events.WindowUpdated, out: list) -> None:
        self._spend(_WINDOW_UPDATES)
        if ev.stream_id:
            stream = self._streams.get(ev.stream_id)
            if stream is not None and stream.out:
                self._flush(stream, out)
        else:
            self._flush_all(out)

    def _on_stream_reset(self, ev: h2.events.StreamReset, out: list) -> None:
        sid = ev.stream_id
        if ev.remote_reset:
            self._spend(_RESETS)
        stream = self._streams.get(sid)
        if stream is not None:
            self._drop(stream)
            if sid in self._batch:
                self._elided.add(sid)
            else:
                out.append((sid, StreamReset(int(ev.error_code), ev.remote_reset)))

    def _on_stream_error(self, ev: _StreamError, out: list) -> None:
        sid = ev.stream_id
        if ev.window:
            self._h2.acknowledge_received_data(ev.window, sid)
        stream = self._streams.get(sid)
        if stream is not None:
            self._drop(stream)
        self._gone_add(sid)
        out.append((sid, StreamReset(int(ev.error_code), False, ev.reason)))

    def _on_settings(self, ev: h2.events.RemoteSettingsChanged, out: list) -> None:
        # (counted in the frame buffer, before h2 acknowledged them)
        if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
            self._flush_all(out)

    def _on_priority(self, ev: h2.events.PriorityUpdated, out: list) -> None:
        # PRIORITY is accepted and ignored (RFC 9113 section 5.3.2); only the
        # frames on their own are counted, not the flag on a request's HEADERS.
        last = self._request_priority
        self._request_priority = None
        if last is not ev:
            self._spend(_PRIORITIES)

    def _on_goaway(self, ev: h2.events.ConnectionTerminated, out: list) -> None:
        out.append((0, GoAwayReceived(int(ev.error_code), ev.last_stream_id)))

    def _on_unknown(self, ev: h2.events.UnknownFrameReceived, out: list) -> None:
        self._spend(_UNKNOWN)

    def _spend(self, kind: int) -> None:
        now = self._clock()
        counts = self._counts
        if now - self._window_start >= self.flood_window:
            self._window_start = now
            updates = counts[_WINDOW_UPDATES]
            counts[:] = [0] * 7
            counts[_WINDOW_UPDATES] = min(updates, 0)
        counts[kind] += 1
        if counts[kind] > self._limits[kind]:
            raise h2.exceptions.DenialOfServiceError(
                f"more than {self._limits[kind]} {_FLOOD_NAMES[kind]} in {self.flood_window:g} s"
            )

    # ---------------------------------------------------------- requests

    def _request(self, ev: h2.events.RequestReceived, out: list[tuple[int, object]]) -> None:
        sid = ev.stream_id
        if ev.priority_updated is not None:
            self._request_priority = ev.priority_updated
        parsed = self._parse_request(ev.headers)
        if type(parsed) is str:
            self._refuse_stream(sid, parsed, out)
            return
        method, target, scheme, authority, protocol, fields, content_length, expect = parsed
        stream = _Stream(sid)
        stream.scheme = scheme or b""
        stream.content_length = content_length
        stream.no_body = method == b"HEAD"
        self._streams[sid] = stream
        if method == b"CONNECT" and protocol is None:
            target = authority
            path, query = authority, b""
        else:
            path, _, query = target.partition(b"?")
        request = Request(
            method,
            target,
            fields,
            b"2",
            path,
            query,
            True,
            expect,
            protocol,
            content_length,
            False,
        )
        out.append((sid, request))
        self._batch[sid] = None
        if ev.stream_ended is not None:
            self._their_end(stream, [], out)

    def _parse_request(self, headers: list) -> tuple | str:
        """A request's header list, checked in one pass and a few joined C-level
        checks: (method, target, scheme, authority, protocol, fields,
        content_length, expect_continue), or the rule it breaks.

        h2's own inbound validation is off: it makes a malformed request a
        connection error where RFC 9113 section 8.1.1 asks for a stream error,
        costs a tenth of a request's time, and is less strict than the HTTP/1.1
        parser about names and values.
        """
        method = target = scheme = authority = protocol = host = None
        content_length = None
        expect = False
        fields: Headers = []
        cookies = None
        names = []
        values = []
        regular = False
        for pair in headers:
            name, value = pair
            if value and (value[0] in _OWS or value[-1] in _OWS):
                return "field value starts or ends with whitespace (RFC 9113 section 8.2.1)"
            if name[:1] == b":":
                if regular:
                    return "pseudo-header after a regular field (RFC 9113 section 8.3)"
                if name == b":method":
                    if method is not None:
                        return "two :method pseudo-headers (RFC 9113 section 8.3)"
                    method = value
                elif name == b":path":
                    if target is not None:
                        return "two :path pseudo-headers (RFC 9113 section 8.3)"
                    target = value
                elif name == b":scheme":
                    if scheme is not None:
                        return "two :scheme pseudo-headers (RFC 9113 section 8.3)"
                    scheme = value
                elif name == b":authority":
                    if authority is not None:
                        return "two :authority pseudo-headers (RFC 9113 section 8.3)"
                    authority = value
                elif name == b":protocol":
                    if protocol is not None:
                        return "two :protocol pseudo-headers (RFC 8441 section 4)"
                    protocol = value
                elif name == b":status":
                    return ":status in a request (RFC 9113 section 8.3.2)"
                else:
                    return (
                        f"unknown pseudo-header {name.decode('latin-1')!r} (RFC 9113 section 8.3)"
                    )
                continue
            regular = True
            if name in _SPECIAL_REQUEST_FIELDS:
                if name in _CONNECTION_FIELDS:
                    return (
                        f"connection-specific field {name.decode('latin-1')} "
                        "(RFC 9113 section 8.2.2)"
                    )
                if name == b"te":
                    if value.lower() != b"trailers":
                        return "te other than trailers (RFC 9113 section 8.2.2)"
                elif name == b"host":
                    if host is not None:
                        return "two host fields (RFC 9110 section 7.2)"
                    host = value
                elif name == b"content-length":
                    if not value.isdigit() or not value.isascii() or len(value) > 18:
                        return "content-length must be digits only (RFC 9110 section 8.6)"
                    length = int(value)
                    if content_length is not None and length != content_length:
                        return "two differing content-length fields (RFC 9110 section 8.6)"
                    content_length = length
                elif name == b"expect":
                    expect = value.lower() == b"100-continue"
                elif name == b"cookie":
                    # RFC 9113 section 8.2.3: split cookies are joined for HTTP/1.1 consumers
                    if cookies is None:
                        cookies = len(fields)
                    else:
                        joined = fields[cookies][1] + b"; " + value
                        fields[cookies] = (b"cookie", joined)
                        continue
            names.append(name)
            values.append(value)
            fields.append(pair)
        if names:
            # RFC 9113 section 8.2.1: names are lower-case tokens (RFC 9110 section 5.1)
            if not all(names):
                return "empty field name (RFC 9110 section 5.1)"
            if b"".join(names).translate(None, _LOWER_TCHAR):
                bad = next(n for n in names if n.translate(None, _LOWER_TCHAR))
                if bad.lower().translate(None, _LOWER_TCHAR):
                    return (
                        f"field name {bad.decode('latin-1')!r} is not a token "
                        "(RFC 9110 section 5.1)"
                    )
                return f"uppercase field name {bad.decode('latin-1')!r} (RFC 9113 section 8.2.1)"
            if b"".join(values).translate(None, FIELD_VALUE_BYTES):
                return "NUL, CR, LF or a control byte in a field value (RFC 9113 section 8.2.1)"
        if not method or method.translate(None, TCHAR):
            return ":method missing or not a token (RFC 9113 section 8.3.1)"
        if method == b"CONNECT" and protocol is None:
            # RFC 9113 section 8.5: :authority only
            if target is not None or scheme is not None:
                return "CONNECT with :path or :scheme (RFC 9113 section 8.5)"
            if not authority or b":" not in authority or not HOST_RE.fullmatch(authority):
                return "CONNECT needs an :authority of host:port (RFC 9113 section 8.5)"
        else:
            if protocol is not None:
                if method != b"CONNECT":
                    return ":protocol without CONNECT (RFC 8441 section 4)"
                if not self.enable_connect_protocol:
                    return ":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 section 3)"
                if protocol.translate(None, TCHAR) or not protocol:
                    return ":protocol is not a token (RFC 8441 section 4)"
                protocol = protocol.lower()
            if not target:
                return ":path missing or empty (RFC 9113 section 8.3.1)"
            if target.translate(TARGET_CLASSES).count(0):
                return ":path holds control, space or DEL bytes (RFC 9113 section 8.3.1)"
            if target[0] != 47 and not (target == b"*" and method == b"OPTIONS"):
                return ":path must be origin-form or * for OPTIONS (RFC 9113 section 8.3.1)"
            if not scheme or not scheme.isalpha() or not scheme.isascii():
                return ":scheme missing or not a URI scheme (RFC 9113 section 8.3.1)"
        if authority is not None:
            if not HOST_RE.fullmatch(authority):
                return "invalid :authority (RFC 9110 section 7.2)"
            if host is None:
                # RFC 9113 section 8.3.1: :authority stands for Host; the application sees Host.
                fields.insert(0, (b"host", authority))
            elif host != authority:
                return "host differs from :authority (RFC 9113 section 8.3.1)"
        elif host is not None and not HOST_RE.fullmatch(host):
            return "invalid host (RFC 9110 section 7.2)"
        return method, target, scheme, authority, protocol, fields, content_length, expect

    def _refuse_stream(self, sid: int, reason: str, out: list[tuple[int, object]]) -> None:
        self._reset(sid, ErrorCode.PROTOCOL_ERROR)
        self._gone_add(sid)
        out.append((sid, StreamReset(int(ErrorCode.PROTOCOL_ERROR), False, reason)))

    def _trailers(self, ev: h2.events.TrailersReceived, out: list[tuple[int, object]]) -> None:
        stream = self._streams.get(ev.stream_id)
        if stream is None:
            return
        trailers = [pair for pair in ev.headers]
        reason = self._check_trailers(trailers)
        if reason:
            self._drop(stream)
            self._refuse_stream(stream.stream_id, reason, out)
            return
        for name, _ in trailers:
            if name in FORBIDDEN_TRAILERS:
                self._drop(stream)
                self._refuse_stream(
                    stream.stream_id,
                    f"{name.decode('latin-1')} is not allowed in a trailer section "
                    "(RFC 9110 section 6.5.1)",
                    out,
                )
                return
        self._their_end(stream, trailers, out)

    @staticmethod
    def _check_trailers(trailers: Headers) -> str:
        """The rule a trailer section breaks (RFC 9113 sections 8.1 and 8.2), or ""."""
        names = []
        for name, value in trailers:
            if name[:1] == b":":
                return "pseudo-header in a trailer section (RFC 9113 section 8.1)"
            if not name:
                return "empty field name (RFC 9110 section 5.1)"
            if value and (value[0] in _OWS or value[-1] in _OWS):
                return "field value starts or ends with whitespace (RFC 9113 section 8.2.1)"
            if name in _CONNECTION_FIELDS:
                return "connection-specific field in a trailer section (RFC 9113 section 8.2.2)"
            names.append(name)
        if names:
            if b"".join(names).translate(None, _LOWER_TCHAR):
                return "field name not a lower-case token (RFC 9113 section 8.2.1)"
            if b"".join([v for _, v in trailers]).translate(None, FIELD_VALUE_BYTES):
                return "NUL, CR, LF or a control byte in a field value (RFC 9113 section 8.2.1)"
        return ""

    def _their_end(self, stream: _Stream, trailers: Headers, out: list[tuple[int, object]]) -> None:
        if stream.content_length is not None and stream.received != stream.content_length:
            # h2 checks DATA against content-length, but not a HEADERS that ends the
            # stream, or trailers, before the length was reached.
            self._drop(stream)
            self._refuse_stream(
                stream.stream_id,
                f"request body of {stream.received} bytes, content-length said "
                f"{stream.content_length} (RFC 9113 section 8.1.1)",
                out,
            )
            return
        stream.theirs_done = True
        out.append((stream.stream_id, EndOfMessage(trailers)))
        if stream.ours_done:
            self._forget(stream)

    # ------------------------------------------------------ flow control in

    def consumed(self, stream_id: int, n: int) -> None:
        """The application has taken ``n`` body bytes of the stream: the client may send more."""
        stream = self._streams.get(stream_id)
        if stream is None or n <= 0 or self._closed:
            return
        n = min(n, stream.unacked)
        stream.unacked -= n
        if n:
            self._h2.acknowledge_received_data(n, stream_id)

    # ------------------------------------------------------------ output

    def data_to_send(self) -> bytes:
        """The bytes to write to the socket now (frames of every stream, in order)."""
        return self._h2.data_to_send()

    def _live(self, stream_id: int) -> _Stream | None:
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id in self._gone or self._closed:
                return None
            raise LocalProtocolError(f"no stream {stream_id} to respond on")
        return stream

    def _fields(self, status: int, headers: Headers, stream: _Stream | None) -> list:
        """The response's header list: :status, the fields checked and lower-cased,
        connection-specific ones dropped, date and server added."""
        code = _STATUS.get(status)
        if code is None:
            raise LocalProtocolError(f"invalid status code {status}")
        out = [(b":status", code)]
        add_date, add_server = self._checked(headers, stream, out)
        if add_date and self._send_date:
            line = date_header()
            if line is not self._date_line:
                self._date_line = line
                self._date_value = line[6:-2]
            out.append((b"date", self._date_value))
        if add_server and self._server is not None:
            out.append((b"server", self._server))
        return out

    @staticmethod
    def _checked(headers: Headers, stream: _Stream | None, out: list) -> tuple[bool, bool]:
        """Append ``headers`` to ``out`` lower-cased and checked (names tokens, values
        without CR, LF, NUL or controls), minus connection-specific fields. Returns
        whether Date and Server are still to be added."""
        add_date = add_server = True
        names = []
        values = []
        for name, value in headers:
            lname = name.lower()
            if lname in _CONNECTION_FIELDS:
                continue
            if lname == b"date":
                add_date = False
            elif lname == b"server":
                add_server = False
            elif lname == b"content-length" and stream is not None:
                if not value.isdigit():
                    raise LocalProtocolError(f"invalid Content-Length {value!r}")
                stream.body_left = int(value)
            names.append(lname)
            values.append(value)
            out.append((lname, value))
        if names:
            if b"".join(names).translate(None, TCHAR) or not all(names):
                bad = next(n for n in names if not n or n.translate(None, TCHAR))
                raise LocalProtocolError(f"invalid response header name {bad!r}")
            if b"".join(values).translate(None, FIELD_VALUE_BYTES):
                bad = next(
                    n
                    for n, v in zip(names, values, strict=True)
                    if v.translate(None, FIELD_VALUE_BYTES)
                )
                raise LocalProtocolError(f"CR, LF, NUL or a control byte in header {bad!r}")
        return add_date, add_server

    def send_response(
        self, stream_id: int, status: int, headers: Headers, reason: bytes = b""
    ) -> None:
        """The response head (HEADERS); a 1xx (100, 103 Early Hints) is informational
        and may come before it. ``reason`` is ignored: HTTP/2 has none."""
        stream = self._live(stream_id)
        if stream is None:
            return
        if stream.responded:
            raise LocalProtocolError(f"stream {stream_id} has its response already")
        if status < 200:
            if status == 101:
                raise LocalProtocolError("101 Switching Protocols does not exist in HTTP/2")
            self._h2.send_headers(stream_id, self._fields(status, headers, None))
            return
        fields = self._fields(status, headers, stream)
        stream.responded = True
        if status == 204 or status == 304:
            stream.no_body = True
        self._h2.send_headers(stream_id, fields)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> bool:
        """A piece of the response body; ``end_stream`` ends it with this piece.

        Returns True while the stream can take more, False once its buffer is
        full: wait for its ``Writable`` event before the next call.
        """
        stream = self._live(stream_id)
        if stream is None:
            return True
        if not stream.responded or stream.end is not None or stream.ours_done:
            raise LocalProtocolError(f"cannot send body data on stream {stream_id} now")
        if stream.out_size >= self.stream_buffer_size:
            raise LocalProtocolError(
                f"stream {stream_id}'s send buffer is full: wait for Writable before sending"
            )
        if stream.no_body:
            data = b""
        elif stream.body_left is not None:
            left = stream.body_left - len(data)
            if left < 0:
                raise LocalProtocolError(
                    f"response body longer than its Content-Length by {-left} bytes"
                )
            stream.body_left = left
        if end_stream:
            if stream.body_left and not stream.no_body:
                raise LocalProtocolError(
                    f"response ended {stream.body_left} bytes short of its Content-Length"
                )
            stream.end = True
            if stream.out:
                if data:
                    stream.out.append(data)
                    stream.out_size += len(data)
            elif not data:
                self._finish(stream)
            elif self._write(stream, data, True):
                self._done(stream)
            return True
        if data:
            if stream.out:
                stream.out.append(data)
                stream.out_size += len(data)
            else:
                self._write(stream, data, False)
        if stream.out_size >= self.stream_buffer_size:
            stream.blocked = True
            return False
        return True

    def send_end(self, stream_id: int, trailers: Headers | None = None) -> None:
        """End the response, with trailers if given (a last HEADERS frame)."""
        stream = self._live(stream_id)
        if stream is None:
            return
        if not stream.responded or stream.end is not None or stream.ours_done:
            raise LocalProtocolError(f"cannot end the response on stream {stream_id} now")
        if stream.body_left and not stream.no_body:
            raise LocalProtocolError(
                f"response ended {stream.body_left} bytes short of its Content-Length"
            )
        if trailers:
            for name, _ in trailers:
                if name[:1] == b":":
                    raise LocalProtocolError("pseudo-header in trailers (RFC 9113 section 8.1)")
            checked: list = []
            self._checked(trailers, None, checked)
            stream.end = checked
        else:
            stream.end = True
        if not stream.out:
            self._finish(stream)

    def respond(self, stream_id: int, status: int, headers: Headers, body: bytes = b"") -> bool:
        """A whole response in one call: HEADERS (with END_STREAM when there is no
        body) and DATA; adds content-length. Returns what ``send_data`` would."""
        stream = self._live(stream_id)
        if stream is None:
            return True
        if stream.responded:
            raise LocalProtocolError(f"stream {stream_id} has its response already")
        if status < 200:
            raise LocalProtocolError("respond() is for final responses")
        no_body = stream.no_body or status == 204 or status == 304
        if not no_body and not any(name.lower() == b"content-length" for name, _ in headers):
            headers = [*headers, (b"content-length", b"%d" % len(body))]
        fields = self._fields(status, headers, stream)
        stream.responded = True
        if no_body or not body:
            self._h2.send_headers(stream_id, fields, end_stream=True)
            stream.end = True
            self._done(stream)
            return True
        self._h2.send_headers(stream_id, fields)
        return self.send_data(stream_id, body, end_stream=True)

    def reset_stream(self, stream_id: int, error_code: int = ErrorCode.INTERNAL_ERROR) -> None:
        """Abandon a stream (the application failed mid-response): RST_STREAM."""
        stream = self._streams.get(stream_id)
        if stream is None or self._closed:
            return
        self._reset(stream_id, error_code)
        self._drop(stream)

    def close_gracefully(self) -> None:
        """GOAWAY(NO_ERROR) with the last stream id accepted; those streams finish,
        newer ones are refused. ``finished`` says when the connection may close."""
        if self._goaway_sent or self._closed or not self._started:
            return
        self._goaway_sent = True
        last = self._h2.highest_inbound_stream_id
        self._h2.refuse_above = last
        frame = GoAwayFrame(0)
        frame.last_stream_id = last
        frame.error_code = ErrorCode.NO_ERROR
        # Not through h2's close_connection: h2 would then refuse to send on the
        # streams that are still to finish (RFC 9113 section 6.8 lets them).
        self._h2._data_to_send += frame.serialize()

    def close(self, error_code: int = ErrorCode.NO_ERROR) -> None:
        """GOAWAY now: no stream finishes. Write ``data_to_send()`` and close."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        self._goaway_sent = True
        self._h2.close_connection(error_code, last_stream_id=self._h2.highest_inbound_stream_id)
        self._streams.clear()

    # ---------------------------------------------------------- write side

    def _write(self, stream: _Stream, data: bytes, end: bool) -> bool:
        """Send what the client's windows allow of ``data`` (with END_STREAM on its
        last frame when ``end``); buffer the rest. True when all of it went."""
        h2conn = self._h2
        sid = stream.stream_id
        window = h2conn.local_flow_control_window(sid)
        size = h2conn.max_outbound_frame_size
        pos = 0
        total = len(data)
        frames = 0
        while pos < total and window > 0:
            n = min(size, window, total - pos)
            piece = data if n == total else data[pos : pos + n]
            pos += n
            window -= n
            frames += 1
            h2conn.send_data(sid, piece, end_stream=end and pos == total)
        # Each DATA frame we send earns the client two WINDOW_UPDATEs (stream and connection).
        self._counts[_WINDOW_UPDATES] -= 2 * frames
        if pos < total:
            rest = data[pos:] if pos else data
            stream.out.append(rest)
            stream.out_size += len(rest)
            return False
        return True

    def _h2_open(self, sid: int) -> bool:
        # Within one receive_data, h2 has taken every frame before we see the
        # first event: a stream the client reset later in the same bytes is
        # closed in h2 while its earlier events (a WINDOW_UPDATE, a malformed
        # trailer) are still being handled here. Its StreamReset comes next.
        h2stream = self._h2.streams.get(sid)
        return h2stream is not None and not h2stream.closed

    def _reset(self, sid: int, error_code: int) -> None:
        if self._h2_open(sid):
            self._h2.reset_stream(sid, error_code)

    def _flush(self, stream: _Stream, out: list[tuple[int, object]]) -> None:
        if not self._h2_open(stream.stream_id):
            return
        pending = stream.out
        stream.out = []
        stream.out_size = 0
        last = len(pending) - 1
        ended = False
        for i, piece in enumerate(pending):
            if stream.out:
                stream.out.append(piece)
                stream.out_size += len(piece)
            else:
                end = i == last and stream.end is True
                ended = self._write(stream, piece, end) and end
        if ended:
            self._done(stream)
        elif not stream.out and stream.end is not None and not stream.ours_done:
            self._finish(stream)
        if stream.blocked and stream.out_size < self.stream_buffer_size:
            stream.blocked = False
            out.append((stream.stream_id, Writable()))

    def _flush_all(self, out: list[tuple[int, object]]) -> None:
        for stream in [s for s in self._streams.values() if s.out]:
            if self._h2.outbound_flow_control_window <= 0:
                break
            self._flush(stream, out)

    def _finish(self, stream: _Stream) -> None:
        end = stream.end
        if end is True:
            self._h2.end_stream(stream.stream_id)
        else:
            self._h2.send_headers(stream.stream_id, end, end_stream=True)
        self._done(stream)

    def _done(self, stream: _Stream) -> None:
        stream.ours_done = True
        if stream.theirs_done:
            self._forget(stream)
        else:
            # RFC 9113 section 8.1: a complete response may be followed by
            # RST_STREAM(NO_ERROR) asking the client to stop sending the body.
            self._reset(stream.stream_id, ErrorCode.NO_ERROR)
            self._drop(stream)

    def _drop(self, stream: _Stream) -> None:
        """The stream is over abnormally: its unread body goes back to the connection window."""
        stream.out = []
        stream.out_size = 0
        self._forget(stream)

    def _forget(self, stream: _Stream) -> None:
        sid = stream.stream_id
        if stream.unacked and not self._closed:
            self._h2.acknowledge_received_data(stream.unacked, sid)
            stream.unacked = 0
        self._streams.pop(sid, None)
        self._gone_add(sid)

    def _gone_add(self, sid: int) -> None:
        gone = self._gone
        gone[sid] = None
        if len(gone) > 4096:
            for old in list(gone)[:2048]:
                del gone[old]

    # --------------------------------------------------------- inspection

    @property
    def open_streams(self) -> int:
        """Streams with a request or a response still in progress."""
        return len(self._streams)

    @property
    def finished(self) -> bool:
        """After ``close_gracefully()`` or ``close()``: nothing is left in flight."""
        return self._closed or (self._goaway_sent and not self._streams)

    @property
    def closed(self) -> bool:
        """The connection ended (an error, ``close()``, or EOF)."""
        return self._closed

    def writable(self, stream_id: int) -> bool:
        """Whether ``send_data`` may be called on the stream now (its buffer is
        below ``stream_buffer_size``; True for a stream that is gone)."""
        stream = self._streams.get(stream_id)
        return stream is None or stream.out_size < self.stream_buffer_size

    def scheme(self, stream_id: int) -> bytes:
        """The request's ``:scheme`` (``b"https"``, ``b"http"``)."""
        stream = self._streams.get(stream_id)
        return stream.scheme if stream is not None else b""

    def __repr__(self) -> str:
        return f"<H2Connection streams={len(self._streams)} closed={self._closed}>"


_HANDLERS: dict[type, Callable[[H2Connection, object, list], None]] = {
    h2.events.RequestReceived: H2Connection._request,  # type: ignore[dict-item]
    h2.events.DataReceived: H2Connection._on_data,  # type: ignore[dict-item]
    h2.events.StreamEnded: H2Connection._on_stream_ended,  # type: ignore[dict-item]
    h2.events.TrailersReceived: H2Connection._trailers,  # type: ignore[dict-item]
    h2.events.WindowUpdated: H2Connection._on_window_updated,  # type: ignore[dict-item]
    h2.events.StreamReset: H2Connection._on_stream_reset,  # type: ignore[dict-item]
    _StreamError: H2Connection._on_stream_error,  # type: ignore[dict-item]
    h2.events.RemoteSettingsChanged: H2Connection._on_settings,  # type: ignore[dict-item]
    h2.events.PriorityUpdated: H2Connection._on_priority,  # type: ignore[dict-item]
    h2.events.ConnectionTerminated: H2Connection._on_goaway,  # type: ignore[dict-item]
    h2.events.UnknownFrameReceived: H2Connection._on_unknown,  # type: ignore[dict-item]
}

"""``UwsgiConnection``: one uwsgi connection from a front end, sans-IO.

Theory of operation
-------------------
A uwsgi connection carries exactly one request: the packet head (4-byte
header and vars block, see ``packet``), then the body, then the response as
HTTP/1.x bytes, then the server closes. So the connection has two phases:

    HEAD  bytes are kept until the header and the whole vars block are in,
          the vars become a ``Request`` (and an ``Origin``): next_event
          returns it;
    BODY  an internal ``H1Connection`` takes over: it is handed a copy of
          the request with HTTP/1.0 and no keep-alive (``start_request``),
          then every byte after the head. Its body reader frames the body by
          Content-Length, its serializer writes a close-delimited HTTP/1.x
          response (never chunked: nginx's uwsgi module reads the body to the
          close), and its states are this connection's states.

So the response side, HEAD/204/304, Content-Length checks and the error
response are HTTP/1.1's own code, not a copy. A refused packet (a
``RemoteProtocolError`` naming the cause) answers with ``send_error`` like a
refused HTTP request; nginx passes that status on to its client.
"""

from __future__ import annotations

import inspect

from unicorn_http import (
    ERROR,
    NEED_DATA,
    ConnectionClosed,
    Event,
    H1Connection,
    Headers,
    LocalProtocolError,
    Origin,
    RemoteProtocolError,
    Request,
)

from .packet import PacketHead, parse_vars

__all__ = ["UwsgiConnection"]

#: the options an H1Connection takes; the others given to the factory are ours or ignored
_H1_OPTIONS = frozenset(inspect.signature(H1Connection).parameters)


class _Raise:
    """The reader after a refused packet: raises the refusal again, every time."""

    __slots__ = ("error",)

    def __init__(self, error: RemoteProtocolError) -> None:
        self.error = error

    def __call__(self) -> Event | object:
        raise self.error


class UwsgiConnection:
    """The server side of one uwsgi connection (a ``unicorn_http.ServerConnection``).

    Options are the ``unicorn.protocols`` factory's keywords: the request
    limits as for ``H1Connection`` (``limit_request_line``,
    ``limit_request_fields``, ``limit_request_field_size``; 0 is unlimited)
    and ``uwsgi_buffer_size``, the largest packet head taken (4096, as
    uWSGI's ``buffer-size``). Options it does not know are ignored.
    """

    #: ``next_event() -> Request | Data | EndOfMessage | ConnectionClosed | NEED_DATA | PAUSED``;
    #: raises ``RemoteProtocolError``. Rebound when the head has been read.
    next_event: object

    def __init__(
        self,
        *,
        limit_request_line: int = 4094,
        limit_request_fields: int = 100,
        limit_request_field_size: int = 8190,
        uwsgi_buffer_size: int = 4096,
        **options: object,
    ) -> None:
        self.limit_request_line = limit_request_line
        self.limit_request_fields = limit_request_fields
        self.limit_request_field_size = limit_request_field_size
        self.uwsgi_buffer_size = uwsgi_buffer_size if uwsgi_buffer_size > 0 else 4 + 0xFFFF
        h1_options = {k: v for k, v in options.items() if k in _H1_OPTIONS}
        self._h1 = H1Connection(
            limit_request_line=limit_request_line,
            limit_request_fields=limit_request_fields,
            limit_request_field_size=limit_request_field_size,
            **h1_options,  # type: ignore[arg-type]
        )
        self._buf = b""
        self._eof = False
        self._request: Request | None = None
        self._origin: Origin | None = None
        #: ERROR once a packet head is refused (the H1Connection never saw it)
        self._refused: str | None = None
        self.next_event = self._read_head

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the socket; ``b""`` means the peer closed its side."""
        if self._request is not None:
            self._h1.receive_data(data)
        elif data:
            if self._eof:
                raise LocalProtocolError("received data after end of file")
            self._buf += data
        else:
            self._eof = True

    def _fail(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        self._refused = ERROR
        self._buf = b""
        self.next_event = _Raise(exc)
        return exc

    def _read_head(self) -> Event | object:
        buf = self._buf
        if len(buf) < 4:
            if not self._eof:
                return NEED_DATA
            if buf:
                raise self._fail(
                    RemoteProtocolError(
                        f"connection closed inside a uwsgi packet header ({len(buf)} of 4 bytes)"
                    )
                )
            # Closed before a byte was sent: the H1Connection reports it (and its states say so).
            self._h1.receive_data(b"")
            event = self._h1.next_event()
            self.next_event = self._h1.next_event
            return event
        head = PacketHead(buf)
        try:
            head.check(self.uwsgi_buffer_size)
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        end = 4 + head.datasize
        if len(buf) < end:
            if self._eof:
                raise self._fail(
                    RemoteProtocolError(
                        f"connection closed inside a uwsgi packet ({len(buf)} of {end} bytes)"
                    )
                )
            return NEED_DATA
        try:
            request, origin = parse_vars(
                buf[4:end],
                limit_request_line=self.limit_request_line,
                limit_request_fields=self.limit_request_fields,
                limit_request_field_size=self.limit_request_field_size,
            )
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        self._buf = b""
        self._request = request
        self._origin = origin
        h1 = self._h1
        # HTTP/1.0 without keep-alive: a response without a length ends when we
        # close, never in chunks; the client's own version stays in self.request.
        h1.start_request(
            Request(
                request.method,
                request.target,
                request.headers,
                b"1.0",
                request.path,
                request.query,
                False,
                False,
                None,
                request.content_length,
                False,
            )
        )
        if len(buf) > end:
            h1.receive_data(buf[end:])
        if self._eof:
            h1.receive_data(b"")
        self.next_event = self._read_body
        return request

    def _read_body(self) -> Event | object:
        return self._h1.next_event()

    # ----------------------------------------------------------------- state

    @property
    def their_state(self) -> str:
        return self._refused or self._h1.their_state

    @property
    def our_state(self) -> str:
        return self._h1.our_state

    @property
    def keep_alive(self) -> bool:
        return self._h1.keep_alive

    @keep_alive.setter
    def keep_alive(self, value: bool) -> None:
        self._h1.keep_alive = value

    @property
    def request(self) -> Request | None:
        """The request as the front end described it (its own HTTP version)."""
        return self._request

    @property
    def origin(self) -> Origin | None:
        """The client, server and scheme from the packet's vars (None before the head)."""
        return self._origin

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        if self._request is None:
            return self._buf, self._eof
        return self._h1.trailing_data

    # ---------------------------------------------------------------- output

    def send_response(self, status: int, headers: Headers, reason: bytes = b"") -> bytes:
        return self._h1.send_response(status, headers, reason)

    def send_data(self, data: bytes) -> bytes:
        return self._h1.send_data(data)

    def send_data_length(self, count: int) -> None:
        self._h1.send_data_length(count)

    def send_end(self, trailers: Headers | None = None) -> bytes:
        return self._h1.send_end(trailers)

    def respond(
        self, status: int, headers: Headers, body: bytes = b"", reason: bytes = b""
    ) -> bytes:
        return self._h1.respond(status, headers, body, reason)

    def send_error(self, exc: RemoteProtocolError) -> bytes:
        """The error response for a refused packet or request; the connection must then close."""
        out = self._h1.send_error(exc)
        if self._request is None:
            self.next_event = _closed
        return out

    def __repr__(self) -> str:
        phase = "HEAD" if self._request is None else "BODY"
        return f"<UwsgiConnection {phase} theirs={self.their_state} ours={self.our_state}>"


_CLOSED = ConnectionClosed()


def _closed() -> Event | object:
    return _CLOSED

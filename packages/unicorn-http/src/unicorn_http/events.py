"""Events: what happened on the wire, as small values.

Requests come *out* of a connection as ``Request``, ``Data`` and
``EndOfMessage``; responses go *in* as ``InformationalResponse``, ``Response``,
``Data`` and ``EndOfMessage``. ``ConnectionClosed`` goes both ways.

The classes use ``__slots__`` but are not ``frozen``: a frozen dataclass costs
about one microsecond per construction (every field goes through
``object.__setattr__``), which is a fifth of the whole parse of a browser
request. Treat them as values all the same: nothing in this package mutates
an event after handing it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "InformationalResponse",
    "Request",
    "Response",
]

Headers = list[tuple[bytes, bytes]]


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: ``next_event()`` needs more bytes before it can say anything.
NEED_DATA = _Sentinel("NEED_DATA")
#: A whole request has been read and its response is not finished yet; bytes of
#: a pipelined request wait in the buffer until it is.
PAUSED = _Sentinel("PAUSED")


@dataclass(slots=True)
class Request:
    """A request head. ``headers`` are (lower-cased name, value) pairs in wire order."""

    method: bytes
    target: bytes
    headers: Headers
    http_version: bytes = b"1.1"
    #: the target's path, still percent-encoded; ``b"*"`` for ``OPTIONS *``,
    #: the authority for ``CONNECT``
    path: bytes = b"/"
    query: bytes = b""
    #: the client wants the connection kept open after this exchange
    keep_alive: bool = True
    #: ``Expect: 100-continue`` was sent; answer 100 before reading the body
    expect_continue: bool = False
    #: the lower-cased ``Upgrade`` value when ``Connection: upgrade`` asks for one
    upgrade: bytes | None = None
    #: ``Content-Length`` when the body is length-delimited, else None
    content_length: int | None = None
    #: the body is chunked
    chunked: bool = False


@dataclass(slots=True)
class Data:
    """A piece of a message body."""

    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    """The end of a message body, with the trailer fields of a chunked body."""

    headers: Headers = field(default_factory=list)


@dataclass(slots=True)
class InformationalResponse:
    """A 1xx response: 100 Continue, 101 Switching Protocols, 103 Early Hints."""

    status: int
    headers: Headers = field(default_factory=list)
    reason: bytes = b""


@dataclass(slots=True)
class Response:
    """A final response head (status 200 to 599)."""

    status: int
    headers: Headers = field(default_factory=list)
    reason: bytes = b""


@dataclass(slots=True)
class ConnectionClosed:
    """The peer closed its side (when received) or we will close ours (when sent)."""


Event = Request | Data | EndOfMessage | InformationalResponse | Response | ConnectionClosed

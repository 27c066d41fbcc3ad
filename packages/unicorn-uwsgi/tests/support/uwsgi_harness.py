"""Build uwsgi packets as nginx does, drive a UwsgiConnection, describe what it did.

A vector is (id, raw bytes, expected outcome), as in unicorn-http's tables:
``Parsed(...)`` (the request's attributes, the origin's, and the events after
it) or ``Refused(status, *words)`` (a RemoteProtocolError with that status
whose reason holds each word). ``check_vector`` runs the bytes whole and one
byte at a time and demands the same outcome both ways; a refusal must stay
refused and be answered with a closing error response.
"""

from __future__ import annotations

from typing import Any

import pytest

from unicorn_http import (
    MUST_CLOSE,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    RemoteProtocolError,
    Request,
)
from unicorn_uwsgi import UwsgiConnection, pack

EOM = EndOfMessage()


def nginx_vars(
    method: bytes = b"GET",
    uri: bytes = b"/",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    content_length: bytes = b"",
    content_type: bytes = b"",
    protocol: bytes = b"HTTP/1.1",
    scheme: bytes = b"http",
    https: bytes | None = None,
    server_name: bytes = b"example.com",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> list[tuple[bytes, bytes]]:
    """The vars nginx sends with Debian's uwsgi_params, in its order, then the headers."""
    path, _, query = uri.partition(b"?")
    out = [
        (b"QUERY_STRING", query),
        (b"REQUEST_METHOD", method),
        (b"CONTENT_TYPE", content_type),
        (b"CONTENT_LENGTH", content_length),
        (b"REQUEST_URI", uri),
        (b"PATH_INFO", path),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", protocol),
        (b"REQUEST_SCHEME", scheme),
    ]
    if https is not None:
        out.append((b"HTTPS", https))
    out += [
        (b"REMOTE_ADDR", b"203.0.113.7"),
        (b"REMOTE_PORT", b"51234"),
        (b"SERVER_PORT", b"8080"),
        (b"SERVER_NAME", server_name),
        *(extra or []),
    ]
    for name, value in headers if headers is not None else [(b"Host", b"example.com")]:
        out.append((b"HTTP_" + name.upper().replace(b"-", b"_"), value))
    return out


class Parsed:
    """The request parses with these attributes; ``origin`` the Origin's; ``after`` the events."""

    def __init__(self, after: list | None = None, origin: dict | None = None, **attrs: Any) -> None:
        self.after = [EOM, PAUSED] if after is None else after
        self.origin = origin or {}
        self.attrs = attrs

    def __repr__(self) -> str:
        return f"Parsed({self.attrs!r}, origin={self.origin!r}, after={self.after!r})"


class Refused:
    """``next_event()`` raises RemoteProtocolError with ``status``; the reason holds ``words``."""

    def __init__(self, status: int, *words: str) -> None:
        self.status = status
        self.words = words

    def __repr__(self) -> str:
        return f"Refused({self.status}, {self.words!r})"


def case(id: str, raw: bytes, expect: Parsed | Refused, *, eof: bool = False, **settings: Any):
    """One row of a vector table; ``eof`` closes the input after ``raw``."""
    return pytest.param(raw, expect, eof, settings, id=id)


def pump(conn: UwsgiConnection, events: list) -> list:
    """Call next_event() until NEED_DATA, PAUSED or ConnectionClosed (which are kept)."""
    while True:
        event = conn.next_event()
        events.append(event)
        if event is NEED_DATA or event is PAUSED or type(event) is ConnectionClosed:
            return events


def merge(events: list) -> list:
    """Drop NEED_DATA and join neighbouring Data: both depend on how the input was split."""
    out: list = []
    for event in events:
        if event is NEED_DATA:
            continue
        if type(event) is Data and out and type(out[-1]) is Data:
            out[-1] = Data(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def outcome(
    chunks: list[bytes], *, eof: bool = False, **settings: Any
) -> tuple[UwsgiConnection, list, RemoteProtocolError | None]:
    """Feed ``chunks`` one by one, reading events up to the first PAUSED or ConnectionClosed."""
    conn = UwsgiConnection(**settings)
    events: list = []
    try:
        for chunk in [*chunks, b""] if eof else chunks:
            conn.receive_data(chunk)
            pump(conn, events)
            if events[-1] is PAUSED or type(events[-1]) is ConnectionClosed:
                break
    except RemoteProtocolError as exc:
        return conn, merge(events), exc
    return conn, merge(events), None


def check_refusal_is_final(conn: UwsgiConnection, error: RemoteProtocolError) -> None:
    """After a refusal the connection stays refused and its answer says why, then closes."""
    for _ in range(2):
        with pytest.raises(RemoteProtocolError) as again:
            conn.next_event()
        assert again.value.status == error.status
    assert conn.their_state == "ERROR"
    out = conn.send_error(error)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % error.status)
    if conn.request is None or conn.request.method != b"HEAD":
        assert error.reason.encode() in body
    assert conn.our_state is MUST_CLOSE
    assert not conn.keep_alive


def check_vector(raw: bytes, expect: Parsed | Refused, eof: bool, settings: dict) -> None:
    conn, events, error = outcome([raw], eof=eof, **settings)
    if isinstance(expect, Refused):
        assert error is not None, f"accepted, events: {events!r}"
        assert error.status == expect.status, repr(error)
        for word in expect.words:
            assert word.lower() in error.reason.lower(), repr(error)
        check_refusal_is_final(conn, error)
    else:
        assert error is None, repr(error)
        req = events[0]
        assert type(req) is Request, events
        assert conn.request is req
        for name, value in expect.attrs.items():
            assert getattr(req, name) == value, (name, req)
        for name, value in expect.origin.items():
            assert getattr(conn.origin, name) == value, (name, conn.origin)
        assert events[1:] == expect.after
    pieces = [raw[i : i + 1] for i in range(len(raw))]
    _, split_events, split_error = outcome(pieces, eof=eof, **settings)
    assert split_events == events
    assert (split_error and split_error.reason) == (error and error.reason), (split_error, error)


__all__ = [
    "EOM",
    "NEED_DATA",
    "PAUSED",
    "Parsed",
    "Refused",
    "case",
    "check_vector",
    "nginx_vars",
    "outcome",
    "pack",
]

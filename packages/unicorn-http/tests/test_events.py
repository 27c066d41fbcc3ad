"""Events are small values and errors carry blame and a status: the public
surface another project builds on."""

from __future__ import annotations

import pytest

import unicorn_http
from unicorn_http import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    Request,
    Response,
)

EVENTS = [
    Request(b"GET", b"/", [(b"host", b"a")]),
    Data(b"x"),
    EndOfMessage(),
    InformationalResponse(100),
    Response(200),
    ConnectionClosed(),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_events_are_slotted_values(event):
    assert not hasattr(event, "__dict__")
    with pytest.raises(AttributeError):
        event.not_a_field = 1
    assert event == type(event)(**{name: getattr(event, name) for name in event.__slots__})
    assert type(event).__name__ in repr(event)


def test_event_equality_is_by_value():
    assert Data(b"a") == Data(b"a") and Data(b"a") != Data(b"b")
    assert EndOfMessage() == EndOfMessage([])
    assert EndOfMessage([(b"x", b"1")]) != EndOfMessage()
    assert ConnectionClosed() == ConnectionClosed()


def test_default_lists_are_not_shared():
    first, second = EndOfMessage(), EndOfMessage()
    first.headers.append((b"x", b"1"))
    assert second.headers == []
    assert Response(200).headers is not Response(200).headers


def test_request_defaults():
    req = Request(b"GET", b"/", [])
    assert req.http_version == b"1.1" and req.path == b"/" and req.query == b""
    assert req.keep_alive and not req.expect_continue and not req.chunked
    assert req.upgrade is None and req.content_length is None


def test_sentinels_are_distinct_and_named():
    assert NEED_DATA is not PAUSED
    assert repr(NEED_DATA) == "NEED_DATA" and repr(PAUSED) == "PAUSED"


def test_errors_carry_blame_and_status():
    remote = RemoteProtocolError("bad thing")
    assert isinstance(remote, ProtocolError) and remote.status == 400
    assert remote.reason == "bad thing" == str(remote)
    assert RemoteProtocolError("too big", 413).status == 413
    assert repr(RemoteProtocolError("x", 431)) == "RemoteProtocolError('x', status=431)"
    local = LocalProtocolError("misuse")
    assert isinstance(local, ProtocolError) and not isinstance(local, RemoteProtocolError)
    assert local.status == 500


def test_public_api():
    for name in unicorn_http.__all__:
        assert hasattr(unicorn_http, name), name
    assert {"H1Connection", "Request", "RemoteProtocolError", "NEED_DATA", "PAUSED"} <= set(
        unicorn_http.__all__
    )


def test_send_refuses_what_is_not_a_response_event():
    conn = unicorn_http.H1Connection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(Request(b"GET", b"/", []))

"""Expect: 100-continue (RFC 9110 section 10.1.1), Upgrade and 101 (RFC 9110
sections 7.8 and 15.2.2), and CONNECT tunnels (RFC 9110 section 9.3.6): the
ways a request asks the server to act before, or instead of, a plain exchange."""

from __future__ import annotations

import pytest
from h1_harness import EOM, merge, pump

from unicorn_http import (
    NEED_DATA,
    PAUSED,
    SWITCHED,
    ConnectionClosed,
    Data,
    H1Connection,
    InformationalResponse,
    LocalProtocolError,
    RemoteProtocolError,
)

HOST = b"Host: example.com\r\n"
CLOSED = ConnectionClosed()


def request(
    *fields: bytes, method: bytes = b"POST", target: bytes = b"/", version: bytes = b"1.1"
) -> bytes:
    host = HOST if version == b"1.1" else b""
    return (
        method
        + b" "
        + target
        + b" HTTP/"
        + version
        + b"\r\n"
        + host
        + b"".join(f + b"\r\n" for f in fields)
        + b"\r\n"
    )


def connected(raw: bytes) -> H1Connection:
    conn = H1Connection()
    conn.receive_data(raw)
    return conn


def head_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[0].lower()


# ---------------------------------------------------------------- 100-continue

EXPECT = request(b"Content-Length: 5", b"Expect: 100-continue")


def test_100_continue_is_sent_once():
    conn = connected(EXPECT)
    req = conn.next_event()
    assert req.expect_continue
    assert conn.next_event() is NEED_DATA  # the client holds the body back
    assert conn.send_response(100, []) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.send(InformationalResponse(100)) == b""
    conn.receive_data(b"hello")
    assert merge(pump(conn)) == [Data(b"hello"), EOM, PAUSED]
    out = conn.respond(200, [], b"ok")
    assert b"connection: close" not in head_of(out)


def test_expectation_is_case_insensitive():
    req = connected(request(b"Content-Length: 5", b"Expect: 100-Continue")).next_event()
    assert req.expect_continue


def test_no_100_continue_for_http_1_0():
    conn = connected(request(b"Content-Length: 5", b"Expect: 100-continue", version=b"1.0"))
    req = conn.next_event()
    # RFC 9110 section 10.1.1: an HTTP/1.0 100-continue expectation is ignored,
    # and section 15.2: no 1xx goes to an HTTP/1.0 client.
    assert not req.expect_continue
    assert conn.send_response(100, []) == b""
    assert conn.send_response(103, [(b"Link", b"</a.css>; rel=preload")]) == b""


def test_unknown_expectation_is_refused_with_417():
    # Deliberate (h1.py): an expectation we cannot meet is answered 417, as
    # RFC 9110 section 10.1.1 allows, rather than ignored.
    conn = connected(request(b"Content-Length: 5", b"Expect: something-else"))
    with pytest.raises(RemoteProtocolError) as exc:
        conn.next_event()
    assert exc.value.status == 417
    assert b"HTTP/1.1 417 Expectation Failed\r\n" in conn.send_error(exc.value)


def test_final_response_without_100_and_unread_body_closes():
    conn = connected(EXPECT)
    conn.next_event()
    out = conn.respond(401, [], b"no")
    # The client may still be waiting to send the body, or sending it: the only
    # way to know where the next request starts is to have none.
    assert b"connection: close" in head_of(out)
    assert conn.next_event() == CLOSED


def test_final_response_after_100_and_unread_body_drains():
    conn = connected(EXPECT)
    conn.next_event()
    conn.send_response(100, [])
    out = conn.respond(413, [], b"too big")
    assert b"connection: close" not in head_of(out)
    conn.receive_data(b"hello" + request(method=b"GET", target=b"/2"))
    events = merge(pump(conn))
    # The drained body and its end stay unseen; the next event is the next request.
    assert events[0].target == b"/2"


def test_final_response_without_100_after_the_body_was_read_keeps_alive():
    conn = connected(EXPECT + b"hello")
    assert merge(pump(conn))[1:] == [Data(b"hello"), EOM, PAUSED]
    assert b"connection: close" not in head_of(conn.respond(200, [], b""))


# --------------------------------------------------------------------- Upgrade

WEBSOCKET = request(
    b"Connection: keep-alive, Upgrade",
    b"Upgrade: WebSocket",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
    method=b"GET",
    target=b"/chat",
)


def test_upgrade_then_101_switches_and_hands_over_the_bytes():
    conn = connected(WEBSOCKET + b"\x81\x85first-frame")
    req = conn.next_event()
    assert req.upgrade == b"websocket"
    assert conn.next_event() == EOM
    out = conn.send_response(
        101,
        [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Accept", b"x")],
    )
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert out.endswith(b"\r\n\r\n")
    assert conn.our_state is SWITCHED and conn.their_state is SWITCHED
    assert conn.next_event() is PAUSED
    conn.receive_data(b"more")
    assert conn.trailing_data == (b"\x81\x85first-framemore", False)
    conn.receive_data(b"")
    assert conn.trailing_data == (b"\x81\x85first-framemore", True)
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [])


def test_101_before_reading_the_end_of_a_bodyless_request():
    conn = connected(WEBSOCKET)
    conn.next_event()
    conn.send_response(101, [(b"Upgrade", b"websocket")])
    assert conn.trailing_data == (b"", False)
    assert conn.next_event() is PAUSED


def test_h2c_upgrade_is_reported():
    req = connected(
        request(
            b"Connection: Upgrade, HTTP2-Settings",
            b"Upgrade: h2c",
            b"HTTP2-Settings: AAMAAABkAAQAAP__",
            method=b"GET",
        )
    ).next_event()
    assert req.upgrade == b"h2c"


def test_upgrade_without_connection_upgrade_is_ignored():
    # RFC 9110 section 7.6.1: Upgrade is a hop-by-hop field and must be named in Connection.
    req = connected(request(b"Upgrade: websocket", method=b"GET")).next_event()
    assert req.upgrade is None
    req = connected(
        request(b"Connection: keep-alive", b"Upgrade: websocket", method=b"GET")
    ).next_event()
    assert req.upgrade is None


def test_upgrade_in_http_1_0_is_ignored():
    # RFC 9110 section 7.8: "A server MUST ignore an Upgrade header field that is
    # received in an HTTP/1.0 request."
    req = connected(
        request(b"Connection: upgrade", b"Upgrade: websocket", method=b"GET", version=b"1.0")
    ).next_event()
    assert req.upgrade is None


def test_101_without_an_upgrade_request_is_a_local_error():
    conn = connected(request(method=b"GET"))
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send_response(101, [(b"Upgrade", b"websocket")])


def test_upgrade_answered_with_a_plain_response_stays_http():
    conn = connected(WEBSOCKET + request(method=b"GET", target=b"/next"))
    pump(conn)
    conn.respond(426, [], b"no")
    assert conn.next_event().target == b"/next"


# --------------------------------------------------------------------- CONNECT

TUNNEL = request(method=b"CONNECT", target=b"example.com:443").replace(
    HOST, b"Host: example.com:443\r\n"
)


def test_connect_2xx_switches_to_a_tunnel():
    conn = connected(TUNNEL + b"\x16\x03\x01client-hello")
    req = conn.next_event()
    assert req.method == b"CONNECT" and req.path == b"example.com:443"
    assert conn.next_event() == EOM
    out = conn.send_response(200, [])
    head = head_of(out)
    # RFC 9110 section 9.3.6: no Content-Length or Transfer-Encoding in a 2xx to CONNECT.
    assert b"content-length" not in head and b"transfer-encoding" not in head
    assert conn.our_state is SWITCHED
    assert conn.trailing_data == (b"\x16\x03\x01client-hello", False)


def test_connect_refused_is_a_plain_response():
    conn = connected(TUNNEL + request(method=b"GET", target=b"/next"))
    pump(conn)
    out = conn.respond(407, [(b"Proxy-Authenticate", b"Basic")], b"auth")
    assert out.endswith(b"\r\n\r\nauth")
    assert conn.our_state is not SWITCHED
    assert conn.next_event().target == b"/next"


# ----------------------------------------------------------------- status codes


@pytest.mark.parametrize("status", [-1, 0, 42, 99, 600, 1000])
def test_status_outside_100_to_599_is_a_local_error(status):
    conn = connected(request(method=b"GET"))
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send_response(status, [])


def test_no_informational_response_after_a_refused_request():
    conn = connected(b"BAD\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send_response(100, [])

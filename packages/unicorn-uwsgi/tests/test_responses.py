"""The response to a uwsgi request: HTTP/1.x bytes nginx's uwsgi module reads to
the close (never chunked), with HTTP/1.1's own rules for HEAD, 204, 304 and
Content-Length; and one request per connection."""

from __future__ import annotations

import pytest
from uwsgi_harness import nginx_vars, pack

from unicorn_http import (
    MUST_CLOSE,
    ConnectionClosed,
    Data,
    EndOfMessage,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
)
from unicorn_uwsgi import UwsgiConnection


def connection(method: bytes = b"GET", body: bytes = b"", protocol: bytes = b"HTTP/1.1"):
    conn = UwsgiConnection()
    length = b"%d" % len(body) if body else b""
    conn.receive_data(
        pack(nginx_vars(method, b"/r", content_length=length, protocol=protocol), body)
    )
    req = conn.next_event()
    assert type(req) is Request
    while type(conn.next_event()) is not EndOfMessage:
        pass
    return conn


def split(out: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = out.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def test_streamed_body_is_close_delimited_not_chunked():
    conn = connection()
    head, rest = split(conn.send_response(200, [(b"Content-Type", b"text/event-stream")]))
    assert head[0] == b"HTTP/1.1 200 OK"
    names = [line.split(b":")[0].lower() for line in head[1:]]
    assert b"transfer-encoding" not in names and b"content-length" not in names
    assert b"connection" not in names  # an HTTP/1.0-style exchange: the close says it
    assert rest == b""
    assert conn.send_data(b"data: 1\n\n") == b"data: 1\n\n"
    assert conn.send_data(b"data: 2\n\n") == b"data: 2\n\n"
    assert conn.send_end() == b""
    assert conn.our_state is MUST_CLOSE
    assert type(conn.next_event()) is ConnectionClosed


@pytest.mark.parametrize("protocol", [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0"])
def test_content_length_kept_and_connection_closes(protocol):
    conn = connection(protocol=protocol)
    assert conn.request.http_version == {b"HTTP/1.1": b"1.1", b"HTTP/1.0": b"1.0"}.get(
        protocol, b"2"
    )
    head, body = split(conn.respond(200, [(b"Content-Type", b"text/plain")], b"hello"))
    assert b"Content-Length: 5" in head and body == b"hello"
    assert conn.our_state is MUST_CLOSE and not conn.keep_alive


def test_head_has_no_body_but_its_length():
    conn = connection(b"HEAD")
    out = conn.respond(200, [(b"Content-Length", b"11")], b"")
    head, body = split(out)
    assert b"Content-Length: 11" in head and body == b""
    conn = connection(b"HEAD")
    assert conn.send_response(200, [(b"Content-Length", b"3")]).endswith(b"\r\n\r\n")
    assert conn.send_data(b"abc") == b""
    assert conn.send_end() == b""


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status):
    conn = connection()
    head, body = split(conn.respond(status, []))
    assert head[0].startswith(b"HTTP/1.1 %d" % status) and body == b""
    assert not any(line.lower().startswith(b"content-length") for line in head[1:])


def test_body_longer_than_its_content_length_is_refused():
    conn = connection()
    conn.send_response(200, [(b"Content-Length", b"2")])
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"abc")


def test_body_read_in_pieces_as_it_arrives():
    conn = UwsgiConnection()
    raw = pack(nginx_vars(b"POST", b"/u", content_length=b"10"), b"0123456789")
    conn.receive_data(raw[:-7])
    assert type(conn.next_event()) is Request
    assert conn.next_event() == Data(b"012")
    assert conn.next_event() is not None and conn.their_state == "SEND_BODY"
    conn.receive_data(raw[-7:])
    assert conn.next_event() == Data(b"3456789")
    assert type(conn.next_event()) is EndOfMessage


def test_response_before_the_whole_body_still_closes():
    conn = UwsgiConnection()
    conn.receive_data(pack(nginx_vars(b"POST", b"/u", content_length=b"100"), b"x"))
    assert type(conn.next_event()) is Request
    out = conn.respond(413, [], b"too big")
    assert out.startswith(b"HTTP/1.1 413 ")
    assert conn.our_state is MUST_CLOSE


def test_error_before_any_head_is_an_http_response():
    conn = UwsgiConnection()
    conn.receive_data(b"\x05\x00\x00\x00")
    with pytest.raises(RemoteProtocolError) as caught:
        conn.next_event()
    out = conn.send_error(caught.value)
    head, body = split(out)
    assert head[0] == b"HTTP/1.1 400 Bad Request"
    assert b"Connection: close" in head
    assert b"modifier1 5" in body
    assert conn.their_state == "ERROR" and conn.our_state is MUST_CLOSE
    assert type(conn.next_event()) is ConnectionClosed


def test_keep_alive_switched_off_by_the_worker_still_closes():
    conn = connection()
    assert conn.keep_alive is True  # until the worker says otherwise
    conn.keep_alive = False
    conn.respond(200, [], b"ok")
    assert conn.our_state is MUST_CLOSE


def test_unknown_factory_options_are_ignored_and_h1_ones_used():
    conn = UwsgiConnection(
        permit_obsolete_folding=False, uwsgi_buffer_size=1000, server=b"edge", a_future_option=1
    )
    conn.receive_data(pack(nginx_vars()))
    conn.next_event()
    assert b"Server: edge\r\n" in conn.respond(200, [], b"")


def test_origin_and_request_read_after_the_head():
    conn = UwsgiConnection()
    assert conn.request is None and conn.origin is None
    conn.receive_data(pack(nginx_vars(extra=[(b"REMOTE_USER", b"bob")])))
    conn.next_event()
    assert conn.origin.client == ("203.0.113.7", 51234)
    assert conn.origin.remote_user == "bob"
    assert conn.request.keep_alive is False

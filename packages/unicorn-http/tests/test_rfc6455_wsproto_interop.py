"""Interop: wsproto, an independent implementation, as the client of our server
connection, in memory: handshake through H1Connection, messages both ways
(whole and fragmented), ping/pong and both closing handshakes, with and
without permessage-deflate in its several configurations."""

from __future__ import annotations

import os

import pytest
import wsproto
import wsproto.events as w
from ws_harness import drain
from wsproto.extensions import PerMessageDeflate as ClientDeflate

from unicorn_http import (
    BytesMessage,
    CloseReceived,
    H1Connection,
    PerMessageDeflate,
    Ping,
    Pong,
    TextMessage,
    WebSocketHandshake,
    WebSocketProtocolError,
    WSConnection,
)

CONFIGS = [
    pytest.param((None, None), id="no-deflate"),
    pytest.param((ClientDeflate, PerMessageDeflate()), id="deflate"),
    pytest.param(
        (
            lambda: ClientDeflate(client_no_context_takeover=True, server_no_context_takeover=True),
            PerMessageDeflate(),
        ),
        id="deflate-no-context-takeover-asked-by-client",
    ),
    pytest.param(
        (
            ClientDeflate,
            PerMessageDeflate(client_no_context_takeover=True, server_no_context_takeover=True),
        ),
        id="deflate-no-context-takeover-asked-by-server",
    ),
    pytest.param(
        (
            lambda: ClientDeflate(client_max_window_bits=10, server_max_window_bits=9),
            PerMessageDeflate(client_max_window_bits=9),
        ),
        id="deflate-small-windows",
    ),
]


class Pair:
    """A wsproto client and our server connection joined by two in-memory pipes."""

    def __init__(self, client_ext, policy, *, max_message_size=16 << 20, subprotocols=()):
        self.client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        request = self.client.send(
            w.Request(
                host="example.com",
                target="/chat",
                subprotocols=list(subprotocols),
                extensions=[client_ext()] if client_ext else [],
            )
        )
        h1 = H1Connection()
        h1.receive_data(request)
        handshake = WebSocketHandshake.from_request(h1.next_event())
        headers, self.server = handshake.accept(
            subprotocols[0] if subprotocols else None,
            permessage_deflate=policy,
            max_message_size=max_message_size,
        )
        self.client.receive_data(h1.send_response(101, headers))
        [self.accepted] = self.client.events()
        assert isinstance(self.accepted, w.AcceptConnection)
        self.deflated = bool(self.accepted.extensions)
        assert self.deflated == (client_ext is not None and policy is not None)

    def to_server(self, *events) -> list:
        self.server.receive_data(b"".join(self.client.send(e) for e in events))
        return drain(self.server)

    def to_client(self, data: bytes) -> list:
        # What the server answered on its own went out when it read the events.
        self.client.receive_data(self.server.data_to_send() + data)
        return list(self.client.events())


@pytest.fixture(params=CONFIGS)
def pair(request):
    return Pair(*request.param)


def test_subprotocol_reaches_the_client():
    pair = Pair(None, None, subprotocols=["graphql-ws", "chat"])
    assert pair.accepted.subprotocol == "graphql-ws"


def test_messages_both_ways(pair):
    texts = ["hello", "", "☃ snow " * 50, "again " * 1000]
    blobs = [b"", os.urandom(300), b"\x00" * 70_000, os.urandom(70_000)]
    got = pair.to_server(*[w.TextMessage(t) for t in texts], *[w.BytesMessage(b) for b in blobs])
    assert got == [TextMessage(t) for t in texts] + [BytesMessage(b) for b in blobs]
    out = b"".join(pair.server.send_text(t) for t in texts)
    out += b"".join(pair.server.send_bytes(b) for b in blobs)
    received = pair.to_client(out)
    assert [(type(e), e.data) for e in received] == [(w.TextMessage, t) for t in texts] + [
        (w.BytesMessage, bytearray(b)) for b in blobs
    ]
    assert all(e.message_finished for e in received)


def test_many_messages_keep_the_windows_in_step(pair):
    # With context takeover each message may refer into earlier ones: a
    # window out of step on either side would garble some later message.
    words = [os.urandom(8).hex() for _ in range(20)]
    for i in range(60):
        message = " ".join(words[(i * 7 + k) % 20] for k in range(i % 13 + 1))
        assert pair.to_server(w.TextMessage(message)) == [TextMessage(message)]
        [echo] = pair.to_client(pair.server.send_text(message))
        assert echo.data == message


def test_fragmented_messages(pair):
    got = pair.to_server(
        w.TextMessage("frag", message_finished=False),
        w.Ping(b"in the middle"),
        w.TextMessage("men", message_finished=False),
        w.TextMessage("ted ☃", message_finished=True),
        w.BytesMessage(b"\x01" * 1000, message_finished=False),
        w.BytesMessage(b"\x02" * 1000, message_finished=True),
    )
    assert got == [
        Ping(b"in the middle"),
        TextMessage("fragmented ☃"),
        BytesMessage(b"\x01" * 1000 + b"\x02" * 1000),
    ]
    out = pair.server.send_bytes(b"a" * 100, fin=False) + pair.server.send_bytes(b"b" * 100)
    events = pair.to_client(out)  # the Pong for the Ping goes out too
    assert isinstance(events[0], w.Pong) and events[0].payload == b"in the middle"
    assert b"".join(e.data for e in events[1:]) == b"a" * 100 + b"b" * 100
    assert [e.message_finished for e in events[1:]] == [False, True]


def test_ping_pong_both_ways(pair):
    assert pair.to_server(w.Ping(b"client ping")) == [Ping(b"client ping")]
    [pong] = pair.to_client(b"")
    assert isinstance(pong, w.Pong) and pong.payload == b"client ping"
    [ping] = pair.to_client(pair.server.send_ping(b"server ping"))
    assert isinstance(ping, w.Ping)
    assert pair.to_server(ping.response()) == [Pong(b"server ping")]


def test_client_initiated_close(pair):
    assert pair.to_server(w.CloseConnection(1000, "bye")) == [CloseReceived(1000, "bye")]
    assert pair.server.state == "CLOSED"
    [close] = pair.to_client(b"")
    assert isinstance(close, w.CloseConnection) and close.code == 1000
    assert pair.client.state is wsproto.ConnectionState.CLOSED


def test_server_initiated_close(pair):
    [close] = pair.to_client(pair.server.send_close(1012, "restarting"))
    assert isinstance(close, w.CloseConnection)
    assert (close.code, close.reason) == (1012, "restarting")
    assert pair.to_server(close.response()) == [CloseReceived(1012, "restarting")]
    assert pair.server.state == "CLOSED"
    assert pair.client.state is wsproto.ConnectionState.CLOSED


@pytest.mark.parametrize("deflated", [False, True])
def test_message_too_big_reaches_the_client_as_1009(deflated):
    pair = Pair(ClientDeflate if deflated else None, PerMessageDeflate(), max_message_size=1000)
    assert pair.to_server(w.BytesMessage(b"x" * 1000)) == [BytesMessage(b"x" * 1000)]
    with pytest.raises(WebSocketProtocolError) as exc:
        pair.to_server(w.BytesMessage(b"x" * 1001))
    assert exc.value.code == 1009
    [close] = pair.to_client(b"")
    assert isinstance(close, w.CloseConnection) and close.code == 1009


def test_connection_default_is_plain():
    assert WSConnection().deflate is None

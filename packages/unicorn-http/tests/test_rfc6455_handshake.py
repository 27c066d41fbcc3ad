"""The opening handshake, server side (RFC 6455 section 4.2): which upgrade
requests are refused and with what, the accept key, subprotocol choice and
the 101 response as H1Connection sends it."""

from __future__ import annotations

import pytest

from unicorn_http import (
    SWITCHED,
    H1Connection,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    WebSocketHandshake,
    WebSocketHandshakeError,
    accept_key,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
GOOD = [
    (b"host", b"example.com"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
]


def req(headers=None, *, drop=(), add=(), method=b"GET", version=b"1.1", **attrs) -> Request:
    fields = [(n, v) for n, v in (GOOD if headers is None else headers) if n not in drop]
    return Request(method, b"/chat", fields + list(add), version, b"/chat", **attrs)


def test_accept_key_of_the_rfc_example():
    # RFC 6455 section 1.3 works this exact example.
    assert accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


REFUSED = [
    pytest.param(req(method=b"POST"), 400, "GET", id="method-not-get"),
    pytest.param(req(version=b"1.0"), 400, "HTTP/1.1", id="http-1.0"),
    pytest.param(req(content_length=5), 400, "body", id="request-with-a-body"),
    pytest.param(req(chunked=True), 400, "body", id="request-with-a-chunked-body"),
    pytest.param(req(drop=[b"host"]), 400, "Host", id="no-host"),
    pytest.param(req(drop=[b"upgrade"]), 400, "Upgrade", id="no-upgrade"),
    pytest.param(
        req(drop=[b"upgrade"], add=[(b"upgrade", b"h2c")]),
        400,
        "Upgrade",
        id="upgrade-not-websocket",
    ),
    pytest.param(req(drop=[b"connection"]), 400, "Connection", id="no-connection"),
    pytest.param(
        req(drop=[b"connection"], add=[(b"connection", b"keep-alive")]),
        400,
        "Connection",
        id="connection-without-upgrade",
    ),
    pytest.param(req(drop=[b"sec-websocket-key"]), 400, "Sec-WebSocket-Key", id="no-key"),
    pytest.param(req(add=[(b"sec-websocket-key", KEY)]), 400, "Sec-WebSocket-Key", id="two-keys"),
    pytest.param(
        req(drop=[b"sec-websocket-key"], add=[(b"sec-websocket-key", b"c2hvcnQ=")]),
        400,
        "16 bytes",
        id="key-not-16-bytes",
    ),
    pytest.param(
        req(drop=[b"sec-websocket-key"], add=[(b"sec-websocket-key", b"!!!!IHNhbXBsZSBub25jZQ==")]),
        400,
        "base64",
        id="key-not-base64",
    ),
    pytest.param(
        req(drop=[b"sec-websocket-key"], add=[(b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ")]),
        400,
        "base64",
        id="key-without-padding",
    ),
    pytest.param(
        req(drop=[b"sec-websocket-version"]), 400, "Sec-WebSocket-Version", id="no-version"
    ),
    pytest.param(
        req(drop=[b"sec-websocket-version"], add=[(b"sec-websocket-version", b"8")]),
        426,
        "13",
        id="version-8-is-426",
    ),
    pytest.param(req(add=[(b"sec-websocket-version", b"8")]), 426, "13", id="two-versions-is-426"),
    pytest.param(
        req(add=[(b"sec-websocket-protocol", b"chat, a b")]),
        400,
        "token",
        id="subprotocol-not-a-token",
    ),
]


@pytest.mark.parametrize(("request_", "status", "word"), REFUSED)
def test_refused_handshakes(request_, status, word):
    with pytest.raises(WebSocketHandshakeError) as exc:
        WebSocketHandshake.from_request(request_)
    assert isinstance(exc.value, RemoteProtocolError)
    assert exc.value.status == status
    assert word in exc.value.reason
    # RFC 6455 section 4.4: the refusal names the version we speak.
    assert (b"Sec-WebSocket-Version", b"13") in exc.value.headers


ACCEPTED = [
    pytest.param(req(), [], [], id="minimal"),
    pytest.param(
        req(
            drop=[b"upgrade", b"connection"],
            add=[(b"upgrade", b"WebSocket"), (b"connection", b"keep-alive, UPGRADE")],
        ),
        [],
        [],
        id="tokens-are-case-insensitive-and-listed",
    ),
    pytest.param(
        req(
            add=[
                (b"sec-websocket-protocol", b"chat, superchat"),
                (b"sec-websocket-protocol", b"v2"),
            ]
        ),
        ["chat", "superchat", "v2"],
        [],
        id="subprotocols-over-two-lines",
    ),
    pytest.param(
        req(add=[(b"sec-websocket-protocol", b" , chat ,")]), ["chat"], [], id="empty-list-elements"
    ),
    pytest.param(
        req(
            add=[
                (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
                (b"sec-websocket-extensions", b'x-foo; a="1"; b=2, permessage-deflate'),
            ]
        ),
        [],
        [
            ("permessage-deflate", [("client_max_window_bits", None)]),
            ("x-foo", [("a", "1"), ("b", "2")]),
            ("permessage-deflate", []),
        ],
        id="extensions-over-two-lines-with-quoted-value",
    ),
    pytest.param(
        req(add=[(b"sec-websocket-extensions", b"bad ext; x, permessage-deflate; a=b c, y")]),
        [],
        [("y", [])],
        id="unparseable-extension-offers-are-dropped",
    ),
]


@pytest.mark.parametrize(("request_", "subprotocols", "extensions"), ACCEPTED)
def test_accepted_handshakes(request_, subprotocols, extensions):
    hs = WebSocketHandshake.from_request(request_)
    assert hs.key == KEY
    assert hs.subprotocols == subprotocols
    assert hs.extensions == extensions


def test_101_headers():
    hs = WebSocketHandshake.from_request(req(add=[(b"sec-websocket-protocol", b"chat, v2")]))
    headers, ws = hs.accept("v2", [(b"Set-Cookie", b"a=b")])
    assert headers == [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        (b"Sec-WebSocket-Protocol", b"v2"),
        (b"Set-Cookie", b"a=b"),
    ]
    assert ws.deflate is None  # not offered


def test_subprotocol_must_be_one_offered():
    # RFC 6455 section 4.2.2 point 5.4: the server picks one of the client's values.
    hs = WebSocketHandshake.from_request(req(add=[(b"sec-websocket-protocol", b"chat")]))
    with pytest.raises(LocalProtocolError):
        hs.accept("graphql-ws")


@pytest.mark.parametrize(
    "name", [b"Sec-WebSocket-Protocol", b"sec-websocket-accept", b"Upgrade", b"Connection"]
)
def test_handshake_fields_are_not_the_applications(name):
    hs = WebSocketHandshake.from_request(req())
    with pytest.raises(LocalProtocolError):
        hs.accept(None, [(name, b"x")])


def test_max_message_size_reaches_the_connection():
    _, ws = WebSocketHandshake.from_request(req()).accept(max_message_size=1000)
    assert ws.max_message_size == 1000


def test_through_h1_connection():
    raw = (
        b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\n"
        b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    first_frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"  # RFC 6455 section 5.7: "Hello"
    h1 = H1Connection()
    h1.receive_data(raw + first_frame)
    request = h1.next_event()
    assert request.upgrade == b"websocket"
    hs = WebSocketHandshake.from_request(request)
    headers, ws = hs.accept("chat")
    out = h1.send_response(101, headers)
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in out
    assert b"\r\nSec-WebSocket-Protocol: chat\r\n" in out
    assert h1.our_state is SWITCHED
    data, eof = h1.trailing_data
    assert data == first_frame and not eof
    ws.receive_data(data)
    assert ws.next_event().data == "Hello"


def test_refusal_through_h1_connection():
    h1 = H1Connection()
    h1.receive_data(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 7\r\n\r\n"
    )
    with pytest.raises(WebSocketHandshakeError) as exc:
        WebSocketHandshake.from_request(h1.next_event())
    out = h1.respond(exc.value.status, exc.value.headers, exc.value.reason.encode())
    assert out.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in out


# RFC 8441: the handshake as an HTTP/2 extended CONNECT (:protocol websocket).
H2_FIELDS = [(b"host", b"example.com"), (b"sec-websocket-version", b"13")]


def connect(add=(), *, fields=None, method=b"CONNECT", protocol=b"websocket") -> Request:
    return Request(
        method, b"/chat", (H2_FIELDS if fields is None else fields) + list(add), b"2", b"/chat",
        upgrade=protocol,
    )  # fmt: skip


@pytest.mark.parametrize(
    "request_, word",
    [
        pytest.param(connect(method=b"GET"), "CONNECT", id="rfc8441-4-not-connect"),
        pytest.param(connect(protocol=b"chat"), ":protocol", id="rfc8441-4-other-protocol"),
        pytest.param(
            connect(fields=[(b"sec-websocket-version", b"8")]), "13", id="rfc6455-4.4-version"
        ),
        pytest.param(
            connect([(b"sec-websocket-protocol", b"a b")]), "tokens", id="rfc6455-4.3-protocol"
        ),
    ],
)
def test_refused_extended_connects(request_, word):
    with pytest.raises(WebSocketHandshakeError) as caught:
        WebSocketHandshake.from_connect(request_)
    assert caught.value.status == 400 and word in caught.value.reason


def test_extended_connect_is_answered_without_key_or_upgrade_fields():
    # RFC 8441 section 5: no Sec-WebSocket-Key/Accept, and HTTP/2 has no Upgrade
    offer = connect(
        [
            (b"sec-websocket-protocol", b"chat, superchat"),
            (b"sec-websocket-extensions", b"permessage-deflate"),
        ],
        fields=[],  # a missing version is taken as 13
    )
    handshake = WebSocketHandshake.from_connect(offer)
    assert handshake.over_http2 and handshake.subprotocols == ["chat", "superchat"]
    headers, ws = handshake.accept("chat", [(b"x-extra", b"1")])
    names = [n.lower() for n, _ in headers]
    assert names == [b"sec-websocket-protocol", b"sec-websocket-extensions", b"x-extra"]
    assert ws.deflate is not None
    with pytest.raises(WebSocketHandshakeError):
        WebSocketHandshake.from_request(offer)  # the HTTP/1.1 handshake refuses it

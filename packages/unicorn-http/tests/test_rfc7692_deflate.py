"""permessage-deflate (RFC 7692): the offer/response negotiation of section 7.1
as a table, the worked examples of section 7.2.3, context takeover and window
bits in both directions, and inflation bounded by max_message_size."""

from __future__ import annotations

import os
import tracemalloc
import zlib

import pytest
from ws_harness import BINARY, CONT, PING, TEXT, Failed, deflate, frame, parse_server_frames, run

from unicorn_http import (
    BytesMessage,
    PerMessageDeflate,
    Ping,
    Request,
    TextMessage,
    WebSocketHandshake,
    WSConnection,
)

DEFAULT = PerMessageDeflate()


def offers(*values: bytes) -> WebSocketHandshake:
    headers = [
        (b"host", b"a"),
        (b"upgrade", b"websocket"),
        (b"connection", b"upgrade"),
        (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"sec-websocket-version", b"13"),
    ] + [(b"sec-websocket-extensions", v) for v in values]
    return WebSocketHandshake.from_request(Request(b"GET", b"/", headers))


def neg(id, offer, response, agreed=None, policy=DEFAULT):
    return pytest.param(offer, policy, response, agreed, id=id)


P = PerMessageDeflate

NEGOTIATION = [
    neg("plain-offer", b"permessage-deflate", b"permessage-deflate", P()),
    neg(
        "browser-offer",
        b"permessage-deflate; client_max_window_bits",
        b"permessage-deflate",
        P(),
    ),
    neg("not-offered", b"x-webkit-deflate-frame", None),
    neg("name-is-case-insensitive", b"Permessage-Deflate", b"permessage-deflate", P()),
    # 7.1.1.1: the client asks us not to keep our window; we must comply.
    neg(
        "server-no-context-takeover-requested",
        b"permessage-deflate; server_no_context_takeover",
        b"permessage-deflate; server_no_context_takeover",
        P(server_no_context_takeover=True),
    ),
    # 7.1.1.2: we may ask the client to drop its window even if it did not offer to.
    neg(
        "client-no-context-takeover-by-policy",
        b"permessage-deflate",
        b"permessage-deflate; client_no_context_takeover",
        P(client_no_context_takeover=True),
        P(client_no_context_takeover=True),
    ),
    neg(
        "client-no-context-takeover-offered-is-a-hint",
        b"permessage-deflate; client_no_context_takeover",
        b"permessage-deflate",
        P(),
    ),
    # 7.1.2.1: answer server_max_window_bits with at most the offered value.
    neg(
        "server-max-window-bits-offered",
        b"permessage-deflate; server_max_window_bits=10",
        b"permessage-deflate; server_max_window_bits=10",
        P(server_max_window_bits=10),
    ),
    neg(
        "server-max-window-bits-ours-smaller",
        b"permessage-deflate; server_max_window_bits=12",
        b"permessage-deflate; server_max_window_bits=11",
        P(server_max_window_bits=11),
        P(server_max_window_bits=11),
    ),
    neg(
        "server-max-window-bits-unoffered-but-ours-smaller",
        b"permessage-deflate",
        b"permessage-deflate; server_max_window_bits=11",
        P(server_max_window_bits=11),
        P(server_max_window_bits=11),
    ),
    neg(
        "server-max-window-bits-quoted",
        b'permessage-deflate; server_max_window_bits="10"',
        b"permessage-deflate; server_max_window_bits=10",
        P(server_max_window_bits=10),
    ),
    # 7.1.2.2: client_max_window_bits only when the client offered it.
    neg(
        "client-max-window-bits-chosen-by-policy",
        b"permessage-deflate; client_max_window_bits",
        b"permessage-deflate; client_max_window_bits=10",
        P(client_max_window_bits=10),
        P(client_max_window_bits=10),
    ),
    neg(
        "client-max-window-bits-offered-with-value",
        b"permessage-deflate; client_max_window_bits=9",
        b"permessage-deflate",
        P(),
        P(client_max_window_bits=10),
    ),
    neg(
        "client-max-window-bits-not-offered-is-not-answered",
        b"permessage-deflate",
        b"permessage-deflate",
        P(),
        P(client_max_window_bits=10),
    ),
    # Declined offers (section 7.1): the next acceptable one wins, or none.
    neg("unknown-parameter", b"permessage-deflate; foo", None),
    neg(
        "repeated-parameter",
        b"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        None,
    ),
    neg("value-on-a-flag", b"permessage-deflate; server_no_context_takeover=1", None),
    neg(
        "server-max-window-bits-without-value", b"permessage-deflate; server_max_window_bits", None
    ),
    neg("server-max-window-bits-16", b"permessage-deflate; server_max_window_bits=16", None),
    neg("server-max-window-bits-7", b"permessage-deflate; server_max_window_bits=7", None),
    neg(
        "server-max-window-bits-leading-zero",
        b"permessage-deflate; server_max_window_bits=010",
        None,
    ),
    neg("client-max-window-bits-16", b"permessage-deflate; client_max_window_bits=16", None),
    # zlib cannot write raw DEFLATE with a 256-byte window.
    neg(
        "server-max-window-bits-8-is-declined",
        b"permessage-deflate; server_max_window_bits=8",
        None,
    ),
    neg(
        "first-acceptable-offer-wins",
        b"permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9",
        b"permessage-deflate; server_max_window_bits=9",
        P(server_max_window_bits=9),
    ),
    neg(
        "offer-after-another-extension",
        b"x-foo, permessage-deflate; client_no_context_takeover",
        b"permessage-deflate",
        P(),
    ),
    neg("disabled-by-policy", b"permessage-deflate", None, None, None),
]


@pytest.mark.parametrize(("offer", "policy", "response", "agreed"), NEGOTIATION)
def test_negotiation(offer, policy, response, agreed):
    headers, ws = offers(offer).accept(permessage_deflate=policy)
    answered = [v for n, v in headers if n == b"Sec-WebSocket-Extensions"]
    assert answered == ([] if response is None else [response])
    assert ws.deflate == agreed


def test_policy_window_bits_are_checked():
    with pytest.raises(ValueError):
        PerMessageDeflate(server_max_window_bits=8)
    with pytest.raises(ValueError):
        PerMessageDeflate(client_max_window_bits=16)


# ---------------------------------------------------------------- RFC 7692 section 7.2.3

HELLO = bytes.fromhex("f248cdc9c90700")

RECEIVE = [
    pytest.param([frame(TEXT, HELLO, rsv=0b100)], [TextMessage("Hello")], id="7.2.3.1-hello"),
    pytest.param(
        [frame(TEXT, HELLO, rsv=0b100), frame(TEXT, bytes.fromhex("f200110000"), rsv=0b100)],
        [TextMessage("Hello"), TextMessage("Hello")],
        id="7.2.3.2-sharing-the-window",
    ),
    pytest.param(
        [frame(TEXT, bytes.fromhex("0005 00fa ff48 656c 6c6f 00"), rsv=0b100)],
        [TextMessage("Hello")],
        id="7.2.3.3-stored-block",
    ),
    pytest.param(
        [frame(TEXT, bytes.fromhex("f348cdc9c9070000"), rsv=0b100)] * 2,
        [TextMessage("Hello")] * 2,
        id="7.2.3.4-bfinal-set-then-a-new-stream",
    ),
    pytest.param(
        [frame(TEXT, bytes.fromhex("f24805000000ffffcac9c90700"), rsv=0b100)],
        [TextMessage("Hello")],
        id="7.2.3.5-two-blocks",
    ),
    pytest.param(
        [frame(TEXT, HELLO[:3], rsv=0b100, fin=False), frame(CONT, HELLO[3:])],
        [TextMessage("Hello")],
        id="7.2.1-fragmented-compressed-message",
    ),
    pytest.param(
        [frame(BINARY, b"\x00", rsv=0b100)], [BytesMessage(b"")], id="7.2.3.6-empty-message"
    ),
    pytest.param(
        [frame(TEXT, b"plain"), frame(TEXT, HELLO, rsv=0b100)],
        [TextMessage("plain"), TextMessage("Hello")],
        id="6-uncompressed-messages-may-be-mixed-in",
    ),
    pytest.param(
        [frame(TEXT, HELLO[:3], rsv=0b100, fin=False), frame(PING, b"p"), frame(CONT, HELLO[3:])],
        [Ping(b"p"), TextMessage("Hello")],
        id="6-control-frame-inside-a-compressed-message",
    ),
]


@pytest.mark.parametrize(("frames", "expect"), RECEIVE)
def test_receive_compressed(frames, expect):
    raw = b"".join(frames)
    whole = run([raw], deflate=DEFAULT)
    assert whole == run([raw[i : i + 1] for i in range(len(raw))], deflate=DEFAULT)
    events, failure, _ = whole
    assert failure is None
    assert events == expect


FAILS = [
    pytest.param([frame(CONT, HELLO, rsv=0b100)], 1002, id="rsv1-on-continuation-without-message"),
    pytest.param(
        [frame(TEXT, HELLO[:3], rsv=0b100, fin=False), frame(CONT, HELLO[3:], rsv=0b100)],
        1002,
        id="rsv1-on-continuation-frame",
    ),
    pytest.param([frame(PING, b"", rsv=0b100)], 1002, id="rsv1-on-control-frame"),
    pytest.param([frame(TEXT, HELLO, rsv=0b110)], 1002, id="rsv2-with-deflate"),
    pytest.param([frame(TEXT, b"\xff\xff\xff\xff", rsv=0b100)], 1007, id="corrupt-deflate-data"),
    pytest.param(
        [frame(TEXT, deflate(b"\xff\xfe"), rsv=0b100)], 1007, id="inflates-to-invalid-utf-8"
    ),
]


@pytest.mark.parametrize(("frames", "code"), FAILS)
def test_compressed_protocol_errors(frames, code):
    _, failure, _ = run([b"".join(frames)], deflate=DEFAULT)
    assert failure == Failed(code)


def test_rsv1_without_negotiation_is_1002():
    _, failure, _ = run([frame(TEXT, HELLO, rsv=0b100)])
    assert failure == Failed(1002)


# ---------------------------------------------------------------- bounded inflation


def test_zip_bomb_is_refused_with_bounded_memory():
    bomb = deflate(b"\x00" * (64 << 20))  # 64 MiB of zeros in about 64 KiB
    assert len(bomb) < 100_000
    raw = frame(BINARY, bomb, rsv=0b100, mask=b"\x00\x00\x00\x00")
    tracemalloc.start()
    try:
        _, failure, _ = run([raw], deflate=DEFAULT, max_message_size=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert failure == Failed(1009)
    assert peak < 8 << 20  # the frame and at most one limit's worth of output


def test_zip_bomb_over_fragments_is_refused():
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    frames = [frame(BINARY, c.compress(b"\x00" * 400_000), rsv=0b100, fin=False)]
    frames += [frame(CONT, c.compress(b"\x00" * 400_000), fin=False) for _ in range(5)]
    frames.append(frame(CONT, c.flush(zlib.Z_SYNC_FLUSH)[:-4]))
    _, failure, _ = run([b"".join(frames)], deflate=DEFAULT, max_message_size=1 << 20)
    assert failure == Failed(1009)


def test_compressed_message_of_exactly_the_limit():
    data = os.urandom(1000)
    events, failure, _ = run(
        [frame(BINARY, deflate(data), rsv=0b100)], deflate=DEFAULT, max_message_size=1000
    )
    assert failure is None and events == [BytesMessage(data)]
    _, failure, _ = run(
        [frame(BINARY, deflate(data + b"!"), rsv=0b100)], deflate=DEFAULT, max_message_size=1000
    )
    assert failure == Failed(1009)


def test_compressed_frame_far_over_the_limit_fails_from_its_header():
    head = b"\xc2\xff" + (1 << 40).to_bytes(8, "big") + b"mask"
    _, failure, _ = run([head], deflate=DEFAULT, max_message_size=1 << 20)
    assert failure == Failed(1009)


# ---------------------------------------------------------------- context takeover


def inflater(wbits: int = 15):
    d = zlib.decompressobj(-wbits)
    return lambda payload: d.decompress(payload + b"\x00\x00\xff\xff")


def test_sent_hello_matches_the_rfc():
    # RFC 7692 section 7.2.3.1: "Hello" compressed, RSV1 set.
    assert WSConnection(deflate=DEFAULT).send_text("Hello") == b"\xc1\x07" + HELLO


def test_sending_with_context_takeover():
    ws = WSConnection(deflate=DEFAULT)
    message = b"the same sentence, over and over. " * 20
    first, second = ws.send_bytes(message), ws.send_bytes(message)
    assert len(second) < len(first)  # the second refers back into the first
    inflate = inflater()
    for raw in (first, second):
        [(b0, opcode, payload)] = parse_server_frames(raw)
        assert b0 == 0xC2 and opcode == BINARY
        assert inflate(payload) == message


def test_sending_without_server_context_takeover():
    ws = WSConnection(deflate=P(server_no_context_takeover=True))
    message = b"the same sentence, over and over. " * 20
    first, second = ws.send_bytes(message), ws.send_bytes(message)
    assert first == second
    [(_, _, payload)] = parse_server_frames(second)
    assert inflater()(payload) == message  # stands alone


def test_sending_within_the_negotiated_window():
    # A repeat 1 KiB back: a 512-byte window (9 bits) cannot reach it.
    chunk = os.urandom(1024)
    message = chunk + chunk
    [(_, _, payload)] = parse_server_frames(
        WSConnection(deflate=P(server_max_window_bits=9)).send_bytes(message)
    )
    assert inflater(9)(payload) == message


def test_fragmented_compressed_send():
    ws = WSConnection(deflate=DEFAULT)
    raw = ws.send_text("Hel", fin=False) + ws.send_text("lo", fin=True)
    frames = parse_server_frames(raw)
    assert [(b0, op) for b0, op, _ in frames] == [(0x41, TEXT), (0x80, CONT)]
    assert inflater()(b"".join(p for _, _, p in frames)) == b"Hello"


def test_receiving_with_client_context_takeover():
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    messages = [b"repeat after me " * 10, b"repeat after me " * 10 + b"!"]
    raw = b""
    for m in messages:
        raw += frame(BINARY, (c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH))[:-4], rsv=0b100)
    events, failure, _ = run([raw], deflate=DEFAULT)
    assert failure is None
    assert events == [BytesMessage(m) for m in messages]


def test_receiving_without_client_context_takeover_resets_the_inflater():
    ws = WSConnection(deflate=P(client_no_context_takeover=True))
    ws.receive_data(frame(TEXT, HELLO, rsv=0b100))
    assert ws.next_event() == TextMessage("Hello")
    assert ws._decompressor is None  # no window kept between messages
    ws.receive_data(frame(TEXT, HELLO, rsv=0b100))
    assert ws.next_event() == TextMessage("Hello")

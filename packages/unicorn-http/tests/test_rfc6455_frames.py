"""Frames as the server receives them (RFC 6455 section 5): a table of
client byte streams and what each must yield, whole and one byte at a time;
then what the server sends, and the limits."""

from __future__ import annotations

import os

import pytest
from ws_harness import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    Failed,
    close_frame,
    drain,
    frame,
    parse_server_frames,
    run,
)

from unicorn_http import (
    NEED_DATA,
    BytesMessage,
    CloseReceived,
    LocalProtocolError,
    Ping,
    Pong,
    TextMessage,
    WebSocketProtocolError,
    WSConnection,
)


def case(id: str, raw: bytes, expect: list | Failed, **settings):
    return pytest.param(raw, expect, settings, id=id)


SNOWMAN = "☃".encode()  # e2 98 83

CASES = [
    # ------------------------------------------------------------ valid
    case(
        "rfc-5.7-single-frame-masked-text",
        b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
        [TextMessage("Hello")],
    ),
    case(
        "rfc-5.7-fragmented-text",
        frame(TEXT, b"Hel", fin=False) + frame(CONT, b"lo"),
        [TextMessage("Hello")],
    ),
    case("empty-text", frame(TEXT), [TextMessage("")]),
    case("empty-binary", frame(BINARY), [BytesMessage(b"")]),
    case("binary", frame(BINARY, b"\x00\xff" * 10), [BytesMessage(b"\x00\xff" * 10)]),
    case("length-125", frame(BINARY, b"a" * 125), [BytesMessage(b"a" * 125)]),
    case("length-126-16-bit", frame(BINARY, b"a" * 126), [BytesMessage(b"a" * 126)]),
    case("length-65535-16-bit", frame(BINARY, b"a" * 65535), [BytesMessage(b"a" * 65535)]),
    case("length-65536-64-bit", frame(BINARY, b"b" * 65536), [BytesMessage(b"b" * 65536)]),
    case(
        "three-fragments-with-empty-middle",
        frame(BINARY, b"a", fin=False) + frame(CONT, fin=False) + frame(CONT, b"c"),
        [BytesMessage(b"ac")],
    ),
    case(
        "ping-between-fragments",
        frame(TEXT, b"a", fin=False) + frame(PING, b"p") + frame(CONT, b"b"),
        [Ping(b"p"), TextMessage("ab")],
    ),
    case(
        "utf-8-split-across-fragments",
        frame(TEXT, SNOWMAN[:1], fin=False) + frame(CONT, SNOWMAN[1:]),
        [TextMessage("☃")],
    ),
    case("ping-125-bytes", frame(PING, b"x" * 125), [Ping(b"x" * 125)]),
    case("pong-unsolicited", frame(PONG, b"hb"), [Pong(b"hb")]),
    case("close-empty-is-1005", close_frame(), [CloseReceived(1005)]),
    case(
        "close-1000-with-reason",
        close_frame(1000, "bye ☃".encode()),
        [CloseReceived(1000, "bye ☃")],
    ),
    case("close-1012-service-restart", close_frame(1012), [CloseReceived(1012)]),
    case("close-1014-bad-gateway", close_frame(1014), [CloseReceived(1014)]),
    case("close-3000", close_frame(3000), [CloseReceived(3000)]),
    case("close-4999", close_frame(4999), [CloseReceived(4999)]),
    case(
        "frames-after-close-are-discarded",
        close_frame(1000) + frame(TEXT, b"late") + b"\xff\xff garbage",
        [CloseReceived(1000)],
    ),
    case(
        "message-of-exactly-the-limit",
        frame(BINARY, b"a" * 50, fin=False) + frame(CONT, b"a" * 50),
        [BytesMessage(b"a" * 100)],
        max_message_size=100,
    ),
    # ------------------------------------------------------------ 1002 protocol error
    case("unmasked-client-frame", frame(TEXT, b"hi", mask=None), Failed(1002)),
    case("unmasked-client-control-frame", frame(PING, mask=None), Failed(1002)),
    case("fragmented-control-frame-ping", frame(PING, b"a", fin=False), Failed(1002)),
    case("fragmented-control-frame-close", close_frame(1000, fin=False), Failed(1002)),
    case("oversized-control-frame-126", frame(PING, b"x" * 126), Failed(1002)),
    case("oversized-control-frame-close", close_frame(1000, b"r" * 124), Failed(1002)),
    case("reserved-bit-rsv1-without-deflate", frame(TEXT, b"a", rsv=0b100), Failed(1002)),
    case("reserved-bit-rsv2", frame(TEXT, b"a", rsv=0b010), Failed(1002)),
    case("reserved-bit-rsv3", frame(BINARY, b"a", rsv=0b001), Failed(1002)),
    case("reserved-bits-on-control-frame", frame(PING, rsv=0b100), Failed(1002)),
    case("reserved-opcode-3", frame(0x3, b"a"), Failed(1002)),
    case("reserved-opcode-7", frame(0x7), Failed(1002)),
    case("reserved-control-opcode-b", frame(0xB), Failed(1002)),
    case("reserved-control-opcode-f", frame(0xF), Failed(1002)),
    case("continuation-without-start", frame(CONT, b"a"), Failed(1002)),
    case(
        "continuation-after-finished-message",
        frame(TEXT, b"a") + frame(CONT, b"b"),
        Failed(1002),
    ),
    case(
        "new-message-during-a-fragmented-one",
        frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"),
        Failed(1002),
    ),
    case(
        "binary-during-a-fragmented-text",
        frame(TEXT, b"a", fin=False) + frame(BINARY, b"b"),
        Failed(1002),
    ),
    case("16-bit-length-not-minimal", frame(BINARY, b"a" * 10, length_form=126), Failed(1002)),
    case("64-bit-length-not-minimal", frame(BINARY, b"a" * 200, length_form=127), Failed(1002)),
    case(
        "64-bit-length-top-bit-set", b"\x82\xff" + b"\x80" + b"\x00" * 7 + b"\x00" * 4, Failed(1002)
    ),
    case("close-with-1-byte-body", frame(CLOSE, b"\x03"), Failed(1002)),
    *[
        case(f"bad-close-code-{code}", close_frame(code), Failed(1002))
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)
    ],
    # ------------------------------------------------------------ 1007 invalid payload
    case("invalid-utf-8-text", frame(TEXT, b"\xff"), Failed(1007)),
    case("invalid-utf-8-surrogate", frame(TEXT, b"\xed\xa0\x80"), Failed(1007)),
    case("invalid-utf-8-overlong", frame(TEXT, b"\xc0\xaf"), Failed(1007)),
    case("truncated-utf-8-at-message-end", frame(TEXT, SNOWMAN[:2]), Failed(1007)),
    case(
        "truncated-utf-8-at-fragmented-message-end",
        frame(TEXT, b"a", fin=False) + frame(CONT, SNOWMAN[:2]),
        Failed(1007),
    ),
    case(
        "invalid-utf-8-fails-on-the-first-fragment",
        frame(TEXT, b"\xff", fin=False),  # no FIN: the message is not over, it fails anyway
        Failed(1007),
    ),
    case("invalid-utf-8-close-reason", close_frame(1000, b"\xff"), Failed(1007)),
    # ------------------------------------------------------------ 1009 message too big
    case(
        "message-too-big-single-frame",
        frame(BINARY, b"a" * 101),
        Failed(1009),
        max_message_size=100,
    ),
    case(
        "message-too-big-across-fragments",
        frame(BINARY, b"a" * 60, fin=False) + frame(CONT, b"a" * 41),
        Failed(1009),
        max_message_size=100,
    ),
    case(
        "message-too-big-from-the-header-alone",
        b"\x82\xff" + (1 << 40).to_bytes(8, "big") + b"mask",
        Failed(1009),
    ),
]


@pytest.mark.parametrize(("raw", "expect", "settings"), CASES)
def test_frames(raw, expect, settings):
    whole = run([raw], **settings)
    one_by_one = run([raw[i : i + 1] for i in range(len(raw))], **settings)
    assert whole == one_by_one
    events, failure, sent = whole
    if isinstance(expect, Failed):
        assert failure == expect
        # RFC 6455 section 7.1.7: the Close we send carries the code.
        [(_, opcode, payload)] = parse_server_frames(sent)
        assert opcode == CLOSE and int.from_bytes(payload[:2], "big") == expect.code
    else:
        assert failure is None
        assert events == expect


def test_error_is_sticky_and_later_bytes_are_ignored():
    ws = WSConnection()
    ws.receive_data(frame(TEXT, b"a", mask=None))
    with pytest.raises(WebSocketProtocolError) as first:
        ws.next_event()
    ws.receive_data(frame(TEXT, b"fine"))
    with pytest.raises(WebSocketProtocolError) as again:
        ws.next_event()
    assert again.value is first.value
    assert ws.state == "CLOSED"
    with pytest.raises(LocalProtocolError):
        ws.send_text("no")


def test_error_after_we_sent_close_sends_no_second_close():
    ws = WSConnection()
    ws.send_close(1001)
    ws.receive_data(frame(TEXT, b"\xff"))
    with pytest.raises(WebSocketProtocolError):
        ws.next_event()
    assert ws.data_to_send() == b""


# ---------------------------------------------------------------- ping / pong


def test_each_ping_is_answered_with_its_payload():
    events, failure, sent = run([frame(PING, b"one") + frame(PING) + frame(PING, b"x" * 125)])
    assert failure is None
    assert events == [Ping(b"one"), Ping(b""), Ping(b"x" * 125)]
    assert parse_server_frames(sent) == [
        (0x8A, PONG, b"one"),
        (0x8A, PONG, b""),
        (0x8A, PONG, b"x" * 125),
    ]


def test_no_pong_after_we_sent_close():
    ws = WSConnection()
    ws.send_close()
    ws.receive_data(frame(PING, b"late"))
    assert drain(ws) == [Ping(b"late")]
    assert ws.data_to_send() == b""


# ---------------------------------------------------------------- closing handshake


def test_peer_initiated_close_is_echoed_and_ends_the_connection():
    ws = WSConnection()
    ws.receive_data(close_frame(1001, b"going"))
    assert ws.next_event() == CloseReceived(1001, "going")
    assert ws.state == "CLOSED"
    # RFC 6455 section 5.5.1: the reply typically echoes the code.
    assert parse_server_frames(ws.data_to_send()) == [(0x88, CLOSE, b"\x03\xe9")]
    assert type(ws.next_event()).__name__ == "ConnectionClosed"
    with pytest.raises(LocalProtocolError):
        ws.send_close()
    with pytest.raises(LocalProtocolError):
        ws.send_bytes(b"late")


def test_empty_close_is_answered_with_an_empty_close():
    ws = WSConnection()
    ws.receive_data(close_frame())
    assert ws.next_event() == CloseReceived(1005)
    assert ws.data_to_send() == b"\x88\x00"


def test_server_initiated_close():
    ws = WSConnection()
    assert ws.send_close(1000, "done") == b"\x88\x06\x03\xe8done"
    assert ws.state == "CLOSING"
    with pytest.raises(LocalProtocolError):
        ws.send_text("after close")
    with pytest.raises(LocalProtocolError):
        ws.send_ping()
    # The peer may still be sending: its messages are delivered until its Close.
    ws.receive_data(frame(TEXT, b"in flight") + close_frame(1000))
    assert ws.next_event() == TextMessage("in flight")
    assert ws.next_event() == CloseReceived(1000)
    assert ws.state == "CLOSED"
    assert ws.data_to_send() == b""  # our Close is already out


def test_eof_without_close_is_1006():
    events, failure, _ = run([frame(TEXT, b"a") + frame(TEXT, b"partial")[:4]], eof=True)
    assert failure is None
    assert events == [TextMessage("a"), CloseReceived(1006)]
    ws = WSConnection()
    ws.receive_data(b"")
    assert ws.next_event() == CloseReceived(1006)
    assert type(ws.next_event()).__name__ == "ConnectionClosed"
    assert ws.data_to_send() == b""


def test_eof_while_closing_is_1006():
    ws = WSConnection()
    ws.send_close()
    ws.receive_data(b"")
    assert ws.next_event() == CloseReceived(1006)
    assert ws.state == "CLOSED"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (999, ""),
        (1004, ""),
        (1005, ""),
        (1006, ""),
        (1015, ""),
        (2000, ""),
        (5000, ""),
        (None, "x"),
    ],
)
def test_send_close_refuses_codes_not_for_the_wire(code, reason):
    with pytest.raises(LocalProtocolError):
        WSConnection().send_close(code, reason)


def test_send_close_reason_limit():
    assert len(WSConnection().send_close(1000, "r" * 123)) == 2 + 125
    with pytest.raises(LocalProtocolError):
        WSConnection().send_close(1000, "r" * 124)
    assert WSConnection().send_close(None) == b"\x88\x00"
    assert WSConnection().send_close(1012) == b"\x88\x02\x03\xf4"


# ---------------------------------------------------------------- sending


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_send_bytes_framing(size):
    data = os.urandom(size)
    out = WSConnection().send_bytes(data)
    assert parse_server_frames(out) == [(0x82, BINARY, data)]
    head = {0: 2, 1: 2, 125: 2, 126: 4, 65535: 4}.get(size, 10)
    assert len(out) == head + size  # the shortest length form (RFC 6455 section 5.2)


def test_send_text_and_control_frames():
    ws = WSConnection()
    assert ws.send_text("☃") == b"\x81\x03" + SNOWMAN
    assert ws.send_ping(b"p") == b"\x89\x01p"
    assert ws.send_pong(b"") == b"\x8a\x00"
    with pytest.raises(LocalProtocolError):
        ws.send_ping(b"x" * 126)


def test_send_fragmented():
    ws = WSConnection()
    out = ws.send_text("Hel", fin=False) + ws.send_ping() + ws.send_text("lo")
    assert parse_server_frames(out) == [
        (0x01, TEXT, b"Hel"),
        (0x89, PING, b""),
        (0x80, CONT, b"lo"),
    ]
    with pytest.raises(LocalProtocolError):
        ws.send_bytes(b"a", fin=False) + ws.send_text("b")


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize("size", [1, 3, 4, 5, 127, 1000, 16384, 16385, 65536 + 7, 200_000])
def test_unmasking_any_length(size):
    data = os.urandom(size)
    mask = os.urandom(4)
    events, failure, _ = run([frame(BINARY, data, mask=mask)], max_message_size=0)
    assert failure is None
    assert events == [BytesMessage(data)]


def test_need_data_until_the_frame_is_whole():
    raw = frame(BINARY, b"x" * 300)
    ws = WSConnection()
    for i in range(len(raw) - 1):
        ws.receive_data(raw[i : i + 1])
        assert ws.next_event() is NEED_DATA
    ws.receive_data(raw[-1:])
    assert ws.next_event() == BytesMessage(b"x" * 300)
    assert ws.next_event() is NEED_DATA

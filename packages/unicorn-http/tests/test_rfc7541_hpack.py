"""RFC 7541 (HPACK) as the server must enforce it: every decoding failure is a
connection error of type COMPRESSION_ERROR (RFC 9113 section 4.3), the
dynamic table persists across header blocks, and the decoded size of a header
list is bounded while it is decoded (section 4.1's size, against HPACK bombs).
"""

from __future__ import annotations

import pytest
from h2_harness import GET, Peer, of, raw_frame
from hpack.hpack import encode_integer

COMPRESSION_ERROR = 9
ENHANCE_YOUR_CALM = 11
HEADERS = 1


def _size_update(size: int) -> bytes:
    # RFC 7541 section 6.3: 001xxxxx with a 5-bit prefix integer
    encoded = bytearray(encode_integer(size, 5))
    encoded[0] |= 0x20
    return bytes(encoded)


BAD_BLOCKS = [
    ("rfc7541-2.3.3-1-index-past-both-tables", lambda p: b"\xbe"),
    ("rfc7541-6.1-1-index-zero", lambda p: b"\x80"),
    (
        "rfc7541-4.2-1-table-size-update-over-the-setting",
        lambda p: _size_update(5000) + p.block(GET),
    ),
    ("rfc7541-4.2-2-table-size-update-after-a-field", lambda p: p.block(GET) + _size_update(100)),
    ("rfc7541-5.2-1-huffman-eos", lambda p: b"\x82\x86\x84\x41\x84\xff\xff\xff\xff"),
    ("rfc7541-5.1-1-integer-too-long", lambda p: b"\xff" + b"\xff" * 12 + b"\x01"),
    ("rfc7541-5.2-2-string-past-the-block", lambda p: b"\x40\x0aabc"),
    ("rfc7541-6.2.1-1-literal-name-index-past-tables", lambda p: b"\x7f\x50\x01a"),
]


@pytest.mark.parametrize(("build",), [pytest.param(b, id=i) for i, b in BAD_BLOCKS])
def test_bad_header_block_is_a_compression_error(build):
    peer = Peer()
    exc = peer.send_error(raw_frame(HEADERS, 0x5, 1, build(peer)))
    assert exc.error_code == COMPRESSION_ERROR
    assert peer.goaway().error_code == COMPRESSION_ERROR
    assert "4.3" in exc.reason


def test_rfc7541_2_3_2_dynamic_table_persists_across_requests():
    peer = Peer()
    extra = [(b"x-session", b"a fairly long value that gets indexed")]
    first = peer.block([*GET, *extra])
    second = peer.block([*GET, *extra])
    assert len(second) < len(first)  # the second refers to the table
    events = peer.send(raw_frame(HEADERS, 0x5, 1, first), raw_frame(HEADERS, 0x5, 3, second))
    assert of(events, 1)[0].headers == of(events, 3)[0].headers
    assert extra[0] in of(events, 3)[0].headers


def test_rfc7541_4_2_table_size_update_within_the_setting_accepted():
    peer = Peer()
    events = peer.send(
        raw_frame(HEADERS, 0x5, 1, _size_update(0) + Peer(handshake=False).block(GET))
    )
    assert of(events, 1)[0].method == b"GET"


def test_hpack_bomb_bounded_by_the_header_list_limit():
    # one 4 KiB field enters the dynamic table; the next block refers to it
    # 40 times in 40 bytes: 160 KiB decoded from a 40-byte block
    peer = Peer(http2_max_header_list_size=65536)
    big = (b"x-bomb", b"b" * 4000)
    events = peer.send(peer.request(1, extra=[big]))
    assert big in of(events, 1)[0].headers
    index = b"\xbe"  # dynamic table entry 62: the field just added
    bomb = peer.block(GET) + index * 40
    assert len(bomb) < 100
    exc = peer.send_error(raw_frame(HEADERS, 0x5, 3, bomb))
    assert exc.error_code == ENHANCE_YOUR_CALM and exc.status == 431
    assert "http2_max_header_list_size" in exc.reason


def test_header_list_limit_is_the_setting():
    peer = Peer(http2_max_header_list_size=2000)
    assert peer.server_settings[6] == 2000
    events = peer.send(peer.request(1, extra=[(b"x-ok", b"o" * 1500)]))
    assert of(events, 1)[0].method == b"GET"
    exc = peer.send_error(peer.request(3, extra=[(b"x-big", b"b" * 2000)]))
    assert exc.error_code == ENHANCE_YOUR_CALM

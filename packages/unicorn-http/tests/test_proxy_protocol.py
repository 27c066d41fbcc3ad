"""The PROXY protocol header, versions 1 and 2 (HAProxy's proxy-protocol spec):
what each says, that a prefix asks for more bytes, and that anything else is
refused with 400 and nothing but RemoteProtocolError."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unicorn_http import RemoteProtocolError
from unicorn_http.proxy_protocol import PROXY_V2_SIGNATURE, ProxyInfo, parse_proxy_header

REST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def v2(command: int, family: int, body: bytes) -> bytes:
    return (
        PROXY_V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body
    )


V2_TCP4 = v2(
    1,
    0x11,
    ipaddress.IPv4Address("203.0.113.7").packed
    + ipaddress.IPv4Address("192.0.2.1").packed
    + struct.pack("!HH", 56324, 443),
)
V2_TCP6 = v2(
    1,
    0x21,
    ipaddress.IPv6Address("2001:db8::7").packed
    + ipaddress.IPv6Address("2001:db8::1").packed
    + struct.pack("!HH", 1234, 80),
)
V2_TCP4_TLV = v2(1, 0x11, V2_TCP4[16:] + b"\x04\x00\x02hi")  # a TLV after the addresses
V2_LOCAL = v2(0, 0x00, b"")
V2_UNIX = v2(1, 0x31, b"/run/client.sock".ljust(108, b"\0") + b"/run/server.sock".ljust(108, b"\0"))

ACCEPTED = [
    pytest.param(
        b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n",
        ProxyInfo(1, False, "TCP4", "203.0.113.7", 56324, "192.0.2.1", 443),
        id="v1-tcp4",
    ),
    pytest.param(
        b"PROXY TCP6 2001:db8::7 2001:db8::1 1234 80\r\n",
        ProxyInfo(1, False, "TCP6", "2001:db8::7", 1234, "2001:db8::1", 80),
        id="v1-tcp6",
    ),
    pytest.param(b"PROXY UNKNOWN\r\n", ProxyInfo(1, False, "UNKNOWN"), id="v1-unknown"),
    pytest.param(
        b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
        ProxyInfo(1, False, "UNKNOWN"),
        id="v1-unknown-rest",
    ),
    pytest.param(
        V2_TCP4, ProxyInfo(2, False, "TCP4", "203.0.113.7", 56324, "192.0.2.1", 443), id="v2-tcp4"
    ),
    pytest.param(
        V2_TCP6, ProxyInfo(2, False, "TCP6", "2001:db8::7", 1234, "2001:db8::1", 80), id="v2-tcp6"
    ),
    pytest.param(
        V2_TCP4_TLV,
        ProxyInfo(2, False, "TCP4", "203.0.113.7", 56324, "192.0.2.1", 443),
        id="v2-tlv-skipped",
    ),
    pytest.param(V2_LOCAL, ProxyInfo(2, True, "UNSPEC"), id="v2-local-health-check"),
    pytest.param(
        V2_UNIX,
        ProxyInfo(2, False, "UNIX", "/run/client.sock", None, "/run/server.sock", None),
        id="v2-unix",
    ),
]


@pytest.mark.parametrize(("header", "info"), ACCEPTED)
def test_header_is_read_and_the_rest_left(header, info):
    assert parse_proxy_header(header + REST) == (info, len(header))


@pytest.mark.parametrize(("header", "info"), ACCEPTED)
def test_every_prefix_asks_for_more(header, info):
    for cut in range(len(header)):
        assert parse_proxy_header(header[:cut]) is None, cut


REFUSED = [
    pytest.param(REST, id="plain-http"),
    pytest.param(b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", id="v1-unknown-family"),
    pytest.param(b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", id="v1-missing-port"),
    pytest.param(b"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n", id="v1-bad-address"),
    pytest.param(b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", id="v1-v6-address-for-tcp4"),
    pytest.param(b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", id="v1-signed-port"),
    pytest.param(b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", id="v1-leading-zero-port"),
    pytest.param(b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", id="v1-port-range"),
    pytest.param(b"PROXY " + b"x" * 120, id="v1-longer-than-107"),
    pytest.param(b"PROXYTCP4", id="v1-no-space"),
    pytest.param(PROXY_V2_SIGNATURE[:-1] + b"X" + b"\x21\x11\x00\x00", id="v2-bad-signature"),
    pytest.param(PROXY_V2_SIGNATURE + b"\x11\x11\x00\x00", id="v2-version-1-byte"),
    pytest.param(PROXY_V2_SIGNATURE + b"\x22\x11\x00\x00", id="v2-unknown-command"),
    pytest.param(v2(1, 0x11, b"\x00" * 4), id="v2-short-addresses"),
    pytest.param(v2(1, 0x99, b"\x00" * 12), id="v2-unknown-family"),
    pytest.param(PROXY_V2_SIGNATURE + b"\x21\x11\xff\xff", id="v2-oversized-length"),
]


@pytest.mark.parametrize("data", REFUSED)
def test_refused_with_400(data):
    with pytest.raises(RemoteProtocolError) as info:
        parse_proxy_header(data)
    assert info.value.status == 400
    assert "PROXY" in info.value.reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_raises_only_the_protocol_error(data):
    try:
        result = parse_proxy_header(data)
    except RemoteProtocolError:
        return
    if result is not None:
        info, used = result
        assert isinstance(info, ProxyInfo)
        assert 0 < used <= len(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([p.values[0] for p in ACCEPTED]), st.binary(max_size=8), st.data())
def test_mutated_headers_raise_only_the_protocol_error(header, noise, data):
    at = data.draw(st.integers(0, len(header)))
    mutated = header[:at] + noise + header[at + len(noise) :]
    try:
        parse_proxy_header(mutated)
    except RemoteProtocolError:
        pass

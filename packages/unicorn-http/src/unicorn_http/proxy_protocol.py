"""The PROXY protocol header (HAProxy's spec, versions 1 and 2), sans-IO.

A load balancer that speaks it sends one header before the first byte of the
client's own stream, naming the client's address. ``parse_proxy_header``
takes the bytes received so far and says one of three things: more bytes are
needed (``None``), here is what the header says and how many bytes it took
(``(ProxyInfo, length)``), or the bytes are not a PROXY header
(``RemoteProtocolError``, status 400). The caller feeds the rest to
``H1Connection``.

Version 1 is one text line of at most 107 bytes::

    PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\\r\\n
    PROXY UNKNOWN\\r\\n

Version 2 is binary: a 12-byte signature, a version/command byte, a
family/transport byte, a 16-bit length, the addresses, then TLVs (skipped).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .errors import RemoteProtocolError

__all__ = ["PROXY_V2_SIGNATURE", "ProxyInfo", "parse_proxy_header"]

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V1_MAX = 107  # the spec's bound on a v1 line, CRLF included
_V2_MAX_BODY = 4096  # addresses plus TLVs; the spec allows 65535, none needs more

# Version 2 family/transport byte -> (family name, address block length)
_V2_FAMILIES = {
    0x00: ("UNSPEC", 0),
    0x11: ("TCP4", 12),
    0x12: ("UDP4", 12),
    0x21: ("TCP6", 36),
    0x22: ("UDP6", 36),
    0x31: ("UNIX", 216),
    0x32: ("UNIX", 216),
}


@dataclass(slots=True)
class ProxyInfo:
    """What a PROXY header said. ``local`` headers (health checks from the balancer
    itself) and ``UNKNOWN`` ones carry no addresses: keep the socket's own."""

    version: int
    local: bool
    family: str
    src_addr: str | None = None
    src_port: int | None = None
    dst_addr: str | None = None
    dst_port: int | None = None


def _refuse(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"invalid PROXY protocol header: {reason}", 400)


def parse_proxy_header(
    data: bytes, versions: tuple[int, ...] = (1, 2)
) -> tuple[ProxyInfo, int] | None:
    """Parse the PROXY header at the start of ``data``: None when more bytes are needed.

    ``versions`` are the ones accepted (``proxy_protocol`` ``v1``, ``v2`` or ``auto``);
    a header of another version is refused."""
    if data[:1] == b"P":
        if 1 not in versions:
            raise _refuse("version 1 (text) where proxy_protocol is v2")
        return _parse_v1(data)
    if data[:1] == b"\r":
        if 2 not in versions:
            raise _refuse("version 2 (binary) where proxy_protocol is v1")
        return _parse_v2(data)
    if not data:
        return None
    raise _refuse("the connection does not start with one")


def _parse_v1(data: bytes) -> tuple[ProxyInfo, int] | None:
    end = data.find(b"\r\n", 0, _V1_MAX)
    if end < 0:
        if len(data) >= _V1_MAX or not b"PROXY "[: len(data)] == data[:6]:
            raise _refuse("a version 1 line must be 'PROXY ...' within 107 bytes")
        return None
    parts = data[:end].split(b" ")
    if parts[0] != b"PROXY" or len(parts) < 2:
        raise _refuse("a version 1 line must start with 'PROXY '")
    family = parts[1].decode("ascii", "replace")
    if family == "UNKNOWN":
        return ProxyInfo(1, False, family), end + 2
    if family not in ("TCP4", "TCP6") or len(parts) != 6:
        raise _refuse("expected PROXY TCP4|TCP6 SRC DST SRCPORT DSTPORT")
    try:
        kind = ipaddress.IPv4Address if family == "TCP4" else ipaddress.IPv6Address
        src = str(kind(parts[2].decode("ascii")))
        dst = str(kind(parts[3].decode("ascii")))
        ports = [_port(p) for p in parts[4:6]]
    except (ValueError, UnicodeDecodeError):
        raise _refuse(f"bad address or port for {family}") from None
    return ProxyInfo(1, False, family, src, ports[0], dst, ports[1]), end + 2


def _port(text: bytes) -> int:
    # Digits only, no sign or leading zeros: int() would take "+80" and "080".
    if not text.isdigit() or (len(text) > 1 and text[:1] == b"0") or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def _parse_v2(data: bytes) -> tuple[ProxyInfo, int] | None:
    if len(data) < 16:
        if not PROXY_V2_SIGNATURE.startswith(data[:12]):
            raise _refuse("bad version 2 signature")
        return None
    if data[:12] != PROXY_V2_SIGNATURE:
        raise _refuse("bad version 2 signature")
    ver_cmd, fam = data[12], data[13]
    length = int.from_bytes(data[14:16], "big")
    if ver_cmd >> 4 != 2:
        raise _refuse(f"version {ver_cmd >> 4} in a version 2 header")
    command = ver_cmd & 0x0F
    if command > 1:
        raise _refuse(f"unknown command {command}")
    if length > _V2_MAX_BODY:
        raise _refuse(f"{length} bytes of addresses and TLVs is more than {_V2_MAX_BODY}")
    total = 16 + length
    if len(data) < total:
        return None
    if command == 0:  # LOCAL: the balancer's own connection
        return ProxyInfo(2, True, "UNSPEC"), total
    try:
        family, needed = _V2_FAMILIES[fam]
    except KeyError:
        raise _refuse(f"unknown address family byte {fam:#04x}") from None
    if length < needed:
        raise _refuse(f"{family} needs {needed} bytes of addresses, got {length}")
    body = data[16 : 16 + needed]
    if family in ("TCP4", "UDP4"):
        src, dst = str(ipaddress.IPv4Address(body[0:4])), str(ipaddress.IPv4Address(body[4:8]))
        ports = int.from_bytes(body[8:10], "big"), int.from_bytes(body[10:12], "big")
    elif family in ("TCP6", "UDP6"):
        src, dst = str(ipaddress.IPv6Address(body[0:16])), str(ipaddress.IPv6Address(body[16:32]))
        ports = int.from_bytes(body[32:34], "big"), int.from_bytes(body[34:36], "big")
    elif family == "UNIX":
        src = body[:108].split(b"\0", 1)[0].decode("utf-8", "replace")
        dst = body[108:216].split(b"\0", 1)[0].decode("utf-8", "replace")
        return ProxyInfo(2, False, family, src, None, dst, None), total
    else:
        return ProxyInfo(2, False, family), total
    return ProxyInfo(2, False, family, src, ports[0], dst, ports[1]), total

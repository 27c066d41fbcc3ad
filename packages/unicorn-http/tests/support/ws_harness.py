"""Build client frames byte by byte and drive a WSConnection, for the WebSocket tables.

``frame()`` writes an RFC 6455 section 5.2 frame the way a client must (masked)
or must not (unmasked, reserved bits, long length forms); it is written from
the RFC's diagram, independently of the code under test, so the two check
each other. ``run()`` feeds bytes whole or in given pieces and returns the
events up to NEED_DATA (or the close), or the protocol error.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from itertools import pairwise

from unicorn_http import (
    NEED_DATA,
    CloseReceived,
    ConnectionClosed,
    WebSocketProtocolError,
    WSConnection,
)

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MASK = b"\x37\xfa\x21\x3d"


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
    length_form: int | None = None,
) -> bytes:
    """One frame. ``rsv`` is the RSV1-3 bits as 0b100 (RSV1) .. 0b001 (RSV3);
    ``length_form`` forces 126 (16-bit) or 127 (64-bit) lengths for any size."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    form = length_form if length_form is not None else (n if n < 126 else 126 if n < 65536 else 127)
    masked = 0x80 if mask is not None else 0
    head = bytes((b0, masked | (form if form >= 126 else n)))
    if form == 126:
        head += n.to_bytes(2, "big")
    elif form == 127:
        head += n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_frame(code: int | None = None, reason: bytes = b"", **kw) -> bytes:
    return frame(CLOSE, b"" if code is None else code.to_bytes(2, "big") + reason, **kw)


def deflate(data: bytes, wbits: int = 15) -> bytes:
    """A message compressed as RFC 7692 section 7.2.1 says: sync flush, tail removed."""
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def parse_server_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """Split what the server wrote into (first byte, opcode, payload); server frames are unmasked."""
    out = []
    i = 0
    while i < len(data):
        b0, b1 = data[i], data[i + 1]
        assert not b1 & 0x80, "a server frame must not be masked (RFC 6455 section 5.1)"
        n = b1 & 0x7F
        i += 2
        if n == 126:
            n = int.from_bytes(data[i : i + 2], "big")
            i += 2
        elif n == 127:
            n = int.from_bytes(data[i : i + 8], "big")
            i += 8
        out.append((b0, b0 & 0x0F, data[i : i + n]))
        i += n
    return out


@dataclass
class Failed:
    """The connection failed with this close code."""

    code: int


def drain(ws: WSConnection, events: list | None = None) -> list:
    """Events until NEED_DATA or the end of the connection (ConnectionClosed not included),
    appended to ``events`` as they come so that they survive an error."""
    if events is None:
        events = []
    while True:
        event = ws.next_event()
        if event is NEED_DATA or type(event) is ConnectionClosed:
            return events
        events.append(event)
        if type(event) is CloseReceived:
            return events


def run(chunks: list[bytes], *, eof: bool = False, **kw) -> tuple[list, Failed | None, bytes]:
    """Feed ``chunks`` one at a time, draining after each: (events, failure, bytes sent on our own)."""
    ws = kw.pop("ws", None) or WSConnection(**kw)
    events: list = []
    try:
        for chunk in chunks:
            if not chunk:
                continue  # b"" would mean EOF
            ws.receive_data(chunk)
            drain(ws, events)
        if eof:
            ws.receive_data(b"")
            drain(ws, events)
    except WebSocketProtocolError as exc:
        return events, Failed(exc.code), ws.data_to_send()
    return events, None, ws.data_to_send()


def cut(raw: bytes, points: list[int]) -> list[bytes]:
    """``raw`` split at the given offsets (taken modulo its length)."""
    if not raw:
        return [raw]
    offsets = sorted({p % len(raw) for p in points} | {0, len(raw)})
    return [raw[a:b] for a, b in pairwise(offsets)]

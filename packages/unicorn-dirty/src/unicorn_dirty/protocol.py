"""Wire format of the dirty pool: frames, and the payload codec.

Theory of operation
-------------------
Every message on every dirty socket (client <-> arbiter, arbiter <-> worker) is
one frame::

    u32 length | u8 kind | u64 id | payload (length - 9 bytes)

all big-endian. `id` names the call the frame belongs to: the client picks it
on its connection, the arbiter picks its own when it forwards the call to a
worker, and rewrites only the 13-byte header on the way back. The payload of
results and chunks is never decoded by the arbiter.

A REQUEST payload starts with a small routing head the arbiter reads without
touching the rest: ``u16 app length | app (utf-8) | f64 timeout (0 = none)``,
followed by the codec encoding of ``(action, args, kwargs)``, which only the
worker decodes.

The codec is a tagged binary format for None, bool, int, float, str, bytes,
list, tuple and dict. Decoding builds only those types: it never imports,
calls or evaluates anything, so any peer's bytes are safe to decode, and
bytes travel as bytes (no base64). Every decoding failure is a `CodecError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .errors import CodecError, DirtyPayloadTooLargeError, DirtyProtocolError

# Frame kinds. Client -> arbiter (and arbiter -> worker for the first three).
REQUEST = 1
CANCEL = 2
CREDIT = 3
STASH = 4
STATUS = 5
# Replies, worker -> arbiter -> client.
RESULT = 10
CHUNK = 11
END = 12
ERROR = 13
# Worker -> arbiter only.
HEARTBEAT = 20
READY = 21

KINDS = frozenset(
    {REQUEST, CANCEL, CREDIT, STASH, STATUS, RESULT, CHUNK, END, ERROR, HEARTBEAT, READY}
)

HEADER = struct.Struct("!IBQ")
HEADER_SIZE = HEADER.size
DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024
# A streaming call may have this many chunks in flight before the producer waits
# for the consumer to hand back credit; consumers return it in batches.
STREAM_WINDOW = 32
CREDIT_BATCH = 8

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_I64 = struct.Struct("!q")
_F64 = struct.Struct("!d")
_ROUTE_TAIL = _F64.size


def frame(kind: int, ident: int, payload: bytes = b"") -> bytes:
    """One complete frame."""
    return HEADER.pack(HEADER_SIZE - 4 + len(payload), kind, ident) + payload


def frame_header(kind: int, ident: int, payload_len: int) -> bytes:
    return HEADER.pack(HEADER_SIZE - 4 + payload_len, kind, ident)


class FrameReader:
    """Sans-IO frame splitter: feed bytes, get ``(kind, id, payload)`` triples.

    Raises `DirtyPayloadTooLargeError` as soon as a header announces a frame
    over the limit (before buffering it) and `DirtyProtocolError` for a frame
    that cannot be valid; after either, the connection must be closed.

    With ``skip_oversized`` a frame over the limit is not an error: it comes
    out as ``(kind, id, None)`` with its size in `skipped`, and its payload is
    discarded as it arrives, so the peer can be answered for that frame alone.
    `push` / `next_frame` take frames one at a time, for a reader that must be
    able to stop in the middle of a batch (flow control).
    """

    __slots__ = ("_buf", "_pos", "_skip", "max_payload", "skip_oversized", "skipped")

    def __init__(
        self, max_payload: int = DEFAULT_MAX_PAYLOAD, skip_oversized: bool = False
    ) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._skip = 0
        self.max_payload = max_payload
        self.skip_oversized = skip_oversized
        self.skipped = 0

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        if self.skip_oversized or self._pos:
            self.push(data)
            out = []
            frame = self.next_frame()
            while frame is not None:
                out.append(frame)
                frame = self.next_frame()
            return out
        # the hot path of strict readers (clients, workers): one loop, one compaction
        buf = self._buf
        buf += data
        out = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            length, kind, ident = HEADER.unpack_from(buf, pos)
            size = length - (HEADER_SIZE - 4)
            if size < 0:
                raise DirtyProtocolError(f"frame length {length} is shorter than its header")
            if kind not in KINDS:
                raise DirtyProtocolError(f"unknown frame kind {kind}")
            if size > self.max_payload:
                raise DirtyPayloadTooLargeError(
                    f"frame of {size} bytes exceeds dirty_max_payload ({self.max_payload})"
                )
            stop = pos + HEADER_SIZE + size
            if stop > end:
                break
            out.append((kind, ident, bytes(buf[pos + HEADER_SIZE : stop])))
            pos = stop
        if pos:
            del buf[:pos]
        return out

    def push(self, data: bytes) -> None:
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            if n == len(data):
                return
            data = memoryview(data)[n:]
        self._buf += data

    def next_frame(self) -> tuple[int, int, bytes | None] | None:
        """The next complete frame, or None until more bytes are pushed."""
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if end - pos < HEADER_SIZE:
            if pos:
                del buf[:pos]
                self._pos = 0
            return None
        length, kind, ident = HEADER.unpack_from(buf, pos)
        size = length - (HEADER_SIZE - 4)
        if size < 0:
            raise DirtyProtocolError(f"frame length {length} is shorter than its header")
        if kind not in KINDS:
            raise DirtyProtocolError(f"unknown frame kind {kind}")
        if size > self.max_payload:
            if not self.skip_oversized:
                raise DirtyPayloadTooLargeError(
                    f"frame of {size} bytes exceeds dirty_max_payload ({self.max_payload})"
                )
            have = min(end - pos - HEADER_SIZE, size)
            self._pos = pos + HEADER_SIZE + have
            self._skip = size - have
            self.skipped = size
            return (kind, ident, None)
        stop = pos + HEADER_SIZE + size
        if stop > end:
            if pos:
                del buf[:pos]
                self._pos = 0
            return None
        self._pos = stop
        return (kind, ident, bytes(buf[pos + HEADER_SIZE : stop]))

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    @property
    def incomplete(self) -> bool:
        """Whether part of a frame has arrived and the rest has not."""
        return self._skip > 0 or len(self._buf) > self._pos


# -- REQUEST payloads ---------------------------------------------------------


def encode_request(
    app: str, action: str, args: tuple, kwargs: dict, timeout: float | None
) -> bytes:
    name = app.encode()
    if len(name) > 0xFFFF:
        raise CodecError("app name too long")
    out = bytearray(_U16.pack(len(name)))
    out += name
    out += _F64.pack(float(timeout) if timeout else 0.0)
    _encode(out, (action, tuple(args), kwargs), 0)
    return bytes(out)


def decode_route(payload: bytes) -> tuple[str, float | None, int]:
    """(app, timeout, offset of the body) from a REQUEST payload."""
    try:
        (n,) = _U16.unpack_from(payload, 0)
        stop = 2 + n
        if stop + _ROUTE_TAIL > len(payload):
            raise CodecError("truncated request head")
        app = payload[2:stop].decode()
        (timeout,) = _F64.unpack_from(payload, stop)
    except (struct.error, UnicodeDecodeError) as exc:
        raise CodecError(f"bad request head: {exc}") from None
    if not timeout > 0 or timeout != timeout or timeout == float("inf"):
        timeout = None
    return app, timeout, stop + _ROUTE_TAIL


def decode_request_body(payload: bytes, offset: int) -> tuple[str, tuple, dict]:
    body = decode(memoryview(payload)[offset:])
    if (
        type(body) is not tuple
        or len(body) != 3
        or type(body[0]) is not str
        or type(body[1]) is not tuple
        or type(body[2]) is not dict
        or any(type(k) is not str for k in body[2])
    ):
        raise CodecError("request body is not (action, args, kwargs)")
    return body


# -- the codec -----------------------------------------------------------------

T_NONE = 0x00
T_FALSE = 0x01
T_TRUE = 0x02
T_INT = 0x03
T_BIGINT = 0x04
T_FLOAT = 0x05
T_STR = 0x06
T_BYTES = 0x07
T_LIST = 0x08
T_TUPLE = 0x09
T_DICT = 0x0A

MAX_DEPTH = 64
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1
_MAX_BIGINT_BYTES = 4096


def encode(obj: object) -> bytes:
    """Encode None/bool/int/float/str/bytes/list/tuple/dict, nested."""
    out = bytearray()
    _encode(out, obj, 0)
    return bytes(out)


def _encode(out: bytearray, obj: object, depth: int) -> None:
    t = type(obj)
    if t is str:
        b = obj.encode("utf-8", "surrogatepass")
        out.append(T_STR)
        out += _U32.pack(len(b))
        out += b
    elif obj is None:
        out.append(T_NONE)
    elif t is bool:
        out.append(T_TRUE if obj else T_FALSE)
    elif t is int:
        if _INT_MIN <= obj <= _INT_MAX:
            out.append(T_INT)
            out += _I64.pack(obj)
        else:
            n = (obj.bit_length() + 8) // 8
            if n > _MAX_BIGINT_BYTES:
                raise CodecError("integer too large to encode")
            out.append(T_BIGINT)
            out += _U32.pack(n)
            out += obj.to_bytes(n, "big", signed=True)
    elif t is float:
        out.append(T_FLOAT)
        out += _F64.pack(obj)
    elif t is bytes or t is bytearray or t is memoryview:
        out.append(T_BYTES)
        out += _U32.pack(len(obj) if t is not memoryview else obj.nbytes)
        out += obj
    elif t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise CodecError("value nested too deeply")
        out.append(T_LIST if t is list else T_TUPLE)
        out += _U32.pack(len(obj))
        for item in obj:
            _encode(out, item, depth + 1)
    elif t is dict:
        if depth >= MAX_DEPTH:
            raise CodecError("value nested too deeply")
        out.append(T_DICT)
        out += _U32.pack(len(obj))
        for k, v in obj.items():
            _encode(out, k, depth + 1)
            _encode(out, v, depth + 1)
    else:
        # Subclasses (IntEnum, str enums, OrderedDict, namedtuple...) travel as their base type.
        for base in (bool, int, float, str, bytes, tuple, list, dict):
            if isinstance(obj, base):
                _encode(out, base(obj) if base is not tuple else tuple(obj), depth)
                return
        raise CodecError(f"cannot encode value of type {t.__qualname__}")


def decode(data: bytes | memoryview) -> object:
    """Decode one value; any malformed input raises `CodecError` and nothing else."""
    view = memoryview(data)
    try:
        value, pos = _decode(view, 0, 0)
    except CodecError:
        raise
    except (struct.error, IndexError, UnicodeDecodeError, TypeError, ValueError) as exc:
        raise CodecError(f"malformed payload: {exc}") from None
    if pos != len(view):
        raise CodecError(f"{len(view) - pos} trailing bytes after value")
    return value


def _decode(v: memoryview, pos: int, depth: int) -> tuple[object, int]:
    tag = v[pos]
    pos += 1
    if tag in (T_STR, T_BYTES):
        (n,) = _U32.unpack_from(v, pos)
        pos += 4
        stop = pos + n
        if stop > len(v):
            raise CodecError("truncated string")
        if tag == T_STR:
            return str(v[pos:stop], "utf-8", "surrogatepass"), stop
        return v[pos:stop].tobytes(), stop
    if tag == T_INT:
        return _I64.unpack_from(v, pos)[0], pos + 8
    if tag == T_NONE:
        return None, pos
    if tag == T_TRUE:
        return True, pos
    if tag == T_FALSE:
        return False, pos
    if tag == T_FLOAT:
        return _F64.unpack_from(v, pos)[0], pos + 8
    if tag in (T_LIST, T_TUPLE, T_DICT):
        if depth >= MAX_DEPTH:
            raise CodecError("value nested too deeply")
        (n,) = _U32.unpack_from(v, pos)
        pos += 4
        # every item takes at least one byte: refuse counts the data cannot hold
        if n > len(v) - pos:
            raise CodecError("container count exceeds payload")
        if tag == T_DICT:
            d = {}
            for _ in range(n):
                k, pos = _decode(v, pos, depth + 1)
                d[k], pos = _decode(v, pos, depth + 1)
            return d, pos
        items = []
        for _ in range(n):
            item, pos = _decode(v, pos, depth + 1)
            items.append(item)
        return (items if tag == T_LIST else tuple(items)), pos
    if tag == T_BIGINT:
        (n,) = _U32.unpack_from(v, pos)
        pos += 4
        if n > _MAX_BIGINT_BYTES or pos + n > len(v):
            raise CodecError("bad big integer length")
        return int.from_bytes(v[pos : pos + n], "big", signed=True), pos + n
    raise CodecError(f"unknown tag 0x{tag:02x}")


def iter_frames(
    data: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> Iterator[tuple[int, int, bytes]]:
    """All frames in `data` (test and tooling helper)."""
    yield from FrameReader(max_payload).feed(data)

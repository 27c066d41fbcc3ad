"""The bytes a connection has received and not yet parsed, kept without copying.

The one trick of the HTTP/1.1 and WebSocket readers lives here. Received data
is kept as it came: ``buf[pos:]`` is the unconsumed part of the first piece,
``more`` the pieces received behind it. Consuming moves ``pos`` instead of
slicing off what was read, which would copy the rest of the buffer for every
body chunk, every frame and every pipelined request; the pieces are joined
only when a read needs bytes that straddle them. A body reader takes a whole
piece from ``more`` as it is (``take``), so a large upload is never copied.

A failed search remembers how far it looked (``take_until``): a head that
arrives a few bytes at a time is searched once, not once per read (which
would cost O(n^2)).

Invariant: ``buf`` is ``b""`` exactly when nothing of it is left, and then
``pos`` is 0; ``more`` may still hold pieces (``take`` emptied ``buf`` by
handing it out). Tests: ``test_receivebuffer.py`` (any split of the input
gives the same reads).
"""

from __future__ import annotations

from collections import deque

from .errors import LocalProtocolError

__all__ = ["ReceiveBuffer"]


class ReceiveBuffer:
    """Received bytes not yet consumed, and whether the peer has ended its side."""

    __slots__ = ("buf", "eof", "more", "pos", "queued", "scan", "scan_needle")

    def __init__(self) -> None:
        #: the first piece of unconsumed input, from ``pos``
        self.buf = b""
        self.pos = 0
        #: pieces received behind ``buf``
        self.more: deque[bytes] = deque()
        #: bytes in ``more``, so that ``len()`` costs the same however many pieces wait
        self.queued = 0
        #: the peer closed its side (``feed(b"")``)
        self.eof = False
        #: bytes of the unconsumed input known not to hold ``scan_needle``
        self.scan = 0
        self.scan_needle = b""

    def __len__(self) -> int:
        """How many bytes are unconsumed."""
        return len(self.buf) - self.pos + self.queued

    def __repr__(self) -> str:
        return f"<ReceiveBuffer {len(self)} bytes{' eof' if self.eof else ''}>"

    def feed(self, data: bytes) -> None:
        """Keep bytes read from the socket; ``b""`` means the peer closed its side."""
        if data:
            if self.eof:
                raise LocalProtocolError("received data after end of file")
            if self.buf or self.more:
                self.more.append(data)
                self.queued += len(data)
            else:
                self.buf = data
        else:
            self.eof = True

    def join(self) -> bytes:
        """All unconsumed input as one string, which ``buf`` then holds from offset 0."""
        buf = self.buf
        if self.more:
            # One copy: the first piece joins the others through a view.
            buf = b"".join((memoryview(buf)[self.pos :] if self.pos else buf, *self.more))
            self.more.clear()
            self.queued = 0
        elif self.pos:
            buf = buf[self.pos :]
        self.pos = 0
        self.buf = buf
        return buf

    def advance(self, buf: bytes, to: int) -> None:
        """Mark ``buf[:to]`` consumed, ``buf`` being what ``self.buf`` holds (after a
        ``join`` when the bytes read straddled pieces)."""
        if to >= len(buf):
            self.buf = b""
            self.pos = 0
        else:
            self.buf = buf
            self.pos = to
        self.scan = 0

    def take(self, n: int) -> bytes:
        """Up to ``n`` (> 0) bytes, consumed: what the first piece holds, never
        joined or copied whole; ``b""`` when nothing is buffered."""
        buf = self.buf
        pos = self.pos
        if pos == len(buf):
            if not self.more:
                return b""
            buf = self.more.popleft()
            self.queued -= len(buf)
            pos = 0
        end = pos + n
        self.scan = 0
        if end >= len(buf):
            self.buf = b""
            self.pos = 0
            return buf[pos:] if pos else buf
        self.buf = buf
        self.pos = end
        return buf[pos:end]

    def take_until(self, needle: bytes) -> bytes | None:
        """The bytes before the first ``needle``, consumed with it; None when it
        has not arrived (and the next search starts where this one stopped)."""
        buf = self.buf
        pos = self.pos
        if self.more:
            buf = self.join()
            pos = 0
        start = pos + self.scan if needle == self.scan_needle else pos
        end = buf.find(needle, start)
        if end < 0:
            # The needle may straddle the next piece: look again at its length - 1 bytes.
            self.scan = max(0, len(buf) - pos - len(needle) + 1)
            self.scan_needle = needle
            return None
        self.scan = 0
        found = buf[pos:end]
        end += len(needle)
        if end < len(buf):
            self.buf = buf
            self.pos = end
        else:
            self.buf = b""
            self.pos = 0
        return found

    def take_prefix(self, prefix: bytes) -> bool | None:
        """Consume ``prefix`` if the input starts with it: True; False when it
        cannot (the bytes differ); None when too few bytes have come to tell."""
        buf = self.buf
        pos = self.pos
        if len(buf) - pos < len(prefix):
            buf = self.join()
            pos = 0
            if len(buf) < len(prefix):
                return None if prefix.startswith(buf) else False
        if not buf.startswith(prefix, pos):
            return False
        self.advance(buf, pos + len(prefix))
        return True

    def unread(self, data: bytes) -> None:
        """Put ``data`` (just consumed) back in front of the input."""
        self.buf = data + self.join()
        self.scan = 0

    def clear(self) -> None:
        """Drop all unconsumed input (the end of file is kept)."""
        self.buf = b""
        self.pos = 0
        self.more.clear()
        self.queued = 0
        self.scan = 0

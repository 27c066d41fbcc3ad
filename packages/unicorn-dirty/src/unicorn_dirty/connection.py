"""The client side of the dirty protocol, sans-IO.

`ClientConnection` turns calls into bytes and bytes into events; it owns no
socket, thread or event loop. `DirtyClient` (blocking sockets) and
`AsyncDirtyClient` (asyncio) both drive one, so request framing, credit
accounting and error mapping exist once.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import protocol as P
from .errors import (
    CodecError,
    DirtyError,
    DirtyPayloadTooLargeError,
    DirtyProtocolError,
    error_from_wire,
)


@dataclass(frozen=True, slots=True)
class Result:
    """The call returned `value`."""

    id: int
    value: object


@dataclass(frozen=True, slots=True)
class Chunk:
    """A streaming call produced `value`."""

    id: int
    value: object


@dataclass(frozen=True, slots=True)
class End:
    """A streaming call finished."""

    id: int


@dataclass(frozen=True, slots=True)
class Failure:
    """The call failed with `error`."""

    id: int
    error: DirtyError


Event = Result | Chunk | End | Failure


class ClientConnection:
    """State of one client connection: ids, frame parsing, stream credit."""

    def __init__(self, max_payload: int = P.DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._reader = P.FrameReader(max_payload + 64)
        self._next = 0
        self._unacked: dict[int, int] = {}

    def _learn_limit(self, limit: object) -> None:
        """The pool said what its `dirty_max_payload` is: refuse larger calls here from now on."""
        if type(limit) is int and 0 < limit < self.max_payload:
            self.max_payload = limit

    def _id(self) -> int:
        self._next += 1
        return self._next

    def _frame(self, kind: int, ident: int, payload: bytes) -> bytes:
        if len(payload) > self.max_payload:
            raise DirtyPayloadTooLargeError(
                f"request of {len(payload)} bytes exceeds dirty_max_payload ({self.max_payload})",
                len(payload),
                self.max_payload,
            )
        return P.frame(kind, ident, payload)

    def request(
        self, app: str, action: str, args: tuple, kwargs: dict, timeout: float | None
    ) -> tuple[int, bytes]:
        """(call id, bytes to send) for a call of `app.action(*args, **kwargs)`."""
        rid = self._id()
        return rid, self._frame(
            P.REQUEST, rid, P.encode_request(app, action, args, kwargs, timeout)
        )

    def stash(self, op: str, args: tuple) -> tuple[int, bytes]:
        rid = self._id()
        return rid, self._frame(P.STASH, rid, P.encode((op, args)))

    def status(self) -> tuple[int, bytes]:
        rid = self._id()
        return rid, P.frame(P.STATUS, rid)

    def cancel(self, rid: int) -> bytes:
        """Bytes telling the arbiter the caller gave up on `rid`."""
        self._unacked.pop(rid, None)
        return P.frame(P.CANCEL, rid)

    def consumed(self, rid: int) -> bytes:
        """The caller took one chunk of `rid`; maybe bytes returning stream credit."""
        n = self._unacked.get(rid, 0) + 1
        if n >= P.CREDIT_BATCH:
            self._unacked[rid] = 0
            return P.frame(P.CREDIT, rid, P.encode(n))
        self._unacked[rid] = n
        return b""

    def receive_data(self, data: bytes) -> list[Event]:
        """Events in `data`. Raises DirtyProtocolError when the arbiter sent garbage."""
        events: list[Event] = []
        for kind, rid, payload in self._reader.feed(data):
            try:
                if kind == P.RESULT:
                    events.append(Result(rid, P.decode(payload)))
                elif kind == P.CHUNK:
                    events.append(Chunk(rid, P.decode(payload)))
                elif kind == P.END:
                    self._unacked.pop(rid, None)
                    events.append(End(rid))
                elif kind == P.ERROR:
                    self._unacked.pop(rid, None)
                    error = error_from_wire(P.decode(payload))
                    if isinstance(error, DirtyPayloadTooLargeError):
                        self._learn_limit(error.max_payload)
                    events.append(Failure(rid, error))
                else:
                    raise DirtyProtocolError(f"unexpected frame kind {kind} from the dirty arbiter")
            except CodecError as exc:
                raise DirtyProtocolError(f"bad payload from the dirty arbiter: {exc}") from None
        return events

"""The errors of unicorn_http, with blame.

``RemoteProtocolError``: the peer sent something we must refuse. It carries
the status to answer with and a reason fit for a log line and a response
body. ``LocalProtocolError``: the code driving the connection misused it (a
header with CRLF in it, more body than Content-Length said, a response before
a request). Both are ``ProtocolError`` so a worker can catch one type.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base of every error this package raises on purpose."""

    status: int = 400
    #: extra response fields the answer must carry (a 426's Sec-WebSocket-Version)
    headers: list[tuple[bytes, bytes]] | tuple = ()

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, status={self.status})"


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; answer with ``status`` (400, 413, 414, 431, 501, 505 ...)
    and close the connection, since the framing of what follows is unknowable."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something HTTP/1.1 does not allow."""

    status = 500

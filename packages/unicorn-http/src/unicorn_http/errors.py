"""The errors of unicorn_http, with blame.

``RemoteProtocolError``: the peer sent something we must refuse. It carries
the status to answer with and a reason fit for a log line and a response
body. ``LocalProtocolError``: the code driving the connection misused it (a
header with CRLF in it, more body than Content-Length said, a response before
a request). Both are ``ProtocolError`` so a worker can catch one type.
"""

from __future__ import annotations

__all__ = ["H2ProtocolError", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


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


class H2ProtocolError(RemoteProtocolError):
    """The HTTP/2 peer broke the protocol in a way that ends the connection.

    ``error_code`` is the RFC 9113 section 7 code the GOAWAY carried
    (1 PROTOCOL_ERROR, 3 FLOW_CONTROL_ERROR, 6 FRAME_SIZE_ERROR,
    9 COMPRESSION_ERROR, 11 ENHANCE_YOUR_CALM ...). The GOAWAY is already
    queued: write what ``data_to_send()`` returns, then close.
    """

    def __init__(self, reason: str, error_code: int, status: int | None = None) -> None:
        super().__init__(reason, status)
        self.error_code = error_code

    def __repr__(self) -> str:
        return f"H2ProtocolError({self.reason!r}, error_code={self.error_code})"

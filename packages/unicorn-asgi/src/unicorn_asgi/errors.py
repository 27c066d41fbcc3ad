"""The ASGI worker's exceptions, shared by its http and websocket layers."""

from __future__ import annotations

__all__ = ["ClientDisconnected"]


class ClientDisconnected(OSError):
    """``send()`` on a connection (http) or a WebSocket the client has closed: the
    ASGI spec (2.4) asks for an ``OSError`` subclass."""

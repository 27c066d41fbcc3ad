"""asyncio/uvloop ASGI worker for unicorn: HTTP/1.1, HTTP/2, WebSocket, lifespan."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

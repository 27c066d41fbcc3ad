"""Sans-IO HTTP/1.1, HTTP/2 and WebSocket protocol library for servers."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

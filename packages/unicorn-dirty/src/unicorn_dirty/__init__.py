"""The dirty pool: stateful worker processes for long blocking work, with streaming, in unicorn or standalone."""

from __future__ import annotations

__version__ = "0.1.0"

from . import stash
from .app import DirtyApp, current_call, is_cancelled
from .client import AsyncDirtyClient, DirtyClient, get_dirty_client, get_dirty_client_async
from .errors import (
    CodecError,
    DirtyActionNotFoundError,
    DirtyAppError,
    DirtyAppNotFoundError,
    DirtyConnectionError,
    DirtyError,
    DirtyNoWorkersAvailableError,
    DirtyPayloadTooLargeError,
    DirtyProtocolError,
    DirtyTimeoutError,
    DirtyWorkerError,
    StashError,
    StashKeyNotFoundError,
    StashTableNotFoundError,
)
from .settings import SOCKET_ENV

__all__ = [
    "SOCKET_ENV",
    "AsyncDirtyClient",
    "CodecError",
    "DirtyActionNotFoundError",
    "DirtyApp",
    "DirtyAppError",
    "DirtyAppNotFoundError",
    "DirtyClient",
    "DirtyConnectionError",
    "DirtyError",
    "DirtyNoWorkersAvailableError",
    "DirtyPayloadTooLargeError",
    "DirtyProtocolError",
    "DirtyTimeoutError",
    "DirtyWorkerError",
    "StashError",
    "StashKeyNotFoundError",
    "StashTableNotFoundError",
    "__version__",
    "current_call",
    "get_dirty_client",
    "get_dirty_client_async",
    "is_cancelled",
    "stash",
]

"""The dirty pool: stateful worker processes for long blocking work, with streaming, in unicorn or standalone."""

from __future__ import annotations

__version__ = "0.1.0"

from . import stash
from .app import DirtyApp, current_call, is_cancelled
from .arbiter import DirtyArbiter
from .client import (
    AsyncDirtyClient,
    DirtyClient,
    close_dirty_client,
    close_dirty_client_async,
    get_dirty_client,
    get_dirty_client_async,
    get_dirty_socket_path,
    set_dirty_socket_path,
)
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
from .stash import StashClient, StashTable, get_stash_socket_path, set_stash_socket_path

__all__ = [
    "SOCKET_ENV",
    "AsyncDirtyClient",
    "CodecError",
    "DirtyActionNotFoundError",
    "DirtyApp",
    "DirtyAppError",
    "DirtyAppNotFoundError",
    "DirtyArbiter",
    "DirtyClient",
    "DirtyConnectionError",
    "DirtyError",
    "DirtyNoWorkersAvailableError",
    "DirtyPayloadTooLargeError",
    "DirtyProtocolError",
    "DirtyTimeoutError",
    "DirtyWorkerError",
    "StashClient",
    "StashError",
    "StashKeyNotFoundError",
    "StashTable",
    "StashTableNotFoundError",
    "__version__",
    "close_dirty_client",
    "close_dirty_client_async",
    "current_call",
    "get_dirty_client",
    "get_dirty_client_async",
    "get_dirty_socket_path",
    "get_stash_socket_path",
    "is_cancelled",
    "set_dirty_socket_path",
    "set_stash_socket_path",
    "stash",
]

"""The dirty pool's exceptions: one hierarchy, mapped to and from the wire in one place."""

from __future__ import annotations


class DirtyError(Exception):
    """Base class of every error the dirty pool raises."""

    def __init__(self, message: str = "", details: dict | None = None) -> None:
        self.message = message
        self.details = details or {}
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class DirtyProtocolError(DirtyError):
    """The peer sent bytes that are not a valid frame or message."""


class CodecError(DirtyProtocolError):
    """A payload could not be encoded or decoded by the dirty codec."""


class DirtyPayloadTooLargeError(DirtyProtocolError):
    """A frame is larger than `dirty_max_payload`."""


class DirtyConnectionError(DirtyError):
    """The dirty arbiter could not be reached, or the connection broke."""


class DirtyTimeoutError(DirtyError):
    """The call did not finish within its timeout (the worker running it was replaced)."""


class DirtyAppNotFoundError(DirtyError):
    """No dirty app with that name is configured."""


class DirtyNoWorkersAvailableError(DirtyError):
    """No worker can take the call (queue full, or the pool is shutting down)."""


class DirtyWorkerError(DirtyError):
    """The dirty worker running the call died before answering."""


class DirtyAppError(DirtyError):
    """The action raised; carries the remote exception's type, message and traceback text."""

    def __init__(
        self,
        message: str = "",
        error_type: str = "Exception",
        traceback: str = "",
        details: dict | None = None,
    ) -> None:
        super().__init__(message, details)
        self.error_type = error_type
        self.traceback = traceback

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


class DirtyActionNotFoundError(DirtyAppError):
    """The app has no public action with that name."""

    def __init__(self, message: str = "", error_type: str = "", traceback: str = "", **kw) -> None:
        super().__init__(message, error_type or "DirtyActionNotFoundError", traceback, **kw)


class StashError(DirtyError):
    """A stash operation failed."""


class StashTableNotFoundError(StashError):
    """The stash table does not exist."""


class StashKeyNotFoundError(StashError):
    """The key does not exist in the stash table."""


# The classes a peer may name in an ERROR message; anything else becomes DirtyError.
WIRE_ERRORS: dict[str, type[DirtyError]] = {
    cls.__name__: cls
    for cls in (
        DirtyError,
        DirtyProtocolError,
        CodecError,
        DirtyPayloadTooLargeError,
        DirtyConnectionError,
        DirtyTimeoutError,
        DirtyAppNotFoundError,
        DirtyNoWorkersAvailableError,
        DirtyWorkerError,
        DirtyAppError,
        DirtyActionNotFoundError,
        StashError,
        StashTableNotFoundError,
        StashKeyNotFoundError,
    )
}


def error_from_wire(kind: str, message: str, error_type: str, traceback: str) -> DirtyError:
    """Rebuild the exception an ERROR message describes."""
    cls = WIRE_ERRORS.get(kind, DirtyError)
    if issubclass(cls, DirtyAppError):
        return cls(message, error_type=error_type, traceback=traceback)
    return cls(message)


def error_to_wire(exc: BaseException, traceback: str = "") -> tuple[str, str, str, str]:
    """(kind, message, remote type, traceback) for an ERROR message."""
    if isinstance(exc, DirtyAppError):
        return (type(exc).__name__, exc.message, exc.error_type, exc.traceback or traceback)
    if isinstance(exc, DirtyError) and type(exc).__name__ in WIRE_ERRORS:
        return (type(exc).__name__, exc.message, type(exc).__name__, traceback)
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    return ("DirtyAppError", str(exc), name, traceback)

"""The dirty pool's exceptions: one hierarchy, mapped to and from the wire in one place.

The classes, their constructor signatures and their attributes are gunicorn's
(`gunicorn.dirty.errors`), so code that catches or builds them moves over
unchanged. Each class names the attributes it carries in `fields`; they are
also kept in `details`, which is what `to_dict()` / `from_dict()` and the wire
carry, so an error rebuilt on the other side of a socket has them too.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DirtyError(Exception):
    """Base class of every error the dirty pool raises."""

    #: attributes this class carries, kept in `details` under the same names
    fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, message: str = "", details: dict | None = None, **values: Any) -> None:
        self.message = message
        self.details = dict(details or {})
        for name in self.fields:
            value = values.pop(name, None)
            if value is None:
                value = self.details.get(name)
            elif value != "":
                self.details[name] = value
            setattr(self, name, value)
        if values:
            raise TypeError(f"{type(self).__name__} has no field {next(iter(values))!r}")
        super().__init__(message)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        """``{"error_type": class name, "message": ..., "details": {...}}`` (gunicorn's shape)."""
        return {"error_type": type(self).__name__, "message": self.message, "details": self.details}

    @classmethod
    def from_dict(cls, data: dict) -> DirtyError:
        """The error `to_dict()` described, as its own class when it is one of ours.

        Only the classes of this module can be named; anything else becomes a
        `DirtyError`. No constructor runs: the attributes come from `details`.
        """
        if not isinstance(data, dict):
            data = {}
        kind = WIRE_ERRORS.get(data.get("error_type"), DirtyError)
        message = data.get("message")
        details = data.get("details")
        err = Exception.__new__(kind)
        err.message = message if isinstance(message, str) else "unknown error"
        err.details = dict(details) if isinstance(details, dict) else {}
        Exception.__init__(err, err.message)
        for name in kind.fields:
            setattr(err, name, err.details.get(name))
        if isinstance(err, DirtyAppError):
            err.error_type = err.error_type or kind.__name__
            err.traceback = err.traceback or ""
        return err


class DirtyProtocolError(DirtyError):
    """The peer sent bytes that are not a valid frame or message."""

    def __init__(self, message: str = "protocol error", raw_data: object = None) -> None:
        details = {}
        if raw_data is not None:
            if isinstance(raw_data, bytes | bytearray):
                raw_data = bytes(raw_data[:100]).hex()
            details["raw_data"] = str(raw_data)[:200]
        super().__init__(message, details)


class CodecError(DirtyProtocolError):
    """A payload could not be encoded or decoded by the dirty codec."""


class DirtyPayloadTooLargeError(DirtyProtocolError):
    """A request or result is larger than `dirty_max_payload`; `size` and
    `max_payload` say by how much (a client learns the pool's limit from it)."""

    fields = ("size", "max_payload")

    def __init__(
        self,
        message: str = "payload too large",
        size: int | None = None,
        max_payload: int | None = None,
    ) -> None:
        DirtyError.__init__(self, message, size=size, max_payload=max_payload)


class DirtyConnectionError(DirtyError):
    """The dirty arbiter could not be reached, or the connection broke."""

    fields = ("socket_path",)

    def __init__(self, message: str = "connection failed", socket_path: str | None = None) -> None:
        super().__init__(message, socket_path=socket_path)


class DirtyTimeoutError(DirtyError):
    """The call did not finish within its timeout."""

    fields = ("timeout",)

    def __init__(self, message: str = "operation timed out", timeout: float | None = None) -> None:
        super().__init__(message, timeout=timeout)


class DirtyNoWorkersAvailableError(DirtyError):
    """No worker can take the call: the pool has none for the app, its queue is full,
    or it is shutting down. Fails at once, so a view can degrade gracefully."""

    fields = ("app_path",)

    def __init__(self, app_path: str = "", message: str | None = None) -> None:
        if message is None:
            message = f"no dirty worker is available for {app_path}"
        super().__init__(message, app_path=app_path)


class DirtyWorkerError(DirtyError):
    """The dirty worker running the call died before answering."""

    fields = ("worker_id", "traceback")

    def __init__(
        self, message: str = "", worker_id: int | None = None, traceback: str | None = None
    ) -> None:
        super().__init__(message, worker_id=worker_id, traceback=traceback)


class DirtyAppError(DirtyError):
    """The action raised. `error_type` is the remote exception's class, `traceback`
    its traceback text; `app_path` and `action` name the call."""

    fields = ("app_path", "action", "traceback", "error_type")

    def __init__(
        self,
        message: str = "",
        app_path: str | None = None,
        action: str | None = None,
        traceback: str | None = None,
        *,
        error_type: str = "Exception",
        details: dict | None = None,
    ) -> None:
        super().__init__(
            message,
            details,
            app_path=app_path,
            action=action,
            traceback=traceback or "",
            error_type=error_type,
        )
        if self.traceback is None:
            self.traceback = ""

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


class DirtyAppNotFoundError(DirtyAppError):
    """No dirty app with that name is configured (or loaded in the worker)."""

    def __init__(self, app_path: str = "", message: str | None = None) -> None:
        super().__init__(
            message or f"dirty app not found: {app_path}",
            app_path=app_path,
            error_type="DirtyAppNotFoundError",
        )

    def __str__(self) -> str:
        return self.message


class DirtyActionNotFoundError(DirtyAppError):
    """The app has no public action with that name."""

    def __init__(
        self,
        message: str = "",
        app_path: str | None = None,
        action: str | None = None,
        traceback: str | None = None,
        **kw: Any,
    ) -> None:
        kw.setdefault("error_type", "DirtyActionNotFoundError")
        super().__init__(message, app_path, action, traceback, **kw)


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


def error_from_wire(info: object) -> DirtyError:
    """Rebuild the exception an ERROR message describes (a `to_dict()` dict)."""
    if (
        type(info) is not dict
        or type(info.get("error_type")) is not str
        or type(info.get("message")) is not str
        or type(info.get("details", {})) is not dict
    ):
        return DirtyError(f"malformed error from the dirty arbiter: {info!r}"[:300])
    return DirtyError.from_dict(info)


def error_to_wire(
    exc: BaseException, traceback: str = "", app_path: str | None = None, action: str | None = None
) -> dict:
    """The dict an ERROR message carries for `exc`; a foreign exception becomes a DirtyAppError."""
    if isinstance(exc, DirtyError) and type(exc).__name__ in WIRE_ERRORS:
        data = exc.to_dict()
        details = data["details"]
        if isinstance(exc, DirtyAppError):
            if traceback and not details.get("traceback"):
                details["traceback"] = traceback
            if app_path and not details.get("app_path"):
                details["app_path"] = app_path
            if action and not details.get("action"):
                details["action"] = action
        return data
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    return DirtyAppError(
        str(exc), app_path=app_path, action=action, traceback=traceback, error_type=name
    ).to_dict()

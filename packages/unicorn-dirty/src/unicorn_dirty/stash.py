"""`stash`: key-value tables held by the dirty arbiter, shared by every dirty worker and client.

Use it as a module::

    from unicorn_dirty import stash

    stash.put("sessions", "user:1", {"name": "Alice"}, ttl=3600)
    stash.get("sessions", "user:1")
    stash.incr("counters", "hits")                 # atomic
    stash.compare_and_set("locks", "job:7", None, "worker-3")
    sessions = stash.table("sessions")             # dict-like
    sessions["user:2"] = {"name": "Bob"}

Every operation is one round trip to the arbiter, which applies it alone, so
`incr` and `compare_and_set` are atomic across processes. Tables live in the
arbiter's memory: they are gone when it restarts.
"""

from __future__ import annotations

import fnmatch
import heapq
import sys
import time
from collections.abc import Iterator

from .errors import StashError, StashKeyNotFoundError, StashTableNotFoundError

_MISSING = object()


class StashStore:
    """The arbiter-side tables. `apply(op, args)` runs one operation."""

    def __init__(self) -> None:
        self.tables: dict[str, dict] = {}
        self._expiry: dict[tuple[str, object], float] = {}
        self._heap: list[tuple[float, int, str, object]] = []
        self._seq = 0

    def apply(self, op: str, args: tuple) -> object:
        fn = _OPS.get(op)
        if fn is None:
            raise StashError(f"unknown stash operation {op!r}")
        try:
            return fn(self, *args)
        except TypeError as exc:
            raise StashError(f"bad arguments to stash {op}: {exc}") from None

    # -- helpers ------------------------------------------------------------------

    def _table(self, name: str, create: bool = False) -> dict | None:
        if type(name) is not str:
            raise StashError("stash table names are strings")
        t = self.tables.get(name)
        if t is None and create:
            t = self.tables[name] = {}
        return t

    def _alive(self, table: str, t: dict, key: object) -> object:
        value = t.get(key, _MISSING)
        if value is not _MISSING:
            exp = self._expiry.get((table, key))
            if exp is not None and exp <= time.monotonic():
                self._drop(table, t, key)
                return _MISSING
        return value

    def _drop(self, table: str, t: dict, key: object) -> None:
        t.pop(key, None)
        self._expiry.pop((table, key), None)

    def _set(self, table: str, t: dict, key: object, value: object, ttl: float | None) -> None:
        try:
            t[key] = value
        except TypeError:
            raise StashError(f"stash key {key!r} is not hashable") from None
        if ttl is None:
            self._expiry.pop((table, key), None)
            return
        if not isinstance(ttl, int | float) or ttl <= 0:
            raise StashError("ttl must be a positive number of seconds")
        exp = time.monotonic() + ttl
        self._expiry[(table, key)] = exp
        self._seq += 1
        heapq.heappush(self._heap, (exp, self._seq, table, key))

    def expire(self, now: float) -> None:
        """Drop entries whose TTL passed (called by the arbiter's timer)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            exp, _, table, key = heapq.heappop(heap)
            if self._expiry.get((table, key)) == exp:
                t = self.tables.get(table)
                if t is not None:
                    self._drop(table, t, key)

    # -- operations -------------------------------------------------------------------

    def op_put(self, table: str, key: object, value: object, ttl: float | None = None) -> None:
        self._set(table, self._table(table, create=True), key, value, ttl)

    def op_get(self, table: str, key: object) -> tuple:
        t = self._table(table)
        value = _MISSING if t is None else self._alive(table, t, key)
        return (False, None) if value is _MISSING else (True, value)

    def op_delete(self, table: str, key: object) -> bool:
        t = self._table(table)
        if t is None or self._alive(table, t, key) is _MISSING:
            return False
        self._drop(table, t, key)
        return True

    def op_exists(self, table: str, key: object = None, has_key: bool = False) -> bool:
        t = self._table(table)
        if t is None:
            return False
        return not has_key or self._alive(table, t, key) is not _MISSING

    def op_keys(self, table: str, pattern: str | None = None) -> list:
        t = self._table(table)
        if t is None:
            raise StashTableNotFoundError(f"stash table {table!r} does not exist")
        now = time.monotonic()
        keys = [k for k in t if self._expiry.get((table, k), now + 1) > now]
        if pattern is not None:
            keys = [k for k in keys if type(k) is str and fnmatch.fnmatchcase(k, pattern)]
        return keys

    def op_clear(self, table: str) -> None:
        t = self._table(table)
        if t is None:
            raise StashTableNotFoundError(f"stash table {table!r} does not exist")
        for k in list(t):
            self._drop(table, t, k)

    def op_info(self, table: str) -> dict:
        t = self._table(table)
        if t is None:
            raise StashTableNotFoundError(f"stash table {table!r} does not exist")
        keys = self.op_keys(table)
        return {
            "name": table,
            "size": len(keys),
            "with_ttl": sum(1 for k in keys if (table, k) in self._expiry),
        }

    def op_ensure(self, table: str) -> None:
        self._table(table, create=True)

    def op_delete_table(self, table: str) -> bool:
        t = self._table(table)
        if t is None:
            return False
        for k in list(t):
            self._drop(table, t, k)
        del self.tables[table]
        return True

    def op_tables(self) -> list:
        return list(self.tables)

    def op_incr(
        self, table: str, key: object, amount: int | float = 1, ttl: float | None = None
    ) -> int | float:
        if not isinstance(amount, int | float) or isinstance(amount, bool):
            raise StashError("incr amount must be a number")
        t = self._table(table, create=True)
        current = self._alive(table, t, key)
        if current is _MISSING:
            current = 0
        elif not isinstance(current, int | float) or isinstance(current, bool):
            raise StashError(f"cannot incr {key!r}: its value is a {type(current).__name__}")
        value = current + amount
        keep_ttl = ttl is None and (table, key) in self._expiry
        if keep_ttl:
            t[key] = value
        else:
            self._set(table, t, key, value, ttl)
        return value

    def op_cas(
        self, table: str, key: object, expected: object, value: object, ttl: float | None = None
    ) -> bool:
        t = self._table(table, create=True)
        current = self._alive(table, t, key)
        if current is _MISSING:
            current = None
        if type(current) is not type(expected) or current != expected:
            return False
        if value is None:
            self._drop(table, t, key)
        else:
            self._set(table, t, key, value, ttl)
        return True

    def op_ttl(self, table: str, key: object) -> float | None:
        exp = self._expiry.get((table, key))
        return None if exp is None else max(0.0, exp - time.monotonic())


_OPS = {name[3:]: fn for name, fn in vars(StashStore).items() if name.startswith("op_")}


# -- the client side ----------------------------------------------------------------

_stash_path: str | None = None


def set_stash_socket_path(path: str | None) -> None:
    """Use `path` for the module-level stash functions (before the dirty socket)."""
    global _stash_path
    _stash_path = path


def get_stash_socket_path() -> str:
    """The socket the module-level functions use: `set_stash_socket_path()`, else
    the dirty socket (`set_dirty_socket_path()`, `UNICORN_DIRTY_SOCKET`)."""
    if _stash_path:
        return _stash_path
    from .client import DirtyConnectionError, get_dirty_socket_path

    try:
        return get_dirty_socket_path()
    except DirtyConnectionError as exc:
        raise StashError(f"no stash socket: {exc}") from None


def _call(op: str, *args: object) -> object:
    from . import client

    if client._sync_factory is not None:  # inside a Ray actor: the pool's stash actor
        return client._sync_factory(None).stash_call(op, *args)
    return client.get_dirty_client(path=get_stash_socket_path()).stash_call(op, *args)


class StashClient:
    """The stash over one connection of its own, to the pool at `socket_path`
    (gunicorn's `StashClient`). The module-level functions do the same over
    this thread's dirty client."""

    def __init__(self, socket_path: str | None = None, timeout: float = 30.0) -> None:
        from .client import DirtyClient

        self._client = DirtyClient(socket_path or get_stash_socket_path(), timeout)
        self.socket_path = self._client.path
        self.timeout = timeout

    def _call(self, op: str, *args: object) -> object:
        return self._client.stash_call(op, *args)

    def put(self, table: str, key: object, value: object, ttl: float | None = None) -> None:
        self._call("put", table, key, value, ttl)

    def get(self, table: str, key: object, default: object = None) -> object:
        found, value = self._call("get", table, key)
        return value if found else default

    def delete(self, table: str, key: object) -> bool:
        return self._call("delete", table, key)

    def exists(self, table: str, key: object = _MISSING) -> bool:
        if key is _MISSING:
            return self._call("exists", table)
        return self._call("exists", table, key, True)

    def keys(self, table: str, pattern: str | None = None) -> list:
        return self._call("keys", table, pattern)

    def clear(self, table: str) -> None:
        self._call("clear", table)

    def info(self, table: str) -> dict:
        return self._call("info", table)

    def ensure(self, table: str) -> None:
        self._call("ensure", table)

    def delete_table(self, table: str) -> bool:
        return self._call("delete_table", table)

    def tables(self) -> list:
        return self._call("tables")

    def incr(
        self, table: str, key: object, amount: int | float = 1, ttl: float | None = None
    ) -> int | float:
        return self._call("incr", table, key, amount, ttl)

    def compare_and_set(
        self, table: str, key: object, expected: object, value: object, ttl: float | None = None
    ) -> bool:
        return self._call("cas", table, key, expected, value, ttl)

    def ttl(self, table: str, key: object) -> float | None:
        return self._call("ttl", table, key)

    def table(self, name: str) -> StashTable:
        return StashTable(self, name)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> StashClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def put(table: str, key: object, value: object, ttl: float | None = None) -> None:
    """Store `value` under `key` (the table is created if needed); `ttl` in seconds."""
    _call("put", table, key, value, ttl)


def get(table: str, key: object, default: object = None) -> object:
    found, value = _call("get", table, key)
    return value if found else default


def delete(table: str, key: object) -> bool:
    """Remove `key`; True if it was there."""
    return _call("delete", table, key)


def exists(table: str, key: object = _MISSING) -> bool:
    """Whether the table exists, or (with `key`) whether the key is in it."""
    if key is _MISSING:
        return _call("exists", table)
    return _call("exists", table, key, True)


def keys(table: str, pattern: str | None = None) -> list:
    """Keys of the table, optionally filtered by a glob `pattern` (``user:*``)."""
    return _call("keys", table, pattern)


def clear(table: str) -> None:
    _call("clear", table)


def info(table: str) -> dict:
    return _call("info", table)


def ensure(table: str) -> None:
    """Create the table if it does not exist."""
    _call("ensure", table)


def delete_table(table: str) -> bool:
    return _call("delete_table", table)


def tables() -> list:
    return _call("tables")


def incr(table: str, key: object, amount: int | float = 1, ttl: float | None = None) -> int | float:
    """Atomically add `amount` to the number under `key` (missing counts as 0); returns the new value."""
    return _call("incr", table, key, amount, ttl)


def compare_and_set(
    table: str, key: object, expected: object, value: object, ttl: float | None = None
) -> bool:
    """Atomically set `key` to `value` if its current value equals `expected`.

    A missing key counts as None; setting None deletes the key. Returns whether it was set.
    """
    return _call("cas", table, key, expected, value, ttl)


def ttl(table: str, key: object) -> float | None:
    """Seconds left before `key` expires, or None if it has no TTL."""
    return _call("ttl", table, key)


def table(name: str) -> StashTable:
    """A dict-like view of the table."""
    return StashTable(name)


class StashTable:
    """Dict-like access to one stash table: ``StashTable(name)`` over this
    thread's dirty client, or gunicorn's ``StashTable(client, name)``."""

    def __init__(self, client_or_name: StashClient | str, name: str | None = None) -> None:
        if name is None:
            self.name = client_or_name
            self._via = sys.modules[__name__]
        else:
            self.name = name
            self._via = client_or_name

    def __getitem__(self, key: object) -> object:
        found, value = self._via._call("get", self.name, key)
        if not found:
            raise KeyError(key)
        return value

    def __setitem__(self, key: object, value: object) -> None:
        self._via.put(self.name, key, value)

    def __delitem__(self, key: object) -> None:
        if not self._via.delete(self.name, key):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return self._via.exists(self.name, key)

    def __iter__(self) -> Iterator:
        try:
            return iter(self._via.keys(self.name))
        except StashTableNotFoundError:
            return iter(())

    def __len__(self) -> int:
        try:
            return self._via.info(self.name)["size"]
        except StashTableNotFoundError:
            return 0

    def get(self, key: object, default: object = None) -> object:
        return self._via.get(self.name, key, default)

    def keys(self, pattern: str | None = None) -> list:
        return self._via.keys(self.name, pattern)

    def items(self) -> Iterator[tuple]:
        for k in self:
            found, value = self._via._call("get", self.name, k)
            if found:
                yield k, value

    def values(self) -> Iterator:
        for _, v in self.items():
            yield v

    def clear(self) -> None:
        self._via.clear(self.name)

    def incr(self, key: object, amount: int | float = 1, ttl: float | None = None) -> int | float:
        return self._via.incr(self.name, key, amount, ttl)


__all__ = [
    "StashClient",
    "StashError",
    "StashKeyNotFoundError",
    "StashTable",
    "StashTableNotFoundError",
    "clear",
    "compare_and_set",
    "delete",
    "delete_table",
    "ensure",
    "exists",
    "get",
    "get_stash_socket_path",
    "incr",
    "info",
    "keys",
    "put",
    "set_stash_socket_path",
    "table",
    "tables",
    "ttl",
]

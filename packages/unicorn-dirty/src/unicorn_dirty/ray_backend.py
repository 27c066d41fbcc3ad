"""The dirty pool's `ray` backend: every app as `workers = N` Ray actors, one stash actor.

Theory of operation
-------------------
The dirty arbiter keeps its Unix socket and its wire protocol, so every client
(`DirtyClient(path)`, `AsyncDirtyClient`, the HTTP workers' client found
through UNICORN_DIRTY_SOCKET, `stash`) works unchanged. Only what sits behind
the socket changes: `RayArbiter` is a Ray driver that serves the socket with
asyncio and sends each call to an actor instead of a forked worker.

- Each app in ``dirty_apps`` becomes N actors of `AppActor` (N: the app's
  limit, else ``dirty_workers``) with the class's `num_cpus`, `num_gpus`,
  `memory`, `resources` and `ray_options`. An actor builds the app and calls
  `init()` once in its constructor, so a restart by Ray (`max_restarts`)
  re-initialises the app; `close()` runs on stop.
- The front passes REQUEST payloads to the actor untouched and gets back
  ``(frame kind, payload)``: the actor encodes results and errors with the
  pool's own codec, so what a caller may send and receive, and the errors it
  sees, are those of the local backend. The front decodes only the action
  name, to call a generator action through Ray's streaming generator
  (``num_returns="streaming"``) and anything else as a plain actor call.
- Routing: an app's actors each take ``dirty_threads`` calls at a time (one
  more when the app's calls are short, so the next call is already there);
  the rest wait in the front, in order, up to ``dirty_max_queue``.
- Streams honour the client's credit: the front pulls the next chunk from
  Ray only while the client has credit, and Ray holds the actor's generator
  when a few chunks are waiting (generator backpressure).
- A cancelled or disconnected caller, or a stream closed early, cancels the
  remote call (`ray.cancel`): async actions are cancelled, sync ones see
  `is_cancelled()`. A call past its timeout is answered with
  DirtyTimeoutError and its actor is killed and restarted by Ray, as the
  local backend replaces the worker. Calls running on an actor that dies get
  DirtyWorkerError; the actor comes back with `init()` re-run.
- The stash is one `StashActor`, named ``stash`` in the pool's Ray namespace
  and owned by this driver, running one operation at a time: `incr` and
  `compare_and_set` stay atomic for every client and every actor on every
  node. Inside actors, `stash` and `get_dirty_client()` talk to Ray directly
  (there is no Unix socket on another node).

This module imports ray; nothing imports it unless ``dirty_backend = "ray"``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import itertools
import logging
import os
import signal
import struct
import sys
import sysconfig
import threading
import time
import traceback
import types
from collections import deque
from collections.abc import AsyncIterator, Iterator

import ray
import ray.exceptions as rex

from . import client as _client
from . import protocol as P
from .app import AppSpec, CallContext, _current, load_app
from .errors import (
    CodecError,
    DirtyAppError,
    DirtyAppNotFoundError,
    DirtyError,
    DirtyNoWorkersAvailableError,
    DirtyPayloadTooLargeError,
    DirtyTimeoutError,
    DirtyWorkerError,
    StashError,
    error_from_wire,
    error_to_wire,
)
from .process import reopen_log_files, set_parent_death_signal, set_proc_title
from .settings import MAX_PAYLOAD_ENV, SOCKET_ENV, DirtyConfig
from .stash import StashStore

# Chunks Ray lets an actor's generator run ahead of the front before pausing it.
RAY_STREAM_AHEAD = 8
# An app whose calls take less than this on average gets one call prefetched per actor.
PREFETCH_BELOW = 0.25
# Seconds an actor that died may take to come back before the front gives up on it.
RESTART_WAIT = 120.0
STASH_NAME = "stash"
_RECV = 262144


def _peek_action(payload: bytes, offset: int) -> str | None:
    """The action name of a REQUEST body without decoding its arguments."""
    # body: T_TUPLE u32(3) T_STR u32(n) name ...
    try:
        if payload[offset] != P.T_TUPLE or payload[offset + 5] != P.T_STR:
            return None
        (n,) = struct.unpack_from("!I", payload, offset + 6)
        start = offset + 10
        return payload[start : start + n].decode()
    except (IndexError, struct.error, UnicodeDecodeError):
        return None


def streaming_actions(cls: type) -> frozenset[str]:
    """Names of the class's generator methods: called through Ray's streaming generators."""
    names = set()
    for name in dir(cls):
        if name.startswith("_"):
            continue
        fn = getattr(cls, name, None)
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            names.add(name)
    return frozenset(names)


def actor_options(spec: AppSpec, max_restarts: int, threads: int) -> dict:
    """Ray options of one app's actors, from the resource attributes of its class."""
    cls = spec.cls
    opts: dict = {
        "max_restarts": max_restarts,
        "max_task_retries": 0,  # a call running when its actor dies fails: DirtyWorkerError
        "max_concurrency": max(64, threads * 4),
        "num_cpus": 0,
        "scheduling_strategy": "SPREAD",
    }
    for attr in ("num_cpus", "num_gpus", "memory", "resources"):
        value = getattr(cls, attr, None)
        if value is not None:
            opts[attr] = value
    extra = getattr(cls, "ray_options", None)
    if extra:
        if not isinstance(extra, dict):
            raise TypeError(f"dirty app {spec.name!r}: ray_options must be a dict")
        opts.update(extra)
    return opts


def ray_error(exc: BaseException, app: str) -> DirtyError:
    """The dirty error a Ray failure of a call to `app` means."""
    if isinstance(exc, rex.RayActorError | rex.ObjectLostError | rex.WorkerCrashedError):
        return DirtyWorkerError(
            f"dirty worker (Ray actor) of {app} died while running a call: {exc}"
        )
    if isinstance(exc, rex.RayTaskError):
        return DirtyAppError(str(exc), error_type=type(exc).__name__)
    return DirtyWorkerError(f"Ray failed a call to {app}: {type(exc).__name__}: {exc}")


def _unwire(kind: int, payload: bytes) -> object:
    """The value of a RESULT/CHUNK payload, or raise the error of an ERROR payload."""
    if kind == P.ERROR:
        info = P.decode(payload)
        raise error_from_wire(*info)
    return P.decode(payload)


# -- inside the actors ------------------------------------------------------------------


class _ActorCall(CallContext):
    __slots__ = ("active", "call_id")

    def __init__(self, app: str, action: str) -> None:
        super().__init__(app, action)
        self.active: set | None = None
        self.call_id = 0


def _in_thread(ctx: _ActorCall, fn, *args, **kwargs):
    token = _current.set(ctx)
    active = ctx.active
    if active is not None:
        active.add(ctx.call_id)  # what `AppActor.running` reports
    try:
        return fn(*args, **kwargs)
    finally:
        if active is not None:
            active.discard(ctx.call_id)
        _current.reset(token)


_DONE = object()


def _next(gen):
    try:
        return next(gen)
    except StopIteration:
        return _DONE


class AppActor:
    """One replica of one dirty app, as a Ray actor (an async actor: calls are asyncio tasks)."""

    def __init__(self, entry: str, threads: int, max_payload: int) -> None:
        spec = load_app(entry)
        self.name = spec.name
        self.max_payload = max_payload
        self.threads = threads
        self.pool = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="dirty-action"
        )
        self.sem = asyncio.Semaphore(threads)
        self.busy = 0
        self.active: set[int] = set()  # ids of the calls whose thread runs now
        self.calls: dict[int, _ActorCall] = {}  # id -> the context its action sees
        os.environ[MAX_PAYLOAD_ENV] = str(max_payload)
        _install_actor_clients(ray.get_actor(STASH_NAME))
        self.app = spec.cls()
        self.app.init()
        self.pid = os.getpid()
        self.node = ray.get_runtime_context().get_node_id()

    async def info(self) -> dict:
        return {"pid": self.pid, "node": self.node, "busy": self.busy, "app": self.name}

    def _encode(self, kind: int, value: object) -> tuple[int, bytes]:
        try:
            out = P.encode(value)
        except CodecError as exc:
            err = DirtyAppError(f"result is not encodable: {exc}", error_type="CodecError")
            return P.ERROR, P.encode(error_to_wire(err))
        if len(out) > self.max_payload:
            err = DirtyPayloadTooLargeError(
                f"result of {len(out)} bytes exceeds dirty_max_payload ({self.max_payload})"
            )
            return P.ERROR, P.encode(error_to_wire(err))
        return kind, out

    @staticmethod
    def _error(exc: BaseException, tb: str = "") -> tuple[int, bytes]:
        return P.ERROR, P.encode(error_to_wire(exc, tb))

    def _prepare(self, payload: bytes):
        app, _timeout, offset = P.decode_route(payload)
        action, args, kwargs = P.decode_request_body(payload, offset)
        return _ActorCall(app, action), action, args, kwargs

    async def cancel_call(self, call_id: int) -> None:
        """Flag a call cancelled (`is_cancelled()`), whatever became of Ray's own cancel."""
        ctx = self.calls.get(call_id)
        if ctx is not None:
            ctx.cancelled = True

    async def running(self, call_id: int) -> bool:
        """Whether the call's thread still runs here (a cancelled sync action may go on)."""
        return call_id in self.active

    async def call(self, payload: bytes, call_id: int = 0) -> tuple[int, bytes]:
        """A plain action; a generator one (called so by a client) gives the list of its chunks."""
        try:
            ctx, action, args, kwargs = self._prepare(payload)
        except CodecError as exc:
            return self._error(exc)
        loop = asyncio.get_running_loop()
        if call_id:
            ctx.active, ctx.call_id = self.active, call_id
            self.calls[call_id] = ctx
        async with self.sem:
            self.busy += 1
            work = None
            try:
                token = _current.set(ctx)
                try:
                    work = loop.run_in_executor(
                        self.pool,
                        functools.partial(_in_thread, ctx, self.app, action, *args, **kwargs),
                    )
                    result = await work
                    if type(result) is types.CoroutineType:
                        result = await result
                    elif type(result) is types.GeneratorType:
                        result = await loop.run_in_executor(
                            self.pool, _in_thread, ctx, list, result
                        )
                    elif type(result) is types.AsyncGeneratorType:
                        result = [chunk async for chunk in result]
                finally:
                    _current.reset(token)
            except asyncio.CancelledError:
                ctx.cancelled = True
                await _until_done(work)  # running() says so until its thread returns
                raise
            except BaseException as exc:
                return self._error(exc, traceback.format_exc())
            finally:
                self.busy -= 1
                self.calls.pop(call_id, None)
        return self._encode(P.RESULT, result)

    @ray.method(num_returns="streaming", _generator_backpressure_num_objects=RAY_STREAM_AHEAD)
    async def stream(self, payload: bytes, call_id: int = 0):
        """A generator action: (CHUNK, payload) per chunk, then (END, b"") or (ERROR, payload)."""
        try:
            ctx, action, args, kwargs = self._prepare(payload)
        except CodecError as exc:
            yield self._error(exc)
            return
        loop = asyncio.get_running_loop()
        gen = work = None
        if call_id:
            ctx.active, ctx.call_id = self.active, call_id
            self.calls[call_id] = ctx
        async with self.sem:
            self.busy += 1
            token = _current.set(ctx)
            try:
                gen = await loop.run_in_executor(
                    self.pool, functools.partial(_in_thread, ctx, self.app, action, *args, **kwargs)
                )
                kind = type(gen)
                if kind is types.GeneratorType:
                    while True:
                        work = loop.run_in_executor(self.pool, _in_thread, ctx, _next, gen)
                        chunk = await work
                        if chunk is _DONE:
                            break
                        item = self._encode(P.CHUNK, chunk)
                        yield item
                        if item[0] == P.ERROR:
                            return
                elif kind is types.AsyncGeneratorType:
                    async for chunk in gen:
                        item = self._encode(P.CHUNK, chunk)
                        yield item
                        if item[0] == P.ERROR:
                            return
                else:
                    if kind is types.CoroutineType:
                        gen = await gen
                    yield self._encode(P.RESULT, gen)
                    return
                yield P.END, b""
            except (asyncio.CancelledError, GeneratorExit):
                ctx.cancelled = True
                await _until_done(work)
                raise
            except BaseException as exc:
                yield self._error(exc, traceback.format_exc())
            finally:
                _current.reset(token)
                self.busy -= 1
                self.calls.pop(call_id, None)
                if type(gen) is types.GeneratorType:
                    loop.run_in_executor(self.pool, gen.close)
                elif type(gen) is types.AsyncGeneratorType:
                    with contextlib.suppress(BaseException):
                        await gen.aclose()

    async def stop(self) -> None:
        """Close the app (`close()`), once, before the actor is killed."""
        app, self.app = self.app, None
        if app is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, app.close)


class StashActor:
    """The pool's one stash, applied one operation at a time (a sync actor, concurrency 1)."""

    def __init__(self) -> None:
        self.store = StashStore()
        self.dir: dict = {}

    def apply(self, op: str, args: tuple) -> tuple[bool, object]:
        """(True, result) or (False, wire error) for an operation from inside an actor."""
        self.store.expire(time.monotonic())
        try:
            return True, self.store.apply(op, args)
        except StashError as exc:
            return False, error_to_wire(exc)

    def apply_wire(self, payload: bytes) -> tuple[int, bytes]:
        """A client's STASH payload in, a RESULT or ERROR payload out."""
        try:
            msg = P.decode(payload)
            if (
                type(msg) is not tuple
                or len(msg) != 2
                or type(msg[0]) is not str
                or type(msg[1]) is not tuple
            ):
                raise StashError("stash message is not (op, args)")
        except (CodecError, StashError) as exc:
            return P.ERROR, P.encode(error_to_wire(StashError(str(exc))))
        ok, value = self.apply(msg[0], msg[1])
        if not ok:
            return P.ERROR, P.encode(value)
        try:
            return P.RESULT, P.encode(value)
        except CodecError as exc:
            return P.ERROR, P.encode(error_to_wire(StashError(str(exc))))

    def set_directory(self, directory: dict) -> None:
        self.dir = directory

    def directory(self) -> dict:
        return self.dir


# -- clients inside actors: the same API, straight to Ray -------------------------------


class _Directory:
    """Where the app actors are, as the stash actor knows it (fetched once, lazily)."""

    def __init__(self, stash) -> None:
        self.stash = stash
        self._dir: dict | None = None
        self._rr = itertools.count()
        self._lock = threading.Lock()

    def get(self) -> dict:
        if self._dir is None:
            with self._lock:
                if self._dir is None:
                    found = ray.get(self.stash.directory.remote())
                    if not found:  # asked before the arbiter sent it: ask again next time
                        return found
                    self._dir = found
        return self._dir

    def route(self, app: str, action: str, payload: bytes):
        entry = self.get().get(app)
        if entry is None or not entry["actors"]:
            raise DirtyAppNotFoundError(
                f"dirty app {app!r} is not configured (known: {', '.join(self.get())})"
            )
        actors = entry["actors"]
        actor = actors[next(self._rr) % len(actors)]
        if action in entry["streaming"]:
            return True, actor.stream.remote(payload)
        return False, actor.call.remote(payload)


class ActorDirtyClient:
    """`get_dirty_client()` inside a Ray actor: `execute`, `stream`, `stash_call`, `status`."""

    def __init__(self, where: _Directory, timeout: float | None = None) -> None:
        self.where = where
        self.timeout = timeout
        self.path = "ray"

    def execute(self, app: str, action: str, *args, timeout: float | None = None, **kwargs):
        t = timeout if timeout is not None else self.timeout
        payload = P.encode_request(app, action, args, kwargs, t)
        streaming, ref = self.where.route(app, action, payload)
        if streaming:
            return list(self._chunks(app, ref, t))
        try:
            kind, out = ray.get(ref, timeout=t)
        except rex.GetTimeoutError:
            ray.cancel(ref)
            raise DirtyTimeoutError(f"call to {app} timed out after {t:g}s") from None
        except rex.RayError as exc:
            raise ray_error(exc, app) from None
        return _unwire(kind, out)

    def stream(self, app: str, action: str, *args, timeout: float | None = None, **kwargs):
        t = timeout if timeout is not None else self.timeout
        payload = P.encode_request(app, action, args, kwargs, t)
        streaming, ref = self.where.route(app, action, payload)
        if not streaming:
            yield self.execute(app, action, *args, timeout=timeout, **kwargs)
            ray.cancel(ref)
            return
        yield from self._chunks(app, ref, t)

    def _chunks(self, app: str, gen, t: float | None) -> Iterator:
        done = False
        try:
            while True:
                try:
                    kind, out = ray.get(next(gen), timeout=t)
                except StopIteration:
                    done = True
                    return
                except rex.GetTimeoutError:
                    raise DirtyTimeoutError(f"no chunk from {app} within {t:g}s") from None
                except rex.RayError as exc:
                    done = True
                    raise ray_error(exc, app) from None
                if kind == P.END:
                    done = True
                    return
                if kind != P.CHUNK:
                    done = True
                    yield _unwire(kind, out)  # a value, or raises its error
                    return
                yield P.decode(out)
        finally:
            if not done:
                ray.cancel(gen)

    def stash_call(self, op: str, *args: object) -> object:
        ok, value = ray.get(self.where.stash.apply.remote(op, args))
        if not ok:
            raise error_from_wire(*value)
        return value

    def status(self) -> dict:
        return {
            "backend": "ray",
            "apps": {name: {"workers": len(e["actors"])} for name, e in self.where.get().items()},
        }

    def close(self) -> None:
        pass


class AsyncActorDirtyClient:
    """`await get_dirty_client_async()` inside a Ray actor."""

    def __init__(self, where: _Directory, timeout: float | None = None) -> None:
        self.where = where
        self.timeout = timeout
        self.path = "ray"

    async def execute_async(
        self, app: str, action: str, *args, timeout: float | None = None, **kwargs
    ):
        t = timeout if timeout is not None else self.timeout
        payload = P.encode_request(app, action, args, kwargs, t)
        streaming, ref = await asyncio.to_thread(self.where.route, app, action, payload)
        if streaming:
            return [c async for c in self._chunks(app, ref, t)]
        try:
            kind, out = await asyncio.wait_for(_await(ref), t)
        except TimeoutError:
            ray.cancel(ref)
            raise DirtyTimeoutError(f"call to {app} timed out after {t:g}s") from None
        except asyncio.CancelledError:
            ray.cancel(ref)
            raise
        except rex.RayError as exc:
            raise ray_error(exc, app) from None
        return _unwire(kind, out)

    async def stream_async(
        self, app: str, action: str, *args, timeout: float | None = None, **kwargs
    ) -> AsyncIterator:
        t = timeout if timeout is not None else self.timeout
        payload = P.encode_request(app, action, args, kwargs, t)
        streaming, ref = await asyncio.to_thread(self.where.route, app, action, payload)
        if not streaming:
            ray.cancel(ref)
            yield await self.execute_async(app, action, *args, timeout=timeout, **kwargs)
            return
        async for chunk in self._chunks(app, ref, t):
            yield chunk

    async def _chunks(self, app: str, gen, t: float | None):
        done = False
        try:
            while True:
                try:
                    ref = await asyncio.wait_for(gen.__anext__(), t)
                    kind, out = await ref
                except StopAsyncIteration:
                    done = True
                    return
                except TimeoutError:
                    raise DirtyTimeoutError(f"no chunk from {app} within {t:g}s") from None
                except rex.RayError as exc:
                    done = True
                    raise ray_error(exc, app) from None
                if kind == P.END:
                    done = True
                    return
                if kind != P.CHUNK:
                    done = True
                    yield _unwire(kind, out)
                    return
                yield P.decode(out)
        finally:
            if not done:
                ray.cancel(gen)

    async def stash_call(self, op: str, *args: object) -> object:
        ok, value = await self.where.stash.apply.remote(op, args)
        if not ok:
            raise error_from_wire(*value)
        return value

    async def status(self) -> dict:
        return ActorDirtyClient(self.where).status()

    async def close(self) -> None:
        pass


async def _await(ref):
    return await ref


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()  # seen: a call nobody waits for any more may still fail


async def _until_done(work: asyncio.Future | None) -> None:
    """Wait for an action's thread to return (its future is cancelled only if it never started)."""
    if work is not None and not work.done():
        with contextlib.suppress(BaseException):
            await asyncio.shield(work)


async def _drain(gen) -> None:
    """Wait for a cancelled streaming call to end in its actor."""
    with contextlib.suppress(BaseException):
        async for _ in gen:
            pass


def _install_actor_clients(stash) -> None:
    where = _Directory(stash)
    local = threading.local()

    def sync_client(timeout: float | None = None) -> ActorDirtyClient:
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = ActorDirtyClient(where)
        if timeout is not None:
            c.timeout = timeout
        return c

    async def async_client(timeout: float | None = None) -> AsyncActorDirtyClient:
        return AsyncActorDirtyClient(where, timeout)

    _client.set_client_factories(sync_client, async_client)


# -- the front: the arbiter's socket, calls sent to actors -------------------------------


class _Replica:
    __slots__ = ("age", "app", "handle", "inflight", "info", "ready", "restarts", "watch")

    def __init__(self, app: str, handle, age: int) -> None:
        self.app = app
        self.handle = handle
        self.age = age
        self.inflight = 0
        self.ready = False
        self.info: dict = {}
        self.restarts = 0
        self.watch: asyncio.Task | None = None


class _Pool:
    """One app's actors and the calls waiting for one of them."""

    def __init__(self, spec: AppSpec, streaming: frozenset[str]) -> None:
        self.spec = spec
        self.streaming = streaming
        self.replicas: list[_Replica] = []
        self.waiting: deque[asyncio.Future] = deque()
        self.avg = PREFETCH_BELOW
        self.dead = False
        self.turn = 0


class _Conn:
    __slots__ = ("calls", "closed", "credit", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.calls: dict[int, asyncio.Task] = {}
        self.credit: dict[int, list] = {}
        self.closed = False

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.writer.write(data)


class RayArbiter:
    """The dirty arbiter with the ray backend. Same constructor and `run()` as `DirtyArbiter`."""

    def __init__(
        self,
        cfg: object,
        socket_path: str,
        log: logging.Logger | None = None,
        watch_parent: bool = False,
        remove_dir: bool = False,
        parent_pid: int | None = None,
    ) -> None:
        self.cfg = cfg if isinstance(cfg, DirtyConfig) else DirtyConfig.from_object(cfg)
        self.socket_path = socket_path
        self.log = log or logging.getLogger("unicorn.dirty")
        self.watch_parent = watch_parent
        self.remove_dir = remove_dir
        self.pid = 0
        self.ppid = parent_pid or 0
        self.threads = max(1, int(self.cfg.dirty_threads))
        self.timeout = float(self.cfg.dirty_timeout)
        self.max_payload = int(self.cfg.dirty_max_payload)
        self.max_queue = int(self.cfg.dirty_max_queue)
        self.specs: dict[str, AppSpec] = {}
        self.pools: dict[str, _Pool] = {}
        self.stash = None
        self.stopping = ""
        self.stats = {"calls": 0, "timeouts": 0, "worker_deaths": 0}
        self._ages = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._stopped: asyncio.Event | None = None
        self._server: asyncio.AbstractServer | None = None
        self._running = 0
        self._tasks: set[asyncio.Task] = set()

    # -- setup -------------------------------------------------------------------

    def load_apps(self) -> None:
        for entry in self.cfg.dirty_apps:
            spec = load_app(entry)
            if spec.name in self.specs:
                raise ValueError(f"dirty app {spec.name!r} listed twice")
            actor_options(spec, 0, self.threads)  # refuse bad resource attributes now
            self.specs[spec.name] = spec
        if not self.specs:
            raise ValueError("no dirty apps configured")

    @property
    def num_workers(self) -> int:
        return sum(len(p.replicas) for p in self.pools.values())

    def _runtime_env(self) -> dict:
        """The job's runtime env: this driver's own source directories on the actors' path."""
        skip = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
        dirs = [
            p
            for p in [os.getcwd(), *sys.path]
            if p
            and os.path.isdir(p)
            and not any(p == s or p.startswith(s + os.sep) for s in skip)
            and not p.startswith(sys.base_prefix + os.sep + "lib")
        ]
        dirs = list(dict.fromkeys(os.path.abspath(d) for d in dirs))
        return {
            "env_vars": {
                "PYTHONPATH": os.pathsep.join(dirs),
                MAX_PAYLOAD_ENV: str(self.max_payload),
            }
        }

    def _connect_ray(self) -> None:
        address = self.cfg.dirty_ray_address or os.environ.get("RAY_ADDRESS") or None
        ray.init(
            address=address,
            namespace=self.cfg.dirty_ray_namespace,
            runtime_env=self._runtime_env(),
            log_to_driver=False,
            configure_logging=False,
            include_dashboard=False if address is None else None,
        )

    def _create_actors(self) -> None:
        try:
            self.stash = (
                ray.remote(StashActor)
                .options(name=STASH_NAME, num_cpus=0, max_restarts=0, max_concurrency=1)
                .remote()
            )
        except ValueError as exc:
            raise RuntimeError(
                f"Ray namespace {self.cfg.dirty_ray_namespace!r} already has a dirty pool "
                f"(its {STASH_NAME!r} actor): give this pool its own dirty_ray_namespace ({exc})"
            ) from None
        for spec in self.specs.values():
            for table in spec.stashes:
                self.stash.apply.remote("ensure", (table,))
        remote_app = ray.remote(AppActor)
        max_restarts = int(self.cfg.dirty_ray_max_restarts)
        directory: dict = {}
        for name, spec in self.specs.items():
            pool = self.pools[name] = _Pool(spec, streaming_actions(spec.cls))
            count = spec.limit or int(self.cfg.dirty_workers)
            opts = actor_options(spec, max_restarts, self.threads)
            for _ in range(count):
                handle = remote_app.options(**opts).remote(name, self.threads, self.max_payload)
                pool.replicas.append(_Replica(name, handle, next(self._ages)))
            directory[name] = {
                "actors": [r.handle for r in pool.replicas],
                "streaming": pool.streaming,
            }
        self.stash.set_directory.remote(directory)

    # -- run ---------------------------------------------------------------------------

    def run(self) -> int:
        self.pid = os.getpid()
        self.ppid = self.ppid or os.getppid()
        if self.watch_parent:
            set_parent_death_signal(signal.SIGTERM)
        set_proc_title("unicorn-dirty arbiter (ray)")
        os.environ[SOCKET_ENV] = self.socket_path
        os.environ[MAX_PAYLOAD_ENV] = str(self.max_payload)
        try:
            if not self.specs:
                self.load_apps()
            self._connect_ray()
            self._create_actors()
        except Exception as exc:
            self.log.error("dirty arbiter (ray) failed to start: %s: %s", type(exc).__name__, exc)
            self._shutdown_ray()
            return 1
        try:
            return asyncio.run(self._serve())
        finally:
            self._shutdown_ray()

    async def _serve(self) -> int:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        from .arbiter import DirtyArbiter  # the same socket rules as the local backend

        binder = DirtyArbiter.__new__(DirtyArbiter)
        binder.socket_path, binder.remove_dir, binder.log = (
            self.socket_path,
            self.remove_dir,
            self.log,
        )
        try:
            sock = DirtyArbiter._bind(binder)
            self._server = await asyncio.start_unix_server(self._on_client, sock=sock, limit=_RECV)
        except Exception:
            self.log.exception("dirty arbiter failed to start")
            self._cleanup_socket()
            return 1
        for sig, how in (
            (signal.SIGTERM, "graceful"),
            (signal.SIGINT, "fast"),
            (signal.SIGQUIT, "fast"),
        ):
            loop.add_signal_handler(sig, self._begin_stop, how)
        loop.add_signal_handler(signal.SIGUSR1, reopen_log_files)
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            loop.add_signal_handler(sig, self._unsupported, sig)
        self.log.info(
            "dirty arbiter %s (ray backend, namespace %s) listening at %s: %s",
            self.pid,
            self.cfg.dirty_ray_namespace,
            self.socket_path,
            ", ".join(f"{n} x{len(p.replicas)}" for n, p in self.pools.items()),
        )
        try:
            self.cfg.on_dirty_starting(self)
        except Exception:
            self.log.exception("on_dirty_starting hook failed")
        for pool in self.pools.values():
            for r in pool.replicas:
                r.watch = asyncio.create_task(self._watch(pool, r, r.info.get("pid", 0)))
        ticker = asyncio.create_task(self._tick())
        await self._stopped.wait()
        ticker.cancel()
        await self._finish_stop()
        return 0

    def _unsupported(self, sig: int) -> None:
        self.log.warning(
            "dirty arbiter (ray): %s ignored; the ray backend keeps its actor counts "
            "(Ray restarts dead actors itself)",
            signal.Signals(sig).name,
        )

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if self.watch_parent and not self.stopping and os.getppid() != self.ppid:
                self.log.warning("dirty arbiter: parent %s is gone, shutting down", self.ppid)
                self._begin_stop("graceful")

    async def _watch(self, pool: _Pool, r: _Replica, old_pid: int = 0) -> None:
        """Wait until the actor answers (first start, or after a restart), then serve it."""
        # a call sent just as the actor died fails too: ask again while Ray restarts it
        end = time.monotonic() + (RESTART_WAIT if self.cfg.dirty_ray_max_restarts else 0)
        while True:
            try:
                info = await r.handle.info.remote()
                if info["pid"] == old_pid and time.monotonic() < end:
                    await asyncio.sleep(0.2)  # answered by the process being killed
                    continue
                r.info = info
                break
            except rex.RayActorError as exc:
                if time.monotonic() < end and not self.stopping:
                    await asyncio.sleep(0.2)
                    continue
                self._gone(pool, r, exc)
                return
            except Exception:
                self.log.exception("dirty worker (Ray actor) of %s did not start", pool.spec.name)
                return
        r.ready = True
        self.log.info(
            "dirty worker %s ready (app %s, Ray node %s)",
            r.info["pid"],
            pool.spec.name,
            r.info["node"][:12],
        )
        self._wake(pool)

    def _gone(self, pool: _Pool, r: _Replica, exc: BaseException) -> None:
        self.log.error("dirty worker (Ray actor) of %s is gone for good: %s", pool.spec.name, exc)
        r.ready = False
        if r in pool.replicas:
            pool.replicas.remove(r)
        if not pool.replicas:
            pool.dead = True
            for fut in pool.waiting:
                if not fut.done():
                    fut.set_exception(
                        DirtyNoWorkersAvailableError(f"every Ray actor of {pool.spec.name} died")
                    )

    def _lost(self, pool: _Pool, r: _Replica) -> None:
        """A call saw the actor die: stop routing to it until Ray has restarted it."""
        if not r.ready:
            return
        r.ready = False
        r.restarts += 1
        if not self.stopping:
            self.stats["worker_deaths"] += 1
            self.log.warning(
                "dirty worker %s (Ray actor of %s) died; Ray restarts it",
                r.info.get("pid"),
                pool.spec.name,
            )
            r.watch = asyncio.create_task(self._watch(pool, r, r.info.get("pid", 0)))

    # -- slots ---------------------------------------------------------------------

    def _limit(self, pool: _Pool) -> int:
        return self.threads + 1 if pool.avg < PREFETCH_BELOW else self.threads

    def _free(self, pool: _Pool) -> _Replica | None:
        """The least busy ready actor with a free slot; ties go round the actors in turn."""
        best = None
        limit = self._limit(pool)
        replicas = pool.replicas
        n = len(replicas)
        pool.turn = start = (pool.turn + 1) % n if n else 0
        for i in range(n):
            r = replicas[(start + i) % n]
            if r.ready and r.inflight < limit and (best is None or r.inflight < best.inflight):
                best = r
                if r.inflight == 0:
                    break
        return best

    async def _acquire(self, pool: _Pool, deadline: float) -> _Replica:
        if pool.dead:
            raise DirtyNoWorkersAvailableError(f"every Ray actor of {pool.spec.name} died")
        if not pool.waiting:
            r = self._free(pool)
            if r is not None:
                r.inflight += 1
                return r
        if len(pool.waiting) >= self.max_queue:
            raise DirtyNoWorkersAvailableError(
                f"queue of dirty app {pool.spec.name!r} is full ({self.max_queue} calls)"
            )
        fut = asyncio.get_running_loop().create_future()
        pool.waiting.append(fut)
        try:
            return await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._release(pool, fut.result())  # handed a slot just as we gave up
            with contextlib.suppress(ValueError):
                pool.waiting.remove(fut)
            raise

    def _release(self, pool: _Pool, r: _Replica) -> None:
        r.inflight -= 1
        self._wake(pool)

    def _wake(self, pool: _Pool) -> None:
        while pool.waiting:
            if pool.waiting[0].done():
                pool.waiting.popleft()
                continue
            r = self._free(pool)
            if r is None:
                return
            r.inflight += 1
            pool.waiting.popleft().set_result(r)

    # -- clients ---------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        frames = P.FrameReader(self.max_payload)
        try:
            while True:
                data = await reader.read(_RECV)
                if not data:
                    break
                try:
                    batch = frames.feed(data)
                except DirtyError as exc:
                    self.log.warning("dirty arbiter: closing a client: %s", exc)
                    break
                for kind, rid, payload in batch:
                    if not self._on_frame(conn, kind, rid, payload):
                        return
                if writer.transport.get_write_buffer_size() > 4 * _RECV:
                    await writer.drain()  # a client that stops reading stops being read from
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass  # the client went away, or the arbiter is stopping
        finally:
            conn.closed = True
            for task in list(conn.calls.values()):
                task.cancel()
            conn.calls.clear()
            writer.close()

    def _on_frame(self, conn: _Conn, kind: int, rid: int, payload: bytes) -> bool:
        if kind == P.REQUEST:
            try:
                app, timeout, offset = P.decode_route(payload)
            except CodecError as exc:
                self.log.warning("dirty arbiter: closing a client: %s", exc)
                return False
            pool = self.pools.get(app)
            if pool is None:
                self._reply_error(
                    conn,
                    rid,
                    DirtyAppNotFoundError(
                        f"dirty app {app!r} is not configured (known: {', '.join(self.pools)})"
                    ),
                )
            elif self.stopping:
                self._reply_error(
                    conn, rid, DirtyNoWorkersAvailableError("the dirty arbiter is shutting down")
                )
            else:
                self.stats["calls"] += 1
                streaming = _peek_action(payload, offset) in pool.streaming
                run = self._stream if streaming else self._execute
                conn.calls[rid] = asyncio.create_task(
                    run(conn, rid, pool, payload, timeout or self.timeout)
                )
        elif kind == P.CANCEL:
            task = conn.calls.pop(rid, None)
            if task is not None:
                task.cancel()
        elif kind == P.CREDIT:
            credit = conn.credit.get(rid)
            if credit is not None:
                with contextlib.suppress(CodecError):
                    n = P.decode(payload)
                    if type(n) is int and n > 0:
                        credit[0] += n
                        credit[1].set()
        elif kind == P.STASH:
            task = asyncio.create_task(self._stash(conn, rid, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == P.STATUS:
            conn.send(P.frame(P.RESULT, rid, P.encode(self.status())))
        else:
            self.log.warning("dirty arbiter: closing a client: unexpected frame kind %d", kind)
            return False
        return True

    def _reply_error(self, conn: _Conn, rid: int, exc: DirtyError) -> None:
        conn.send(P.frame(P.ERROR, rid, P.encode(error_to_wire(exc))))

    async def _stash(self, conn: _Conn, rid: int, payload: bytes) -> None:
        try:
            kind, out = await self.stash.apply_wire.remote(payload)
        except rex.RayError as exc:
            kind, out = (
                P.ERROR,
                P.encode(error_to_wire(StashError(f"the stash actor failed: {exc}"))),
            )
        conn.send(P.frame(kind, rid, out))

    def _timed_out(
        self, pool: _Pool, r: _Replica, timeout: float, running, call_id: int
    ) -> DirtyTimeoutError:
        """The call is cancelled; its actor is replaced if it is still running a while later.

        `running` is awaited for up to `dirty_cancel_timeout` seconds; the call keeps
        its actor's slot until then.
        """
        self.stats["timeouts"] += 1
        self._abandon(pool, r, running, call_id, f"its {timeout:g}s timeout")
        return DirtyTimeoutError(f"call to {pool.spec.name} timed out after {timeout:g}s")

    def _abandon(self, pool: _Pool, r: _Replica, running, call_id: int, why: str) -> None:
        """A cancelled call: give it `dirty_cancel_timeout` to end before replacing its actor."""
        r.inflight += 1  # the caller's slot is released now; this one holds the actor
        r.handle.cancel_call.remote(call_id)
        task = asyncio.create_task(self._settle(pool, r, running, call_id, why))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, pool: _Pool, r: _Replica, running, call_id: int, why: str) -> None:
        grace = float(getattr(self.cfg, "dirty_cancel_timeout", 5.0) or 0.0)
        try:
            # Ray answers a cancelled call at once; whether its thread still runs,
            # only the actor knows
            end = time.monotonic() + grace
            with contextlib.suppress(Exception):
                await asyncio.wait_for(running, grace)
            while True:  # Ray may answer before the action's thread has returned
                still = await asyncio.wait_for(_await(r.handle.running.remote(call_id)), 30)
                if not still:
                    return
                if time.monotonic() >= end:
                    break
                await asyncio.sleep(0.05)
            self.log.error(
                "dirty worker %s (Ray actor of %s) still runs a call %gs after %s: killing it",
                r.info.get("pid"),
                pool.spec.name,
                grace,
                why,
            )
            ray.kill(r.handle, no_restart=False)  # Ray restarts it, init() runs again
            self._lost(pool, r)
        except Exception as exc:  # the actor is gone already: Ray restarts it
            self.log.debug("settling call %d: %s: %s", call_id, type(exc).__name__, exc)
        finally:
            self._release(pool, r)

    async def _execute(
        self, conn: _Conn, rid: int, pool: _Pool, payload: bytes, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        r = ref = waiter = None
        call_id = 0
        self._running += 1
        try:
            try:
                r = await self._acquire(pool, deadline)
            except TimeoutError:
                self.stats["timeouts"] += 1
                raise DirtyTimeoutError(
                    f"call to {pool.spec.name} timed out after {timeout:g}s waiting for a worker"
                ) from None
            started = time.monotonic()
            call_id = next(self._call_ids)
            ref = r.handle.call.remote(payload, call_id)
            waiter = asyncio.ensure_future(_await(ref))
            waiter.add_done_callback(_retrieve)
            try:
                kind, out = await asyncio.wait_for(
                    asyncio.shield(waiter), max(0.0, deadline - started)
                )
            except TimeoutError:
                ray.cancel(ref)
                raise self._timed_out(pool, r, timeout, waiter, call_id) from None
            except rex.RayActorError as exc:
                self._lost(pool, r)
                raise ray_error(exc, pool.spec.name) from None
            except rex.RayError as exc:
                raise ray_error(exc, pool.spec.name) from None
            pool.avg += (time.monotonic() - started - pool.avg) * 0.2
            conn.send(P.frame(kind, rid, out))
        except asyncio.CancelledError:
            if ref is not None:  # the caller gave up: so does the actor
                ray.cancel(ref)
                self._abandon(pool, r, waiter, call_id, "its caller cancelled it")
        except DirtyError as exc:
            self._reply_error(conn, rid, exc)
        finally:
            self._running -= 1
            if r is not None:
                self._release(pool, r)
            conn.calls.pop(rid, None)

    async def _stream(
        self, conn: _Conn, rid: int, pool: _Pool, payload: bytes, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        r = gen = None
        call_id = 0
        credit = [P.STREAM_WINDOW, asyncio.Event()]
        conn.credit[rid] = credit
        self._running += 1
        try:
            try:
                r = await self._acquire(pool, deadline)
            except TimeoutError:
                self.stats["timeouts"] += 1
                raise DirtyTimeoutError(
                    f"call to {pool.spec.name} timed out after {timeout:g}s waiting for a worker"
                ) from None
            pool.avg = max(pool.avg, PREFETCH_BELOW)  # a stream holds its slot: no prefetch
            call_id = next(self._call_ids)
            gen = r.handle.stream.remote(payload, call_id)
            while True:
                while credit[0] <= 0:  # the client has not taken its chunks: pull no more
                    credit[1].clear()
                    await credit[1].wait()
                try:
                    ref = await asyncio.wait_for(gen.__anext__(), timeout)
                    kind, out = await ref
                except StopAsyncIteration:
                    conn.send(P.frame(P.END, rid))
                    return
                except TimeoutError:
                    ray.cancel(gen)
                    raise self._timed_out(pool, r, timeout, _drain(gen), call_id) from None
                except rex.RayActorError as exc:
                    self._lost(pool, r)
                    raise ray_error(exc, pool.spec.name) from None
                except rex.RayError as exc:
                    raise ray_error(exc, pool.spec.name) from None
                conn.send(P.frame(kind, rid, out))
                if kind != P.CHUNK:
                    gen = None
                    return
                credit[0] -= 1
        except asyncio.CancelledError:
            if gen is not None:
                ray.cancel(gen)
                self._abandon(pool, r, _drain(gen), call_id, "its caller closed the stream")
        except DirtyError as exc:
            self._reply_error(conn, rid, exc)
        finally:
            self._running -= 1
            conn.credit.pop(rid, None)
            if r is not None:
                self._release(pool, r)
            conn.calls.pop(rid, None)

    # -- stopping ------------------------------------------------------------------------

    def _begin_stop(self, how: str) -> None:
        if self.stopping == "fast" or self.stopping == how:
            return
        first = not self.stopping
        self.stopping = how
        if first:
            self.log.info("dirty arbiter: %s shutdown", how)
            if self._server is not None:
                self._server.close()
            self._cleanup_socket()
        self._stopped.set()

    async def _finish_stop(self) -> None:
        grace = float(self.cfg.dirty_graceful_timeout) if self.stopping == "graceful" else 0.0
        end = time.monotonic() + grace
        while self._running and time.monotonic() < end and self.stopping == "graceful":
            await asyncio.sleep(0.05)
        closing = [
            r.handle.stop.remote() for p in self.pools.values() for r in p.replicas if r.ready
        ]
        if closing:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 5.0)
        self.log.info("dirty arbiter %s exiting", self.pid)

    def _shutdown_ray(self) -> None:
        for pool in self.pools.values():
            for r in pool.replicas:
                with contextlib.suppress(Exception):
                    ray.kill(r.handle, no_restart=True)
        if self.stash is not None:
            with contextlib.suppress(Exception):
                ray.kill(self.stash, no_restart=True)
        with contextlib.suppress(Exception):
            ray.shutdown()
        self._cleanup_socket()

    def _cleanup_socket(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path)
        if self.remove_dir:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(self.socket_path))

    def status(self) -> dict:
        """The same shape as the local arbiter's; one worker per actor."""
        workers = []
        for name, pool in self.pools.items():
            for r in pool.replicas:
                workers.append(
                    {
                        "pid": r.info.get("pid", 0),
                        "age": r.age,
                        "apps": [name],
                        "ready": r.ready,
                        "busy": r.inflight,
                        "retiring": False,
                        "node": r.info.get("node", ""),
                        "restarts": r.restarts,
                    }
                )
        return {
            "pid": self.pid,
            "backend": "ray",
            "num_workers": len(workers),
            "threads": self.threads,
            "workers": workers,
            "apps": {
                name: {
                    "limit": pool.spec.limit,
                    "queued": len(pool.waiting),
                    "workers": [r.info.get("pid", 0) for r in pool.replicas if r.ready],
                }
                for name, pool in self.pools.items()
            },
            "stats": dict(self.stats),
            "stopping": self.stopping,
        }

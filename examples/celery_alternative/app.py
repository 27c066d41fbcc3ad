"""The HTTP side: FastAPI views that hand work to the dirty apps and return, or stream, the result.

Views never do the slow work themselves: each awaits a dirty call on the
event loop's one shared connection to the dirty arbiter, so an HTTP worker
keeps serving other requests while a dirty worker resizes, sends or
crunches. Progress streams out as server-sent events.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from tasks import DATA_APP, EMAIL_APP, IMAGE_APP, SCHEDULABLE, SCHEDULED_APP, query_cache_key

from unicorn_dirty import (
    DirtyAppError,
    DirtyConnectionError,
    DirtyError,
    DirtyNoWorkersAvailableError,
    DirtyPayloadTooLargeError,
    DirtyTimeoutError,
    DirtyWorkerError,
    close_dirty_client_async,
    get_dirty_client_async,
)

MAX_UPLOAD = 16 * 1024 * 1024
# exceptions the dirty apps raise for bad input (error_type is the remote class, module-qualified)
CLIENT_ERRORS = {"ValueError", "tasks.RecipientRefused", "imaging.ImageError"}
_END = object()


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    await close_dirty_client_async()


log = logging.getLogger("unicorn.error")
app = FastAPI(title="unicorn-dirty: a Celery alternative", lifespan=lifespan)


async def call(app_name: str, action: str, *args, timeout: float, retries: int = 0, **kwargs):
    """One dirty call; `retries` more tries if the worker died or the pool restarted under it.

    Celery's ``autoretry_for``: retry only work that is safe to run twice.
    """
    for attempt in range(retries + 1):
        client = await get_dirty_client_async()
        try:
            return await client.execute_async(app_name, action, *args, timeout=timeout, **kwargs)
        except (DirtyWorkerError, DirtyConnectionError):
            if attempt == retries:
                raise
            await asyncio.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


async def stash_get(table: str, key: str) -> object | None:
    """Read the stash from the HTTP worker, without occupying a dirty worker."""
    client = await get_dirty_client_async()
    found, value = await client.stash_call("get", table, key)
    return value if found else None


def error_body(exc: DirtyError) -> tuple[int, dict]:
    if isinstance(exc, DirtyAppError):
        if exc.error_type in CLIENT_ERRORS:
            return 422, {"error": exc.error_type, "detail": exc.message}
        return 500, {"error": exc.error_type, "detail": exc.message}
    for kind, status in (
        (DirtyTimeoutError, 504),
        (DirtyNoWorkersAvailableError, 503),
        (DirtyConnectionError, 503),
        (DirtyPayloadTooLargeError, 413),
    ):
        if isinstance(exc, kind):
            return status, {"error": type(exc).__name__, "detail": str(exc)}
    return 502, {"error": type(exc).__name__, "detail": str(exc)}


@app.exception_handler(DirtyError)
async def dirty_error(request: Request, exc: DirtyError) -> JSONResponse:
    status, body = error_body(exc)
    if status >= 500:
        # Every 5xx leaves a line naming its cause in the error log.
        log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return JSONResponse(body, status_code=status)


async def sse(app_name: str, action: str, *args, timeout: float, **kwargs) -> StreamingResponse:
    """Stream a generator action as server-sent events: ``progress`` per chunk, then ``done``.

    The first chunk is awaited before the response starts, so bad input is an
    HTTP error (422) rather than an error event. A client that disconnects
    cancels the generator in the dirty worker.
    """
    client = await get_dirty_client_async()
    chunks = client.stream_async(app_name, action, *args, timeout=timeout, **kwargs)
    first = await anext(chunks, _END)

    async def events() -> AsyncIterator[str]:
        count, chunk = 0, first
        try:
            while chunk is not _END:
                count += 1
                yield f"event: progress\ndata: {json.dumps(chunk)}\n\n"
                chunk = await anext(chunks, _END)
        except DirtyError as exc:
            yield f"event: error\ndata: {json.dumps(error_body(exc)[1])}\n\n"
            return
        finally:
            await chunks.aclose()  # on a disconnect: cancels the action in the worker
        yield f"event: done\ndata: {json.dumps({'events': count})}\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- health -----------------------------------------------------------------------------


@app.get("/")
async def index() -> dict:
    return {"endpoints": sorted({route.path for route in app.routes if route.path != "/"})}


@app.get("/health")
async def health() -> dict:
    client = await get_dirty_client_async()
    status = await client.status()
    missing = [name for name, a in status["apps"].items() if not a["workers"]]
    return {
        "status": "degraded" if missing or status["stopping"] else "ok",
        "http_worker": os.getpid(),
        "dirty": {
            "arbiter": status["pid"],
            "workers": [
                {"pid": w["pid"], "apps": w["apps"], "busy": w["busy"]} for w in status["workers"]
            ],
            "queued": {name: a["queued"] for name, a in status["apps"].items()},
            "apps_without_workers": missing,
        },
    }


# -- email ------------------------------------------------------------------------------


class Email(BaseModel):
    to: str
    subject: str
    body: str = ""


class BulkEmail(BaseModel):
    recipients: list[str] = Field(min_length=1, max_length=10_000)
    subject: str
    body: str = ""


@app.post("/api/email/send")
async def email_send(msg: Email) -> dict:
    # celery: send_email.delay(to, subject, body).get(timeout=10)
    # Not retried: a worker that died after the SMTP exchange would send the message twice.
    return await call(EMAIL_APP, "send", msg.to, msg.subject, msg.body, timeout=10)


@app.post("/api/email/send-bulk")
async def email_send_bulk(msg: BulkEmail) -> StreamingResponse:
    return await sse(EMAIL_APP, "send_bulk", msg.recipients, msg.subject, msg.body, timeout=30)


@app.get("/api/email/messages/{message_id}")
async def email_message(message_id: str) -> dict:
    record = await stash_get("emails", message_id)
    if record is None:
        raise HTTPException(404, f"no message {message_id}")
    return record


@app.get("/api/email/stats")
async def email_stats() -> dict:
    return await call(EMAIL_APP, "stats", timeout=10)


# -- images -----------------------------------------------------------------------------


class Batch(BaseModel):
    images: list[str] = Field(default=[], max_length=100, description="base64 PNG or PPM")
    samples: int = Field(default=0, ge=0, le=100, description="generated pictures to add")
    size: int = Field(default=256, ge=8, le=2048)
    operations: list[str] = ["grayscale", "blur", "thumbnail:64"]


@app.get("/api/image/sample")
async def image_sample(
    width: int = Query(256, ge=1, le=2048), height: int = Query(192, ge=1, le=2048), seed: int = 0
) -> Response:
    png = await call(IMAGE_APP, "sample", width, height, seed, timeout=30)
    return Response(png, media_type="image/png")


@app.post("/api/image/resize")
async def image_resize(
    request: Request,
    width: int = Query(ge=1, le=4096),
    height: int = Query(ge=1, le=4096),
) -> Response:
    if int(request.headers.get("content-length") or 0) > MAX_UPLOAD:
        raise HTTPException(413, f"images are limited to {MAX_UPLOAD} bytes")
    data = await request.body()
    if not data:
        raise HTTPException(422, "send the image (PNG or binary PPM) as the request body")
    out = await call(IMAGE_APP, "resize", data, width, height, timeout=60, retries=1)
    return Response(
        out["png"],
        media_type="image/png",
        headers={
            "X-Image-Size": f"{out['width']}x{out['height']}",
            "X-Source-Size": f"{out['source_width']}x{out['source_height']}",
        },
    )


@app.post("/api/image/process-batch")
async def image_process_batch(batch: Batch) -> StreamingResponse:
    try:
        images = [base64.b64decode(s, validate=True) for s in batch.images]
    except binascii.Error as exc:
        raise HTTPException(422, f"images must be base64: {exc}") from None
    if not images and not batch.samples:
        raise HTTPException(422, "give images, samples, or both")
    return await sse(
        IMAGE_APP,
        "process_batch",
        images,
        batch.operations,
        samples=batch.samples,
        size=batch.size,
        timeout=60,
    )


@app.get("/api/image/results/{result_id}")
async def image_result(result_id: str) -> Response:
    png = await stash_get("image_results", result_id)
    if png is None:
        raise HTTPException(404, f"no result {result_id} (results are kept 10 minutes)")
    return Response(png, media_type="image/png")


# -- data -------------------------------------------------------------------------------


class Rows(BaseModel):
    group_by: str = "region"
    metric: str = "revenue"
    op: str = "sum"
    rows: list[dict] = Field(max_length=100_000)


class Etl(BaseModel):
    rows: int = Field(default=20_000, ge=1, le=1_000_000)
    batch_size: int = Field(default=2_000, ge=1)
    seed: int = 1


@app.get("/api/data/aggregate")
async def data_aggregate(group_by: str = "region", metric: str = "revenue", op: str = "sum"):
    """Aggregate the dataset each DataWorker loaded in init()."""
    return await call(DATA_APP, "aggregate", group_by, metric, op, timeout=60)


@app.post("/api/data/aggregate")
async def data_aggregate_rows(body: Rows):
    """Aggregate rows sent by the caller."""
    return await call(
        DATA_APP, "aggregate", body.group_by, body.metric, body.op, body.rows, timeout=60
    )


@app.post("/api/data/etl")
async def data_etl(body: Etl) -> StreamingResponse:
    return await sse(DATA_APP, "etl", body.rows, body.batch_size, body.seed, timeout=60)


@app.get("/api/data/etl/{run_id}")
async def data_etl_run(run_id: str) -> dict:
    run = await call(DATA_APP, "etl_run", run_id, timeout=10)
    if run is None:
        raise HTTPException(404, f"no ETL run {run_id}")
    return run


@app.get("/api/data/query")
async def data_query(
    region: str | None = None,
    product: str | None = None,
    day_from: int = Query(0, ge=0, le=364),
    day_to: int = Query(364, ge=0, le=364),
    ttl: float = Query(30.0, gt=0, le=3600),
) -> dict:
    """A slow query cached in the stash: a hit is answered here, without a dirty worker."""
    key = query_cache_key(region, product, day_from, day_to)
    entry = await stash_get("query_cache", key)
    if entry is not None:
        return {"cached": True, "key": key, **entry}
    entry = await call(DATA_APP, "query", region, product, day_from, day_to, ttl, timeout=60)
    return {"cached": False, "key": key, **entry}


# -- scheduled jobs ---------------------------------------------------------------------


class Job(BaseModel):
    task: str
    interval: float = Field(gt=0)
    args: list = []
    kwargs: dict = {}
    name: str | None = None
    run_immediately: bool = False


@app.get("/api/scheduled/tasks")
async def scheduled_tasks() -> dict:
    return {"tasks": {name: f"{a}.{action}" for name, (a, action) in sorted(SCHEDULABLE.items())}}


@app.post("/api/scheduled/jobs", status_code=201)
async def scheduled_register(job: Job) -> dict:
    return await call(
        SCHEDULED_APP,
        "register",
        job.task,
        job.interval,
        job.args,
        job.kwargs,
        job.name,
        job.run_immediately,
        timeout=10,
    )


@app.get("/api/scheduled/jobs")
async def scheduled_list() -> dict:
    return {"jobs": await call(SCHEDULED_APP, "jobs", timeout=10)}


@app.get("/api/scheduled/jobs/{job_id}")
async def scheduled_get(job_id: str) -> dict:
    job = await call(SCHEDULED_APP, "job", job_id, timeout=10)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


@app.post("/api/scheduled/jobs/{job_id}/run")
async def scheduled_run_now(job_id: str) -> dict:
    outcome = await call(SCHEDULED_APP, "run_now", job_id, timeout=70)
    if outcome is None:
        raise HTTPException(404, f"no job {job_id}")
    return outcome


@app.delete("/api/scheduled/jobs/{job_id}", status_code=204)
async def scheduled_cancel(job_id: str) -> Response:
    if not await call(SCHEDULED_APP, "cancel", job_id, timeout=10):
        raise HTTPException(404, f"no job {job_id}")
    return Response(status_code=204)

"""The four dirty apps of the example: what would be Celery tasks, as methods of stateful workers.

Each class is loaded by the dirty workers named in ``dirty_apps`` (see
unicorn.conf.py). ``init()`` runs once per worker after fork and keeps its
state (an SMTP connection, a dataset, a scheduler thread) for every call that
follows; a method that yields streams its progress to the caller.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import imaging

from unicorn_dirty import DirtyApp, DirtyError, get_dirty_client, is_cancelled, stash

log = logging.getLogger("celery_alternative")

EMAIL_APP = "tasks:EmailWorker"
IMAGE_APP = "tasks:ImageWorker"
DATA_APP = "tasks:DataWorker"
SCHEDULED_APP = "tasks:ScheduledWorker"

RESULT_TTL = 24 * 3600.0  # how long results stay in the stash (Celery's result_expires)


# -- EmailWorker ----------------------------------------------------------------------

_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")


class RecipientRefused(ValueError):
    pass


class SimulatedSMTP:
    """Stands in for smtplib.SMTP: one connection per worker, a small delay per message.

    Addresses at ``bounce.example`` are refused, as a real server refuses unknown mailboxes.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.connected_at = time.time()
        self.sent = 0

    def sendmail(self, to: str, subject: str, body: str) -> str:
        if not _ADDRESS.fullmatch(to):
            raise RecipientRefused(f"{to!r} is not an email address")
        if to.endswith("@bounce.example"):
            raise RecipientRefused(f"550 mailbox unavailable: {to}")
        time.sleep(self.delay)  # the SMTP round trips
        self.sent += 1
        return uuid.uuid4().hex  # the Message-ID would be <this@our.domain>

    def quit(self) -> None:
        self.sent = 0


class EmailWorker(DirtyApp):
    """Celery: ``@app.task def send_email(to, subject, body)``."""

    stashes = ["emails", "email_stats"]

    def init(self) -> None:
        self.smtp = SimulatedSMTP(delay=float(os.environ.get("EMAIL_SMTP_DELAY", "0.02")))

    def send(self, to: str, subject: str, body: str = "") -> dict:
        """Send one message; the record also goes to the ``emails`` stash table (the result backend)."""
        try:
            message_id = self.smtp.sendmail(to, subject, body)
        except RecipientRefused:
            stash.incr("email_stats", "failed")
            raise
        record = {
            "message_id": message_id,
            "to": to,
            "subject": subject,
            "sent_at": time.time(),
            "worker": os.getpid(),
        }
        stash.put("emails", message_id, record, ttl=RESULT_TTL)
        stash.incr("email_stats", "sent")
        return record

    def send_bulk(self, recipients: list[str], subject: str, body: str = ""):
        """Send to each recipient in turn, yielding one progress event per message."""
        total, sent, failed = len(recipients), 0, 0
        for index, to in enumerate(recipients, 1):
            if is_cancelled():  # the HTTP client went away: stop sending
                return
            try:
                record = self.send(to, subject, body)
            except RecipientRefused as exc:
                failed += 1
                yield {
                    "index": index,
                    "total": total,
                    "to": to,
                    "status": "failed",
                    "error": str(exc),
                }
                continue
            sent += 1
            yield {
                "index": index,
                "total": total,
                "to": to,
                "status": "sent",
                "message_id": record["message_id"],
            }
        yield {"done": True, "total": total, "sent": sent, "failed": failed}

    def stats(self) -> dict:
        return {
            "sent": stash.get("email_stats", "sent", 0),
            "failed": stash.get("email_stats", "failed", 0),
            "this_worker_sent": self.smtp.sent,
        }

    def close(self) -> None:
        self.smtp.quit()


# -- ImageWorker ----------------------------------------------------------------------


class ImageWorker(DirtyApp):
    """Celery: a ``-Q images`` queue with its own workers. Here: at most 2 workers load it."""

    workers = 2
    stashes = ["image_results"]

    def sample(self, width: int = 256, height: int = 192, seed: int = 0) -> bytes:
        """A generated test picture, as PNG."""
        return imaging.encode_png(imaging.sample(width, height, seed))

    def resize(self, data: bytes, width: int, height: int) -> dict:
        """Resize a PNG or PPM image to exactly `width` x `height`; returns PNG bytes."""
        src = imaging.decode(data)
        out = imaging.resize(src, width, height)
        return {
            "png": imaging.encode_png(out),
            "width": out.width,
            "height": out.height,
            "source_width": src.width,
            "source_height": src.height,
        }

    def process_batch(
        self, images: list[bytes], operations: list[str], samples: int = 0, size: int = 256
    ):
        """Apply `operations` to each image (and to `samples` generated ones, `size` wide).

        Each result goes to the ``image_results`` stash table; each step is announced.
        """
        for op in operations:  # refuse a bad pipeline before doing any work
            imaging.apply(imaging.Image(1, 1, bytearray(3)), op)
        sources: list[bytes | None] = [*images, *[None] * samples]
        total = len(sources)
        for index, data in enumerate(sources, 1):
            if is_cancelled():
                return
            if data is None:
                img = imaging.sample(size, size * 3 // 4, seed=index)
            else:
                img = imaging.decode(data)
            before = img.mean()
            for op in operations:
                img = imaging.apply(img, op)
            result_id = uuid.uuid4().hex[:16]
            stash.put("image_results", result_id, imaging.encode_png(img), ttl=600.0)
            yield {
                "index": index,
                "total": total,
                "id": result_id,
                "width": img.width,
                "height": img.height,
                "mean_before": round(before, 2),
                "mean_after": round(img.mean(), 2),
            }
        yield {"done": True, "total": total, "operations": operations}


# -- DataWorker -----------------------------------------------------------------------

REGIONS = ("north", "south", "east", "west")
PRODUCTS = ("widget", "gadget", "gizmo", "sprocket")
GROUPS = {"day": 0, "region": 1, "product": 2}
METRICS = ("units", "revenue")
OPS = ("sum", "avg", "min", "max", "count")
DATASET_ROWS = 50_000


def generate_sales(rows: int, seed: int) -> Iterator[tuple[int, str, str, int, float]]:
    """(day, region, product, units, unit price) rows, the same for the same seed."""
    rng = random.Random(seed)
    for _ in range(rows):
        yield (
            rng.randrange(365),
            rng.choice(REGIONS),
            rng.choice(PRODUCTS),
            rng.randint(1, 20),
            round(rng.uniform(1.0, 50.0), 2),
        )


def aggregate_rows(rows, group_by: str, metric: str, op: str) -> dict:
    if group_by not in GROUPS or metric not in METRICS or op not in OPS:
        raise ValueError(
            f"group_by must be one of {sorted(GROUPS)}, metric one of {list(METRICS)}, "
            f"op one of {list(OPS)}"
        )
    col = GROUPS[group_by]
    acc: dict[object, list] = {}
    for row in rows:
        value = row[3] if metric == "units" else row[3] * row[4]
        a = acc.get(row[col])
        if a is None:
            acc[row[col]] = [1, value, value, value]
        else:
            a[0] += 1
            a[1] += value
            a[2] = min(a[2], value)
            a[3] = max(a[3], value)
    pick = {
        "count": lambda a: a[0],
        "sum": lambda a: a[1],
        "avg": lambda a: a[1] / a[0],
        "min": lambda a: a[2],
        "max": lambda a: a[3],
    }[op]
    groups = {str(k): round(pick(a), 2) for k, a in sorted(acc.items())}
    return {"group_by": group_by, "metric": metric, "op": op, "groups": groups}


def query_cache_key(region: str | None, product: str | None, day_from: int, day_to: int) -> str:
    return f"sales:{region or '*'}:{product or '*'}:{day_from}-{day_to}"


class DataWorker(DirtyApp):
    """Celery: aggregation and ETL tasks that report progress with ``update_state``."""

    workers = 2
    stashes = ["query_cache", "warehouse", "etl_runs"]

    def init(self) -> None:
        # loaded once per worker and kept: the reason to use a stateful worker
        self.sales = list(generate_sales(DATASET_ROWS, seed=5))

    def aggregate(
        self,
        group_by: str = "region",
        metric: str = "revenue",
        op: str = "sum",
        rows: list[dict] | None = None,
    ) -> dict:
        """Aggregate the worker's dataset, or `rows` given by the caller."""
        if rows is None:
            data = self.sales
        else:
            try:
                data = [
                    (int(r.get("day", 0)), r["region"], r["product"], int(r["units"]), r["price"])
                    for r in rows
                ]
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"each row needs region, product, units and price: {exc}"
                ) from None
        out = aggregate_rows(data, group_by, metric, op)
        out["rows"] = len(data)
        return out

    def etl(self, rows: int = 20_000, batch_size: int = 2_000, seed: int = 1):
        """Extract raw CSV lines, transform (parse, validate), load totals into the stash."""
        if not 0 < rows <= 1_000_000 or batch_size <= 0:
            raise ValueError("rows must be in 1..1000000 and batch_size positive")
        run_id = uuid.uuid4().hex[:12]
        started = time.time()
        rng = random.Random(seed)

        lines: list[str] = []  # extract: a flaky source, about 1 line in 25 is bad
        for day, region, product, units, price in generate_sales(rows, seed):
            bad = rng.randrange(25)
            if bad == 0:
                units = ""
            elif bad == 1:
                region = "??"
            lines.append(f"{day},{region},{product},{units},{price}")
            if len(lines) % batch_size == 0 or len(lines) == rows:
                if is_cancelled():
                    return
                time.sleep(0.005)  # the source's latency
                yield {"stage": "extract", "done": len(lines), "total": rows}

        clean: list[tuple] = []  # transform
        rejected = 0
        for i, line in enumerate(lines, 1):
            day, region, product, units, price = line.split(",")
            if region not in REGIONS or not units.isdigit():
                rejected += 1
            else:
                clean.append((int(day), region, product, int(units), float(price)))
            if i % batch_size == 0 or i == rows:
                if is_cancelled():
                    return
                yield {"stage": "transform", "done": i, "total": rows, "rejected": rejected}

        totals = aggregate_rows(clean, "region", "revenue", "sum")["groups"]  # load
        counts = aggregate_rows(clean, "region", "units", "count")["groups"]
        for i, region in enumerate(sorted(totals), 1):
            stash.put(
                "warehouse",
                f"{run_id}:{region}",
                {"region": region, "rows": counts[region], "revenue": totals[region]},
                ttl=RESULT_TTL,
            )
            yield {"stage": "load", "done": i, "total": len(totals)}
        summary = {
            "run_id": run_id,
            "extracted": rows,
            "loaded": len(clean),
            "rejected": rejected,
            "seconds": round(time.time() - started, 3),
        }
        stash.put("etl_runs", run_id, summary, ttl=RESULT_TTL)
        yield {"stage": "done", **summary}

    def etl_run(self, run_id: str) -> dict | None:
        """What one ETL run loaded: its summary and its warehouse rows."""
        summary = stash.get("etl_runs", run_id)
        if summary is None:
            return None
        keys = sorted(stash.keys("warehouse", f"{run_id}:*"))
        return {**summary, "warehouse": [stash.get("warehouse", k) for k in keys]}

    def query(
        self,
        region: str | None = None,
        product: str | None = None,
        day_from: int = 0,
        day_to: int = 364,
        ttl: float = 30.0,
    ) -> dict:
        """A slow query; its answer is cached in the stash for `ttl` seconds.

        The HTTP side looks in the cache first, so a hit never reaches a dirty worker.
        """
        time.sleep(0.05)  # what makes it worth caching: think of a slow database
        rows = units = 0
        revenue = 0.0
        for day, r, p, u, price in self.sales:
            if day_from <= day <= day_to and region in (None, r) and product in (None, p):
                rows += 1
                units += u
                revenue += u * price
        entry = {
            "result": {"rows": rows, "units": units, "revenue": round(revenue, 2)},
            "computed_at": time.time(),
            "worker": os.getpid(),
        }
        stash.put("query_cache", query_cache_key(region, product, day_from, day_to), entry, ttl=ttl)
        return entry


# -- ScheduledWorker ------------------------------------------------------------------

# What a schedule may run: Celery beat's task names, mapped to apps and actions.
SCHEDULABLE = {
    "email.send": (EMAIL_APP, "send"),
    "data.aggregate": (DATA_APP, "aggregate"),
    "data.warm_cache": (DATA_APP, "query"),
}
MIN_INTERVAL = 0.1
JOB_TIMEOUT = 60.0
_JOB_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class ScheduledWorker(DirtyApp):
    """Celery beat on one machine: periodic jobs kept in the stash, run by a scheduler thread.

    One worker loads it (``workers = 1``), and each due run is claimed with
    ``compare_and_set`` before it starts, so a run happens once even while a
    HUP briefly has an old and a new scheduler side by side. Jobs call other
    dirty apps through the dirty client like any other caller; give the pool
    ``dirty_threads`` >= 2 or more than one worker so that ``run_now`` is
    never queued behind itself.
    """

    workers = 1
    stashes = ["schedule"]
    tick = 0.1

    def init(self) -> None:
        self._stop = threading.Event()
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="beat-job")
        self._thread = threading.Thread(target=self._loop, name="beat", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- actions --

    def register(
        self,
        task: str,
        interval: float,
        args: list | None = None,
        kwargs: dict | None = None,
        name: str | None = None,
        run_immediately: bool = False,
    ) -> dict:
        if task not in SCHEDULABLE:
            raise ValueError(f"unknown task {task!r}; schedulable: {sorted(SCHEDULABLE)}")
        if not isinstance(interval, int | float) or interval < MIN_INTERVAL:
            raise ValueError(f"interval must be a number of seconds >= {MIN_INTERVAL}")
        job_id = name or uuid.uuid4().hex[:10]
        if not _JOB_NAME.fullmatch(job_id):
            raise ValueError("a job name is 1 to 64 letters, digits, '_', '.' or '-'")
        now = time.time()
        job = {
            "id": job_id,
            "task": task,
            "args": list(args or []),
            "kwargs": dict(kwargs or {}),
            "interval": float(interval),
            "created": now,
            "next_run": now if run_immediately else now + interval,
            "runs": 0,
            "failures": 0,
            "last_run": None,
            "last_status": None,
            "last_result": None,
            "last_error": None,
        }
        if not stash.compare_and_set("schedule", job_id, None, job):
            raise ValueError(f"a job named {job_id!r} is already scheduled")
        return job

    def jobs(self) -> list[dict]:
        found = (stash.get("schedule", k) for k in stash.keys("schedule"))
        return sorted((j for j in found if j is not None), key=lambda j: j["created"])

    def job(self, job_id: str) -> dict | None:
        return stash.get("schedule", job_id)

    def run_now(self, job_id: str) -> dict | None:
        """Run a job at once, outside its schedule (Celery: ``task.delay()`` beside beat)."""
        job = stash.get("schedule", job_id)
        return None if job is None else self._run(job_id, job)

    def cancel(self, job_id: str) -> bool:
        return stash.delete("schedule", job_id)

    # -- the scheduler --

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self._dispatch_due()
            except DirtyError:  # the pool is stopping, or the arbiter was replaced
                log.warning("scheduler tick failed", exc_info=True)

    def _dispatch_due(self) -> None:
        now = time.time()
        for job_id in stash.keys("schedule"):
            job = stash.get("schedule", job_id)
            if job is None or job["next_run"] > now:
                continue
            with self._lock:
                if job_id in self._running:  # the previous run is not over: skip this one
                    continue
            claimed = {**job, "next_run": max(job["next_run"] + job["interval"], now)}
            if stash.compare_and_set("schedule", job_id, job, claimed):
                with self._lock:
                    self._running.add(job_id)
                self._pool.submit(self._run, job_id, claimed)

    def _run(self, job_id: str, job: dict) -> dict:
        app, action = SCHEDULABLE[job["task"]]
        started = time.time()
        try:
            result = get_dirty_client().execute(
                app, action, *job["args"], timeout=JOB_TIMEOUT, **job["kwargs"]
            )
            outcome = {"job": job_id, "status": "ok", "result": result, "error": None}
        except DirtyError as exc:
            outcome = {"job": job_id, "status": "error", "result": None, "error": str(exc)}
        finally:
            with self._lock:
                self._running.discard(job_id)
        outcome["started"] = started
        outcome["seconds"] = round(time.time() - started, 4)
        self._record(job_id, outcome)
        return outcome

    def _record(self, job_id: str, outcome: dict) -> None:
        while True:  # read, modify, compare-and-set: a concurrent update makes us retry
            current = stash.get("schedule", job_id)
            if current is None:  # cancelled while it ran
                return
            failed = outcome["status"] != "ok"
            updated = {
                **current,
                "runs": current["runs"] + 1,
                "failures": current["failures"] + failed,
                "last_run": outcome["started"],
                "last_status": outcome["status"],
                "last_result": outcome["result"],
                "last_error": outcome["error"],
            }
            if stash.compare_and_set("schedule", job_id, current, updated):
                return

"""examples/celery_alternative under a real `unicorn -k asgi` with its dirty pool, driven by httpx.

Every endpoint is called over HTTP; SSE streams are read to their end; the
results are checked for what the work really did (pixels, sums, cache hits,
scheduled runs), and the dirty processes must be gone after TERM.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import struct
import sys
import threading
import zlib
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn, wait_for

pytestmark = pytest.mark.timeout(30)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "celery_alternative"
CONF = str(EXAMPLE / "unicorn.conf.py")
RED, BLUE = b"\xff\x00\x00", b"\x00\x00\xff"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Unicorn(tmp_path_factory.mktemp("celery_alt"), "app:app", "-c", CONF)
    client = httpx.Client(base_url=srv.url, timeout=20)
    # the HTTP workers answer before the dirty workers have loaded their apps
    wait_for(lambda: client.get("/health").json()["status"] == "ok", what="a healthy pool")
    yield client
    client.close()
    srv.stop()


def read_sse(response: httpx.Response) -> list[tuple[str, dict]]:
    """Every (event, data) of a text/event-stream response, read until the server ends it."""
    assert response.headers["content-type"].startswith("text/event-stream")
    events, name, data = [], "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
    return events


def stream_events(client: httpx.Client, path: str, body: dict) -> list[tuple[str, dict]]:
    with client.stream("POST", path, json=body) as r:
        assert r.status_code == 200, r.read()
        events = read_sse(r)
    assert events[-1][0] == "done", events[-3:]
    assert events[-1][1]["events"] == len(events) - 1
    assert all(name == "progress" for name, _ in events[:-1])
    return [data for _, data in events[:-1]]


def ppm(width: int, height: int) -> bytes:
    """Left half red, right half blue."""
    row = RED * (width // 2) + BLUE * (width - width // 2)
    return b"P6\n%d %d\n255\n" % (width, height) + row * height


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGB bytes of an 8-bit RGB PNG whose rows are unfiltered."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, head = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        assert (
            zlib.crc32(kind + body)
            == struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        )
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = head[:4]
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(idat)
    stride = width * 3 + 1
    assert len(raw) == height * stride and all(raw[y * stride] == 0 for y in range(height))
    return width, height, b"".join(raw[y * stride + 1 : (y + 1) * stride] for y in range(height))


def pixel(img: tuple[int, int, bytes], x: int, y: int) -> bytes:
    i = (y * img[0] + x) * 3
    return img[2][i : i + 3]


# -- health ---------------------------------------------------------------------------


def test_health_and_index(server):
    health = server.get("/health").json()
    assert health["status"] == "ok"
    dirty = health["dirty"]
    assert len(dirty["workers"]) == 4
    holders = {app: [w for w in dirty["workers"] if app in w["apps"]] for app in dirty["queued"]}
    assert {app: len(ws) for app, ws in holders.items()} == {
        "tasks:EmailWorker": 4,
        "tasks:ImageWorker": 2,
        "tasks:DataWorker": 2,
        "tasks:ScheduledWorker": 1,
    }
    endpoints = set(server.get("/").json()["endpoints"])
    for path in (
        "/health",
        "/api/email/send",
        "/api/email/send-bulk",
        "/api/image/resize",
        "/api/image/process-batch",
        "/api/data/aggregate",
        "/api/data/etl",
        "/api/data/query",
        "/api/scheduled/jobs",
        "/api/scheduled/jobs/{job_id}/run",
    ):
        assert path in endpoints


# -- email ----------------------------------------------------------------------------


def test_email_send_records_in_stash(server):
    before = server.get("/api/email/stats").json()
    r = server.post("/api/email/send", json={"to": "ada@example.com", "subject": "hello"})
    assert r.status_code == 200, r.text
    sent = r.json()
    assert sent["to"] == "ada@example.com" and len(sent["message_id"]) == 32
    # the stash is the result backend: any process can read the record later
    record = server.get(f"/api/email/messages/{sent['message_id']}").json()
    assert record == sent
    assert server.get("/api/email/messages/nope").status_code == 404

    bad = server.post("/api/email/send", json={"to": "not-an-address", "subject": "x"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "tasks.RecipientRefused"
    after = server.get("/api/email/stats").json()
    assert after["sent"] >= before["sent"] + 1 and after["failed"] >= before["failed"] + 1


def test_email_send_bulk_streams_progress(server):
    recipients = [f"user{i}@example.com" for i in range(5)] + ["gone@bounce.example"]
    events = stream_events(
        server, "/api/email/send-bulk", {"recipients": recipients, "subject": "news"}
    )
    *progress, summary = events
    assert [e["index"] for e in progress] == list(range(1, 7))
    assert [e["to"] for e in progress] == recipients
    assert [e["status"] for e in progress] == ["sent"] * 5 + ["failed"]
    assert "550" in progress[-1]["error"]
    assert summary == {"done": True, "total": 6, "sent": 5, "failed": 1}
    last = server.get(f"/api/email/messages/{progress[4]['message_id']}").json()
    assert last["to"] == "user4@example.com"


# -- images ---------------------------------------------------------------------------


def test_image_resize_transforms_pixels(server):
    r = server.post("/api/image/resize", params={"width": 15, "height": 10}, content=ppm(40, 30))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-source-size"] == "40x30" and r.headers["x-image-size"] == "15x10"
    img = png_pixels(r.content)
    assert img[:2] == (15, 10)
    assert pixel(img, 1, 5) == RED and pixel(img, 13, 5) == BLUE
    # column 7 samples the source at x = 19.5, halfway between the last red and first blue
    assert pixel(img, 7, 5) == bytes([128, 0, 128])

    sample = server.get("/api/image/sample", params={"width": 64, "height": 48})
    assert png_pixels(sample.content)[:2] == (64, 48)
    r = server.post("/api/image/resize", params={"width": 32, "height": 24}, content=sample.content)
    small = png_pixels(r.content)
    assert small[:2] == (32, 24)
    assert pixel(small, 0, 23)[0] < pixel(small, 31, 23)[0]  # the gradient survives, halved

    bad = server.post("/api/image/resize", params={"width": 8, "height": 8}, content=b"GIF89a")
    assert bad.status_code == 422 and bad.json()["error"] == "imaging.ImageError"


def test_image_process_batch_streams_and_stores_results(server):
    body = {
        "images": [base64.b64encode(ppm(40, 20)).decode()],
        "samples": 2,
        "size": 48,
        "operations": ["grayscale", "thumbnail:16"],
    }
    *progress, summary = stream_events(server, "/api/image/process-batch", body)
    assert summary == {"done": True, "total": 3, "operations": body["operations"]}
    assert [p["index"] for p in progress] == [1, 2, 3]
    assert (progress[0]["width"], progress[0]["height"]) == (16, 8)
    for p in progress[1:]:
        assert (p["width"], p["height"]) == (16, 12)
    for p in progress:
        img = png_pixels(server.get(f"/api/image/results/{p['id']}").content)
        assert img[:2] == (p["width"], p["height"])
        rgb = img[2]
        assert rgb[0::3] == rgb[1::3] == rgb[2::3]  # grey
    # red and blue turned grey: luma 76 and 29, so a dark left half and darker right half
    first = png_pixels(server.get(f"/api/image/results/{progress[0]['id']}").content)
    assert pixel(first, 1, 4) == bytes([76] * 3) and pixel(first, 14, 4) == bytes([29] * 3)

    bad = server.post("/api/image/process-batch", json={"samples": 1, "operations": ["melt"]})
    assert bad.status_code == 422 and "unknown image operation" in bad.json()["detail"]


# -- data -----------------------------------------------------------------------------


def test_data_aggregate(server):
    rows = [
        {"region": "north", "product": "widget", "units": 2, "price": 1.5},
        {"region": "north", "product": "gadget", "units": 4, "price": 2.25},
        {"region": "south", "product": "widget", "units": 10, "price": 0.5},
    ]
    r = server.post("/api/data/aggregate", json={"rows": rows})
    assert r.json()["groups"] == {"north": 12.0, "south": 5.0}
    r = server.post(
        "/api/data/aggregate",
        json={"rows": rows, "group_by": "product", "metric": "units", "op": "max"},
    )
    assert r.json()["groups"] == {"gadget": 4, "widget": 10}

    counts = server.get("/api/data/aggregate", params={"op": "count"}).json()
    assert counts["rows"] == 50_000 and sum(counts["groups"].values()) == 50_000
    sums = server.get("/api/data/aggregate").json()["groups"]
    assert set(sums) == {"north", "south", "east", "west"}
    # the same figure by another code path: the query action over the same dataset
    north = server.get("/api/data/query", params={"region": "north", "ttl": 1}).json()
    assert north["result"]["revenue"] == sums["north"]
    assert north["result"]["rows"] == counts["groups"]["north"]
    assert server.get("/api/data/aggregate", params={"op": "median"}).status_code == 422


def test_data_etl_streams_each_stage(server):
    progress = stream_events(server, "/api/data/etl", {"rows": 5000, "batch_size": 1000})
    stages = [p["stage"] for p in progress]
    assert stages == ["extract"] * 5 + ["transform"] * 5 + ["load"] * 4 + ["done"]
    assert [p["done"] for p in progress if p["stage"] == "extract"] == [
        1000,
        2000,
        3000,
        4000,
        5000,
    ]
    done = progress[-1]
    assert done["extracted"] == 5000 and done["rejected"] > 0
    assert done["loaded"] + done["rejected"] == 5000
    run = server.get(f"/api/data/etl/{done['run_id']}").json()
    assert sum(w["rows"] for w in run["warehouse"]) == done["loaded"]
    assert server.get("/api/data/etl/unknown").status_code == 404


def test_data_query_is_cached_in_the_stash(server):
    params = {"region": "east", "product": "gizmo", "day_from": 10, "day_to": 99}
    first = server.get("/api/data/query", params=params).json()
    second = server.get("/api/data/query", params=params).json()
    assert first["cached"] is False and second["cached"] is True
    assert second["result"] == first["result"] and second["computed_at"] == first["computed_at"]
    assert first["result"]["rows"] > 0

    # a short TTL: the entry expires and the next call computes again
    short = {**params, "day_to": 50, "ttl": 0.3}
    computed = server.get("/api/data/query", params=short).json()
    assert computed["cached"] is False
    again = wait_for(
        lambda: (r := server.get("/api/data/query", params=short).json())["cached"] is False and r,
        timeout=10,
        what="the cached entry to expire",
    )
    assert again["computed_at"] > computed["computed_at"]


def test_disconnect_cancels_the_stream_in_the_worker(server):
    with server.stream("POST", "/api/data/etl", json={"rows": 1_000_000, "batch_size": 100}) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break  # one event, then hang up: the rest would take nearly a minute
    wait_for(
        lambda: all(w["busy"] == 0 for w in server.get("/health").json()["dirty"]["workers"]),
        # run to its end the ETL takes over 50 s (10,000 batches, 5 ms each); a
        # busy machine may take a few seconds to pass the cancellation along
        timeout=15,
        what="the ETL to be cancelled in its worker",
    )


def test_resize_is_retried_when_its_worker_dies(server):
    """app.py retries a resize once on DirtyWorkerError: kill -9 the worker mid-call."""
    result: dict = {}

    def post() -> None:
        result["r"] = httpx.post(
            server.base_url.join("/api/image/resize"),
            params={"width": 900, "height": 900},
            content=ppm(200, 100),
            timeout=25,
        )

    caller = threading.Thread(target=post)
    caller.start()

    def busy_image_worker() -> int | None:
        for w in server.get("/health").json()["dirty"]["workers"]:
            if w["busy"] and "tasks:ImageWorker" in w["apps"]:
                return w["pid"]
        return None

    victim = wait_for(busy_image_worker, what="the resize to start")
    os.kill(victim, signal.SIGKILL)
    caller.join(25)
    r = result["r"]
    assert r.status_code == 200, r.text
    assert r.headers["x-image-size"] == "900x900"
    assert png_pixels(r.content)[:2] == (900, 900)
    # the pool replaced the worker with one holding the same apps
    health = wait_for(
        lambda: (
            (h := server.get("/health").json())["status"] == "ok"
            and len(h["dirty"]["workers"]) == 4
            and h
        ),
        what="the pool to replace the killed worker",
    )
    assert victim not in [w["pid"] for w in health["dirty"]["workers"]]


# -- scheduled jobs -------------------------------------------------------------------


def test_scheduled_jobs(server):
    assert "email.send" in server.get("/api/scheduled/tasks").json()["tasks"]
    job = {
        "task": "email.send",
        "interval": 0.2,
        "args": ["beat@example.com", "tick"],
        "name": "tick",
    }
    r = server.post("/api/scheduled/jobs", json=job)
    assert r.status_code == 201, r.text
    assert r.json()["runs"] == 0
    assert server.post("/api/scheduled/jobs", json=job).status_code == 422  # the name is taken
    bad = server.post("/api/scheduled/jobs", json={"task": "rm.rf", "interval": 1})
    assert bad.status_code == 422

    ran = wait_for(
        lambda: (j := server.get("/api/scheduled/jobs/tick").json())["runs"] >= 2 and j,
        timeout=10,
        what="the scheduler to run the job twice",
    )
    assert ran["last_status"] == "ok" and ran["failures"] == 0
    assert ran["last_result"]["to"] == "beat@example.com"
    assert server.get(f"/api/email/messages/{ran['last_result']['message_id']}").status_code == 200
    assert [j["id"] for j in server.get("/api/scheduled/jobs").json()["jobs"]] == ["tick"]

    now = server.post("/api/scheduled/jobs/tick/run").json()
    assert now["status"] == "ok" and now["result"]["subject"] == "tick"

    assert server.delete("/api/scheduled/jobs/tick").status_code == 204
    assert server.get("/api/scheduled/jobs/tick").status_code == 404
    assert server.delete("/api/scheduled/jobs/tick").status_code == 404
    assert server.post("/api/scheduled/jobs/tick/run").status_code == 404


# -- shutdown -------------------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_term_stops_the_dirty_pool(tmp_path):
    srv = Unicorn(tmp_path, "app:app", "-c", CONF, "--workers", "1", "--dirty-workers", "2")
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            health = wait_for(
                lambda: (h := client.get("/health").json())["status"] == "ok" and h,
                what="a healthy pool",
            )
    finally:
        srv.stop()
    assert srv.proc.returncode == 0
    pids = [health["dirty"]["arbiter"], *(w["pid"] for w in health["dirty"]["workers"])]
    assert len(pids) == 3
    wait_for(lambda: not any(alive(p) for p in pids), timeout=10, what=f"{pids} to exit")

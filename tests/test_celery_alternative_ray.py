"""examples/celery_alternative, unchanged, with its dirty apps on Ray (`--dirty-backend ray`).

The same FastAPI app and the same dirty apps under a real `unicorn -k asgi`,
with the dirty pool's apps as Ray actors on a two-node Ray cluster started
for this module. The endpoint tests are those of
test_celery_alternative_example.py, run here against this server.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

pytest.importorskip("ray", reason="the ray backend needs the unicorn-dirty[ray] extra")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "support"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "packages" / "unicorn-dirty" / "tests"))

from ray_cluster import RayCluster  # noqa: E402
from test_celery_alternative_example import (  # noqa: E402  (the example's tests, this server)
    CONF,
    test_data_aggregate,
    test_data_etl_streams_each_stage,
    test_data_query_is_cached_in_the_stash,
    test_disconnect_cancels_the_stream_in_the_worker,
    test_email_send_bulk_streams_progress,
    test_email_send_records_in_stash,
    test_image_process_batch_streams_and_stores_results,
    test_image_resize_transforms_pixels,
    test_scheduled_jobs,
)
from unicorn_server import Unicorn, wait_for  # noqa: E402

pytestmark = pytest.mark.timeout(300)  # the first test also starts the cluster and the actors

__all__ = [
    "test_data_aggregate",
    "test_data_etl_streams_each_stage",
    "test_data_query_is_cached_in_the_stash",
    "test_disconnect_cancels_the_stream_in_the_worker",
    "test_email_send_bulk_streams_progress",
    "test_email_send_records_in_stash",
    "test_image_process_batch_streams_and_stores_results",
    "test_image_resize_transforms_pixels",
    "test_scheduled_jobs",
]

ACTORS = {
    "tasks:EmailWorker": 2,  # --dirty-workers 2: an app without a limit gets that many actors
    "tasks:ImageWorker": 2,
    "tasks:DataWorker": 2,
    "tasks:ScheduledWorker": 1,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cluster = RayCluster()
    try:
        srv = Unicorn(
            tmp_path_factory.mktemp("celery_alt_ray"),
            "app:app",
            "-c",
            CONF,
            "--dirty-workers",
            "2",
            "--dirty-backend",
            "ray",
            "--dirty-ray-address",
            cluster.address,
        )
        client = httpx.Client(base_url=srv.url, timeout=30)
        try:
            wait_for(
                lambda: client.get("/health").json().get("status") == "ok",
                # a Ray worker process takes a few seconds to start on a small, busy machine
                timeout=180,
                what="every app to have a ready actor",
            )
            yield client
        finally:
            client.close()
            srv.stop()
    finally:
        cluster.stop()


def test_health_counts_actors_per_app(server):
    def all_ready():
        dirty = server.get("/health").json()["dirty"]
        counts = {app: sum(app in w["apps"] for w in dirty["workers"]) for app in dirty["queued"]}
        return counts == ACTORS and len({w["pid"] for w in dirty["workers"]}) == 7 and dirty

    dirty = wait_for(all_ready, timeout=60, what="seven ready actors")
    assert all(len(w["apps"]) == 1 for w in dirty["workers"])  # one app per actor

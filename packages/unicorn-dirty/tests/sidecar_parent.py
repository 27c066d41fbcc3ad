"""Stands in for unicorn's master in tests: starts the dirty sidecar, reports, then waits to be killed.

python sidecar_parent.py APP [APP...]   ->  prints {"pid": ..., "env": {...}} on one line
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from types import SimpleNamespace

from unicorn_dirty.sidecar import DirtySidecar


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    cfg = SimpleNamespace(dirty_apps=sys.argv[1:], dirty_workers=2, dirty_graceful_timeout=5)
    sidecar = DirtySidecar(cfg, logging.getLogger("test.master"))
    assert sidecar.enabled()
    env = sidecar.worker_env()
    pid = sidecar.spawn()
    print(json.dumps({"pid": pid, "env": env}), flush=True)
    for line in sys.stdin:  # "respawn": what the master does when the sidecar dies
        if line.strip() == "respawn":
            os.waitpid(pid, 0)
            pid = sidecar.spawn()
            print(json.dumps({"pid": pid, "env": sidecar.worker_env()}), flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()

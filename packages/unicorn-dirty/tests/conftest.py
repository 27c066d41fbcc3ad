"""Fixtures that run real dirty pools. Helper modules next to this file are put on
sys.path (and on PYTHONPATH for subprocesses), so the suite also runs from an
installed wheel outside the source tree."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from running_pool import ECHO, Pool


@pytest.fixture
def make_pool():
    pools: list[Pool] = []

    def make(
        apps: list[str] | None = None, workers: int = 2, args: list[str] | None = None
    ) -> Pool:
        pool = Pool(apps or [ECHO], workers, args)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.stop()


@pytest.fixture
def pool(make_pool) -> Pool:
    return make_pool()


@pytest.fixture(scope="session")
def shared_pool():
    """One pool for the tests that leave it as they found it."""
    pool = Pool([ECHO], 2)
    yield pool
    pool.stop()

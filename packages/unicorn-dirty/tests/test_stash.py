"""`stash`: arbiter-owned tables shared by workers and clients, atomic across processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from running_pool import ECHO, HERE, child_env, wait_for

from unicorn_dirty import DirtyClient, StashError, StashTableNotFoundError, stash
from unicorn_dirty.stash import StashStore

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def stash_pool(pool, monkeypatch):
    monkeypatch.setenv("UNICORN_DIRTY_SOCKET", pool.path)
    return pool


def test_table_operations(stash_pool):
    assert stash.tables() == []
    stash.put("sessions", "user:1", {"name": "Alice"})
    stash.put("sessions", "user:2", b"\x00raw")
    stash.put("sessions", "admin:1", None)
    assert stash.get("sessions", "user:1") == {"name": "Alice"}
    assert stash.get("sessions", "nobody", "dflt") == "dflt"
    assert stash.get("nosuchtable", "k") is None
    assert stash.exists("sessions") and not stash.exists("other")
    assert stash.exists("sessions", "admin:1")  # a stored None still exists
    assert not stash.exists("sessions", "user:9")
    assert sorted(stash.keys("sessions")) == ["admin:1", "user:1", "user:2"]
    assert sorted(stash.keys("sessions", pattern="user:*")) == ["user:1", "user:2"]
    assert stash.info("sessions")["size"] == 3
    assert stash.delete("sessions", "user:2") is True
    assert stash.delete("sessions", "user:2") is False
    stash.ensure("cache")
    assert sorted(stash.tables()) == ["cache", "sessions"]
    stash.clear("sessions")
    assert stash.keys("sessions") == []
    assert stash.delete_table("sessions") is True
    with pytest.raises(StashTableNotFoundError):
        stash.keys("sessions")
    assert stash.tables() == ["cache"]


def test_table_view_is_dict_like(stash_pool):
    t = stash.table("cfg")
    t["a"] = 1
    t["b"] = [2]
    assert t["a"] == 1 and "b" in t and "z" not in t
    with pytest.raises(KeyError):
        t["z"]
    assert sorted(t) == ["a", "b"] and len(t) == 2
    assert dict(t.items()) == {"a": 1, "b": [2]}
    del t["a"]
    with pytest.raises(KeyError):
        del t["a"]
    assert t.get("a", 0) == 0
    assert t.incr("n", 5) == 5


def test_incr_and_compare_and_set(stash_pool):
    assert stash.incr("c", "hits") == 1
    assert stash.incr("c", "hits", 10) == 11
    assert stash.incr("c", "ratio", 0.5) == 0.5
    stash.put("c", "text", "x")
    with pytest.raises(StashError, match="cannot incr"):
        stash.incr("c", "text")
    assert stash.compare_and_set("locks", "job", None, "w1") is True  # missing counts as None
    assert stash.compare_and_set("locks", "job", None, "w2") is False
    assert stash.compare_and_set("locks", "job", "w1", "w2") is True
    assert stash.get("locks", "job") == "w2"
    assert stash.compare_and_set("locks", "job", "w2", None) is True  # None deletes
    assert not stash.exists("locks", "job")


def test_ttl_expires_keys(stash_pool):
    stash.put("tmp", "short", 1, ttl=0.2)
    stash.put("tmp", "long", 2, ttl=60)
    stash.put("tmp", "forever", 3)
    assert 0 < stash.ttl("tmp", "short") <= 0.2
    assert stash.ttl("tmp", "forever") is None
    wait_for(lambda: not stash.exists("tmp", "short"), what="expiry")
    assert stash.get("tmp", "short") is None
    assert sorted(stash.keys("tmp")) == ["forever", "long"]
    assert stash.incr("tmp", "hits", ttl=0.2) == 1
    wait_for(lambda: stash.get("tmp", "hits") is None, what="counter expiry")


def test_declared_stashes_exist_at_start(make_pool, monkeypatch):
    pool = make_pool(["sample_apps:StashedApp"], workers=1)
    monkeypatch.setenv("UNICORN_DIRTY_SOCKET", pool.path)
    assert sorted(stash.tables()) == ["declared_a", "declared_b"]


def test_incr_is_atomic_across_workers_threads_and_processes(stash_pool):
    n = 150
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "stash_incrementer.py"), "race", "k", str(n)],
            env=child_env(),
        )
        for _ in range(3)
    ]
    errors = []

    def from_workers():
        try:
            assert DirtyClient(stash_pool.path).execute(ECHO, "incr_many", "race", "k", n) == n
        except BaseException as exc:
            errors.append(exc)

    def from_thread():
        try:
            for _ in range(n):
                stash.incr("race", "k")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=from_workers) for _ in range(2)]
    threads += [threading.Thread(target=from_thread) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    for p in procs:
        assert p.wait(20) == 0
    assert errors == []
    assert stash.get("race", "k") == n * (3 + 2 + 2)


def test_compare_and_set_elects_exactly_one_winner(stash_pool):
    wins = []

    def contend(i):
        wins.append(
            DirtyClient(stash_pool.path).stash_call("cas", "elect", "leader", None, f"c{i}", None)
        )

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert wins.count(True) == 1


# -- the store itself, without processes ------------------------------------------------------


def test_store_rejects_unknown_ops_and_bad_arguments():
    store = StashStore()
    with pytest.raises(StashError, match="unknown stash operation"):
        store.apply("explode", ())
    with pytest.raises(StashError, match="bad arguments"):
        store.apply("put", ())
    with pytest.raises(StashError, match="not hashable"):
        store.apply("put", ("t", [1], 1))
    with pytest.raises(StashError, match="ttl"):
        store.apply("put", ("t", "k", 1, -1))


def test_store_expiry_sweep_drops_entries():
    store = StashStore()
    store.apply("put", ("t", "k", 1, 0.01))
    store.expire(time.monotonic() - 1)  # not yet due: kept
    assert "k" in store.tables["t"]
    store.expire(time.monotonic() + 0.02)  # as if 20 ms had passed, without waiting them
    assert store.tables["t"] == {}

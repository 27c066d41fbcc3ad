"""A separate process hammering one stash counter: python stash_incrementer.py TABLE KEY N."""

from __future__ import annotations

import sys

from unicorn_dirty import stash

table, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(n):
    stash.incr(table, key)

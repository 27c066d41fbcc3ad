"""Records which process imported it (in $COUNT_FILE), for the preload tests."""

from __future__ import annotations

import os

with open(os.environ["COUNT_FILE"], "a") as _f:
    _f.write(f"{os.getpid()}\n")


def app(path: str) -> str:
    return "counted"

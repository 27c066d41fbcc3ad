"""``python -m unicorn_core``: the same as the ``unicorn`` command (used by USR2 re-exec)."""

from __future__ import annotations

from unicorn_core.cli import main

if __name__ == "__main__":
    main()

"""``spew``: print every line the server executes (gunicorn's "nuclear option").

The trace function is installed in the master before it forks, so workers
inherit it in the thread that forked them; threads started later get it
through ``threading.settrace``. Each line goes to standard output as
``PID FILE:LINE: SOURCE``.
"""

from __future__ import annotations

import linecache
import os
import sys
import threading
from typing import Any

from unicorn_core.settings import Setting

SECTION = "Debugging"

SETTINGS = (
    Setting(
        name="spew",
        section=SECTION,
        cli=("--spew",),
        type="bool",
        default=False,
        doc="Print every line of Python the master and the workers execute, with "
        "its process id, file and line number, to standard output. For debugging "
        "only: it makes everything many times slower.",
    ),
)


def _spew(frame: Any, event: str, arg: Any) -> Any:
    if event == "line":
        filename = frame.f_code.co_filename
        lineno = frame.f_lineno
        source = linecache.getline(filename, lineno).rstrip()
        try:
            sys.stdout.write(f"{os.getpid()} {filename}:{lineno}: {source}\n")
        except (OSError, ValueError):
            pass
    return _spew


def install_spew() -> None:
    """Trace this thread and every thread started from now on."""
    sys.settrace(_spew)
    threading.settrace(_spew)

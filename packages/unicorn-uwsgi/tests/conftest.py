"""unicorn-uwsgi's tests: the packet builders and the driver live in support/,
found relative to this file so the suite runs the same against the source tree
and against an installed wheel."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "support"))

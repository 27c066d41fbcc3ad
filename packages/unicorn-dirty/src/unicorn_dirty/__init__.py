"""The dirty pool: stateful worker processes for long blocking work, with streaming, in unicorn or standalone."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

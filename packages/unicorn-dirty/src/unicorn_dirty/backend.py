"""Which arbiter serves the dirty socket: the local one, or the Ray front (`dirty_backend`)."""

from __future__ import annotations

import os

from .settings import DirtyConfig

BACKENDS = ("local", "ray")


def make_arbiter(cfg: object, socket_path: str, **kw: object):
    """A `DirtyArbiter`, or a `RayArbiter` when ``dirty_backend = "ray"`` (same constructor, same `run()`)."""
    config = cfg if isinstance(cfg, DirtyConfig) else DirtyConfig.from_object(cfg)
    backend = config.dirty_backend or "local"
    if backend == "local":
        from .arbiter import DirtyArbiter

        return DirtyArbiter(config, socket_path, **kw)
    if backend == "ray":
        # Ray replays a driver started by `uv run` in every worker unless told not
        # to, and reads that when it is imported
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        try:
            from .ray_backend import RayArbiter
        except ImportError as exc:
            raise ImportError(
                f"dirty_backend = 'ray' needs Ray: pip install 'unicorn-dirty[ray]' ({exc})"
            ) from None
        return RayArbiter(config, socket_path, **kw)
    raise ValueError(f"dirty_backend must be one of {', '.join(BACKENDS)}, not {backend!r}")

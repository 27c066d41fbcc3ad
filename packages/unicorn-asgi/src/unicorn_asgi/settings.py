"""The ASGI worker's own settings, contributed to core's registry.

``root_path``, ``keepalive``, ``worker_connections``, the request limits and
the proxy settings are core's (every worker reads them); only what is
particular to an asyncio ASGI server is declared here.
"""

from __future__ import annotations

from unicorn_core.settings import Setting

SECTION = "ASGI"

SETTINGS = (
    Setting(
        name="asgi_loop",
        section=SECTION,
        cli=("--asgi-loop",),
        type="choice",
        choices=("auto", "asyncio", "uvloop"),
        meta="STRING",
        default="auto",
        doc="The event loop of the `asgi` worker: `uvloop` (install "
        "`unicorn[uvloop]`), `asyncio` (the standard library's), or `auto`, "
        "which takes uvloop when it is installed.",
    ),
    Setting(
        name="asgi_lifespan",
        section=SECTION,
        cli=("--asgi-lifespan",),
        type="choice",
        choices=("auto", "on", "off"),
        meta="STRING",
        default="auto",
        doc="The ASGI lifespan protocol: `on` runs startup and shutdown and stops "
        "the worker when startup fails; `auto` does the same but carries on "
        "without it when the application raises on the lifespan scope (it does "
        "not support it); `off` never sends it.",
    ),
    Setting(
        name="asgi_disconnect_grace_period",
        section=SECTION,
        cli=("--asgi-disconnect-grace-period",),
        type="positive_int",
        meta="INT",
        default=3,
        doc="Seconds an application has, after its client went away in the "
        "middle of a request (it is told with `http.disconnect`), to finish and "
        "clean up before its task is cancelled. 0 cancels at once.",
    ),
)


def settings() -> tuple[Setting, ...]:
    """The ``unicorn.settings`` entry point of unicorn-asgi."""
    from unicorn_asgi.websocket import SETTINGS as WEBSOCKET

    return SETTINGS + WEBSOCKET

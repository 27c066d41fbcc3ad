"""``unicorn-dirty``: run a dirty pool on its own, with no HTTP server.

    unicorn-dirty tasks:EmailWorker tasks:ImageWorker -w 4 --socket /run/app/dirty.sock

Flags are generated from the dirty settings specs: each ``--dirty-NAME`` flag
also has the short standalone form ``--NAME``.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import shutil
import stat
import sys
import tempfile

from . import __version__
from .app import parse_app_path
from .backend import make_arbiter
from .settings import SETTINGS, DirtyConfig

_CONVERT = {"int": int, "positive_int": int, "float": float, "string": str}
_SHORT = {"dirty_workers": ["-w"]}


def private_dir(path: str) -> bool:
    """Whether `path` is a real directory of this user that no one else can write to."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def default_socket_path() -> tuple[str, bool]:
    """(socket path, whether its directory is ours to remove) when --socket is not given.

    `$XDG_RUNTIME_DIR/unicorn-dirty.sock` when that directory is private to
    this user; otherwise a fresh directory made by mkdtemp (mode 0700), never a
    fixed name another user could have created first.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and private_dir(runtime):
        return os.path.join(runtime, "unicorn-dirty.sock"), False
    directory = tempfile.mkdtemp(prefix=f"unicorn-dirty-{os.getuid()}-")
    return os.path.join(directory, "dirty.sock"), True


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unicorn-dirty",
        description="Run a dirty pool (stateful worker processes for long tasks) without an HTTP server.",
    )
    p.add_argument(
        "apps", nargs="*", metavar="APP", help="dirty app, module:Class or module:Class:N"
    )
    for spec in SETTINGS:
        if not spec["cli"] or spec["name"] == "dirty_apps":
            continue
        name = spec["name"]
        flags = (
            _SHORT.get(name, [])
            + ["--" + name.removeprefix("dirty_").replace("_", "-")]
            + spec["cli"]
        )
        help_text = spec["doc"].replace("%", "%%").split(". ")[0]
        p.add_argument(
            *flags,
            dest=name,
            type=_CONVERT.get(spec["type"], str),
            metavar=spec["meta"],
            default=None,
            choices=spec.get("choices"),
            help=help_text,
        )
    p.add_argument(
        "-c", "--config", metavar="FILE", help="Python file setting dirty_* variables and hooks"
    )
    p.add_argument(
        "--pythonpath", metavar="DIRS", help="comma-separated directories to add to sys.path"
    )
    p.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error", "critical"]
    )
    p.add_argument("--log-file", metavar="FILE", default="-", help="'-' for stderr (default)")
    p.add_argument("-p", "--pid", metavar="FILE", help="write the arbiter's pid to FILE")
    p.add_argument("--version", action="version", version=f"unicorn-dirty {__version__}")
    return p


def _config(args: argparse.Namespace) -> DirtyConfig:
    values: dict = {}
    if args.config:
        ns = runpy.run_path(args.config)
        values.update({k: v for k, v in ns.items() if k in DirtyConfig.__dataclass_fields__})
    for spec in SETTINGS:
        v = getattr(args, spec["name"], None)
        if v is not None:
            values[spec["name"]] = v
    if args.apps:
        values["dirty_apps"] = list(args.apps)
    cfg = DirtyConfig.from_object(argparse.Namespace(**values))
    if cfg.dirty_workers < 0:
        raise ValueError("dirty_workers must be 0 (pool disabled) or more")
    for name in (
        "dirty_threads",
        "dirty_timeout",
        "dirty_graceful_timeout",
        "dirty_max_payload",
        "dirty_max_queue",
        "dirty_max_clients",
        "dirty_max_client_buffer",
        "dirty_client_timeout",
    ):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be positive")
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = (
        logging.StreamHandler() if args.log_file == "-" else logging.FileHandler(args.log_file)
    )
    handler.setFormatter(
        logging.Formatter(
            "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S %z"
        )
    )
    log = logging.getLogger("unicorn.dirty")
    log.addHandler(handler)
    log.setLevel(args.log_level.upper())
    log.propagate = False
    for d in reversed((args.pythonpath or "").split(",")):
        if d:
            sys.path.insert(0, os.path.abspath(d))
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    private = None
    try:
        cfg = _config(args)
        if cfg.dirty_cancel_timeout < 0:
            raise ValueError("dirty_cancel_timeout must not be negative")
        if not cfg.dirty_apps:
            raise ValueError("no dirty apps given (APP arguments or dirty_apps in the config file)")
        for entry in cfg.dirty_apps:
            parse_app_path(entry)
        path, remove_dir = cfg.dirty_socket, False
        if not path:
            path, remove_dir = default_socket_path()
            private = os.path.dirname(path) if remove_dir else None
            log.info("unicorn-dirty: no --socket given; the socket is %s", path)
        arbiter = make_arbiter(cfg, path, log=log, remove_dir=remove_dir)
        if cfg.dirty_workers > 0:
            arbiter.load_apps()
    except Exception as exc:
        log.error("unicorn-dirty: %s: %s", type(exc).__name__, exc)
        if private:
            shutil.rmtree(private, ignore_errors=True)
        return 1
    if args.pid:
        with open(args.pid, "w") as f:
            f.write(f"{os.getpid()}\n")
    try:
        return arbiter.run()
    finally:
        if args.pid:
            try:
                os.unlink(args.pid)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())

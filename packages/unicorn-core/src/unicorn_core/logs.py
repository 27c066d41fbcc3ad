"""The error log and the access log.

The access log format (gunicorn's atoms: ``%(h)s %(r)s %({user-agent}i)s``
...) is compiled once into a Python function that computes only the atoms
the format names, so a worker's per-request cost is one call with the raw
pieces it already holds: ``log.access(remote, method, target, version,
status, length, request_time, request_headers, response_headers, environ)``.
"""

from __future__ import annotations

import base64
import logging
import logging.config
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from unicorn_core.errors import ConfigError
from unicorn_core.settings import Setting
from unicorn_core.statsd import Statsd

SECTION = "Logging"
ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_ACCESS_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

_ATOM = re.compile(r"%\(([^)]*)\)s")
_SIMPLE_ATOMS = frozenset(
    ["h", "l", "u", "t", "r", "s", "m", "U", "q", "H", "B", "b", "f", "a", "T", "M", "D", "L", "p"]
)


def _access_format(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("")
    compile_access_format(value)
    return value


SETTINGS = (
    Setting(
        name="accesslog",
        section=SECTION,
        cli=("--access-logfile",),
        meta="FILE",
        doc="Where to write the access log: a file path, or `-` for standard "
        "output. By default no access log is written.",
    ),
    Setting(
        name="access_log_format",
        section=SECTION,
        cli=("--access-logformat",),
        type=_access_format,
        meta="STRING",
        default=DEFAULT_ACCESS_FORMAT,
        doc="The access log line, with `%(ATOM)s` placeholders: `h` remote "
        "address, `l` `-`, `u` user name (HTTP Basic), `t` date, `r` request "
        "line, `s` status, `m` method, `U` path, `q` query string, `H` protocol, "
        "`B` response length, `b` response length or `-`, `f` referer, `a` user "
        "agent, `T` request time in seconds, `M` in milliseconds, `D` in "
        "microseconds, `L` in decimal seconds, `p` process id, `{name}i` a request "
        "header, `{name}o` a response header, `{name}e` an environment (WSGI "
        "environ) variable.",
    ),
    Setting(
        name="errorlog",
        section=SECTION,
        cli=("--error-logfile", "--log-file"),
        meta="FILE",
        default="-",
        doc="Where to write the error log: a file path, or `-` for standard error.",
    ),
    Setting(
        name="loglevel",
        section=SECTION,
        cli=("--log-level",),
        type="choice",
        choices=LEVELS,
        meta="LEVEL",
        default="info",
        doc="The error log's level: debug, info, warning, error or critical.",
    ),
    Setting(
        name="capture_output",
        section=SECTION,
        cli=("--capture-output",),
        type="bool",
        default=False,
        doc="Send the standard output and error of the master and workers (print "
        "calls, C extensions) to the error log file. Only when `errorlog` is a file.",
    ),
    Setting(
        name="logconfig",
        section=SECTION,
        cli=("--log-config",),
        meta="FILE",
        doc="A `logging.config.fileConfig` (ini) file applied after unicorn's own "
        "logging setup. The loggers are `unicorn.error` and `unicorn.access`.",
    ),
    Setting(
        name="logconfig_dict",
        section=SECTION,
        cli=("--log-config-dict",),
        type="dict",
        meta="JSON",
        default={},
        doc="A `logging.config.dictConfig` dictionary (a JSON object on the command "
        "line) applied after unicorn's own logging setup; wins over `logconfig`.",
    ),
)


# --- the access log formatter --------------------------------------------------

_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))

_date_cache: list[Any] = [0, ""]


def _request_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(now))
    return _date_cache[1]


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _pick_headers(headers: Any, wanted: frozenset[str]) -> dict[str, str]:
    """One pass over (name, value) pairs keeping the wanted (lower-case) names.

    Names may be ``bytes`` (as parsers give them) or ``str``; the wanted set
    holds both spellings so neither is decoded unless it is kept.
    """
    found: dict[str, str] = {}
    if headers is None:
        return found
    if isinstance(headers, Mapping):
        headers = headers.items()
    for name, value in headers:
        key = name.lower()
        if key in wanted:
            if key.__class__ is not str:
                key = key.decode("latin-1")
            if key not in found:
                found[key] = value if value.__class__ is str else _text(value)
    return found


def _both_spellings(names: set[str]) -> frozenset[Any]:
    return frozenset(names) | frozenset(n.encode("latin-1") for n in names)


def _environ_headers(environ: Mapping[str, Any] | None, wanted: frozenset[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    if environ:
        for name in wanted:
            if name.__class__ is not str:
                continue
            value = environ.get("HTTP_" + name.upper().replace("-", "_"))
            if value is not None:
                found[name] = str(value)
    return found


def _basic_user(authorization: str | None) -> str:
    if not authorization:
        return "-"
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic":
        return "-"
    try:
        user = base64.b64decode(token.strip(), validate=True).decode("utf-8", "replace")
    except ValueError:
        return "-"
    return user.partition(":")[0] or "-"


AccessFormatter = Callable[..., str]


def compile_access_format(fmt: str) -> AccessFormatter:
    """Compile an access log format into ``f(remote, method, target, version,
    status, length, request_time, req_headers, resp_headers, environ) -> str``.

    Raises ConfigError naming an unknown atom.
    """
    pieces: list[str] = []  # literal text and atom names, alternating
    pos = 0
    for match in _ATOM.finditer(fmt):
        pieces.append(fmt[pos : match.start()])
        pieces.append(match.group(1))
        pos = match.end()
    pieces.append(fmt[pos:])

    req_wanted: set[str] = set()
    resp_wanted: set[str] = set()
    exprs: list[str] = []
    consts: list[str] = []
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            if piece:
                consts.append(piece.replace("%%", "%"))
                exprs.append(f"K[{len(consts) - 1}]")
            continue
        atom = piece
        if atom in _SIMPLE_ATOMS:
            if atom == "f":
                req_wanted.add("referer")
            elif atom == "a":
                req_wanted.add("user-agent")
            elif atom == "u":
                req_wanted.add("authorization")
            exprs.append(_ATOM_EXPR[atom])
        elif atom.startswith("{") and "}" in atom and atom[-1] in "ioe" and atom[-2] == "}":
            name = atom[1:-2].lower()
            kind = atom[-1]
            if kind == "i":
                req_wanted.add(name)
                exprs.append(f"RQ.get({name!r}, '-')")
            elif kind == "o":
                resp_wanted.add(name)
                exprs.append(f"RS.get({name!r}, '-')")
            else:
                exprs.append(f"ENV({atom[1:-2]!r})")
        else:
            raise ConfigError(
                f"access_log_format: unknown atom %({atom})s; known atoms are "
                + " ".join(sorted(_SIMPLE_ATOMS))
                + " and {header}i {header}o {variable}e"
            )

    body = ["def access_line(remote, method, target, version, status, length,"]
    body.append("                request_time, req_headers, resp_headers, environ):")
    if req_wanted:
        body.append("    RQ = pick(req_headers, REQ) if req_headers is not None")
        body[-1] += " else env_headers(environ, REQ)"
    if resp_wanted:
        body.append("    RS = pick(resp_headers, RESP)")
    if any("ENV(" in e for e in exprs):
        body.append("    ENV = (lambda name: str(environ.get(name, '-'))) if environ else ")
        body[-1] += "(lambda name: '-')"
    body.append("    return " + (" + ".join(exprs) if exprs else "''"))
    namespace: dict[str, Any] = {
        "K": tuple(consts),
        "REQ": _both_spellings(req_wanted),
        "RESP": _both_spellings(resp_wanted),
        "pick": _pick_headers,
        "env_headers": _environ_headers,
        "date": _request_date,
        "basic_user": _basic_user,
        "PID": _PID,
        "text": _text,
    }
    exec("\n".join(body), namespace)  # the source is built above from fixed templates
    return namespace["access_line"]


_ATOM_EXPR = {
    "h": "(remote or '-')",
    "l": "'-'",
    "u": "basic_user(RQ.get('authorization'))",
    "t": "date()",
    "r": "f'{method} {target} {version}'",
    "s": "str(status)",
    "m": "method",
    "U": "target.partition('?')[0]",
    "q": "target.partition('?')[2]",
    "H": "version",
    "B": "str(length or 0)",
    "b": "(str(length) if length is not None else '-')",
    "f": "RQ.get('referer', '-')",
    "a": "RQ.get('user-agent', '-')",
    "T": "str(int(request_time))",
    "M": "str(int(request_time * 1000))",
    "D": "str(int(request_time * 1000000))",
    "L": "f'{request_time:.6f}'",
    "p": "f'<{PID[0]}>'",
}


# --- the logger ------------------------------------------------------------------


def _reopen_in_place(handler: logging.FileHandler) -> None:
    """Reopen a log file under the same fd number (USR1 after rotation).

    ``dup2`` swaps the file behind the descriptor atomically, so a thread
    writing at that moment writes to the old or the new file, never to a
    closed or reused descriptor.
    """
    stream = handler.stream
    if stream is None:
        handler.stream = handler._open()
        return
    stream.flush()
    fd = os.open(handler.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(fd, stream.fileno())
    finally:
        os.close(fd)


class Logger:
    """The error log (``unicorn.error``) and access log (``unicorn.access``)."""

    def __init__(self, cfg: Any) -> None:
        self.error_log = logging.getLogger("unicorn.error")
        self.error_log.propagate = False
        self.access_log = logging.getLogger("unicorn.access")
        self.access_log.propagate = False
        self.access_enabled = False
        self.statsd: Any = None
        self.cfg = cfg
        self._format: AccessFormatter = compile_access_format(DEFAULT_ACCESS_FORMAT)
        self._own_handlers: list[logging.Handler] = []
        self.setup(cfg)

    # configuration

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg
        for handler in self._own_handlers:
            for logger in (self.error_log, self.access_log):
                logger.removeHandler(handler)
            handler.close()
        self._own_handlers = []
        self.error_log.setLevel(cfg.loglevel.upper())
        self.access_log.setLevel(logging.INFO)

        self._add_handler(self.error_log, cfg.errorlog, ERROR_FORMAT, sys.stderr)
        if cfg.accesslog:
            self._add_handler(self.access_log, cfg.accesslog, "%(message)s", sys.stdout)

        if cfg.logconfig_dict:
            config = dict(cfg.logconfig_dict)
            config.setdefault("version", 1)
            config.setdefault("disable_existing_loggers", False)
            try:
                logging.config.dictConfig(config)
            except (ValueError, TypeError, AttributeError, ImportError) as exc:
                raise ConfigError(f"logconfig_dict rejected: {exc}") from None
        elif cfg.logconfig:
            if not os.path.exists(cfg.logconfig):
                raise ConfigError(f"logconfig file {cfg.logconfig!r} not found")
            try:
                logging.config.fileConfig(cfg.logconfig, disable_existing_loggers=False)
            except Exception as exc:
                raise ConfigError(f"logconfig file {cfg.logconfig!r} rejected: {exc}") from None
        self.access_enabled = bool(self.access_log.handlers) and self.access_log.isEnabledFor(
            logging.INFO
        )
        # Without a logging config of the user's, the access log is only our
        # handler: write each line to its fd in one system call (O_APPEND makes
        # it atomic between threads and processes) instead of a logging record.
        self._access_fd: int | None = None
        if cfg.accesslog and not cfg.logconfig_dict and not cfg.logconfig:
            try:
                self._access_fd = self.access_log.handlers[-1].stream.fileno()  # type: ignore[attr-defined]
            except (AttributeError, OSError, ValueError):
                self._access_fd = None
        self._format = compile_access_format(cfg.access_log_format)
        if cfg.capture_output and cfg.errorlog != "-":
            self._capture_output()
        self.statsd = Statsd.from_config(cfg)

    def _add_handler(
        self, logger: logging.Logger, target: str, fmt: str, stream: Any
    ) -> logging.Handler:
        if target == "-":
            handler: logging.Handler = logging.StreamHandler(stream)
        else:
            try:
                handler = logging.FileHandler(target)
            except OSError as exc:
                raise ConfigError(f"cannot open log file {target!r}: {exc.strerror}") from None
        handler.setFormatter(logging.Formatter(fmt, DATE_FORMAT))
        logger.addHandler(handler)
        self._own_handlers.append(handler)
        return handler

    def _capture_output(self) -> None:
        fd = os.open(self.cfg.errorlog, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    def reopen_files(self) -> None:
        """USR1: reopen every file the logs write to (after log rotation)."""
        if self.cfg.capture_output and self.cfg.errorlog != "-":
            self._capture_output()
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                if isinstance(handler, logging.FileHandler):
                    with handler.lock:  # type: ignore[union-attr]
                        _reopen_in_place(handler)

    # the error log

    def critical(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.critical(msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.error(msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.warning(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.info(msg, *args, **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.debug(msg, *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.exception(msg, *args, **kwargs)

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.log(level, msg, *args, **kwargs)

    # the access log

    def access(
        self,
        remote: str,
        method: str,
        target: str,
        version: str,
        status: int,
        length: int | None,
        request_time: float,
        request_headers: Iterable[tuple[Any, Any]] | Mapping[Any, Any] | None = None,
        response_headers: Iterable[tuple[Any, Any]] | Mapping[Any, Any] | None = None,
        environ: Mapping[str, Any] | None = None,
    ) -> None:
        """Log one request. ``target`` is the raw request target (path and query),
        ``version`` the protocol text (``HTTP/1.1``), ``request_time`` seconds.
        Headers are (name, value) pairs of str or bytes; when ``request_headers``
        is None they are read from ``environ``'s ``HTTP_*`` keys."""
        if self.statsd is not None:
            self.statsd.request(status, request_time)
        if not self.access_enabled:
            return
        try:
            line = self._format(
                remote,
                method,
                target,
                version,
                status,
                length,
                request_time,
                request_headers,
                response_headers,
                environ,
            )
        except Exception:
            self.error_log.exception("Failed to format the access log line")
            return
        if self._access_fd is None:
            self.access_log.info(line)
            return
        try:
            os.write(self._access_fd, (line + "\n").encode("utf-8", "backslashreplace"))
        except OSError:
            pass

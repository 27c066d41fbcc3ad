"""The error log and the access log.

The access log format (gunicorn's atoms: ``%(h)s %(r)s %({user-agent}i)s``
...) is compiled once into a Python function that computes only the atoms
the format names, so a worker's per-request cost is one call with the raw
pieces it already holds: ``log.access(remote, method, target, version,
status, length, request_time, request_headers, response_headers, environ)``.

Each log answers to two logger names, unicorn's and gunicorn's
(``unicorn.error`` / ``gunicorn.error``, ``unicorn.access`` /
``gunicorn.access``), so logging configurations and application code written
for gunicorn keep working. The messages are written under the unicorn name;
the other name forwards to it. When a logging configuration sets up only the
gunicorn name, the direction turns round: the unicorn name forwards there, and
the configuration the user wrote is the one that writes.
"""

from __future__ import annotations

import base64
import json
import logging
import logging.config
import logging.handlers
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from unicorn_core.errors import ConfigError
from unicorn_core.settings import Setting, import_object
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


def _syslog_address(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("")
    parse_syslog_address(value)
    return value


def _facility(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("")
    name = value.strip().lower()
    if name not in logging.handlers.SysLogHandler.facility_names:
        raise ValueError(
            "one of " + ", ".join(sorted(logging.handlers.SysLogHandler.facility_names))
        )
    return name


def _class_or_path(value: Any) -> Any:
    if isinstance(value, type):
        return value
    if not isinstance(value, str) or not value.strip():
        raise TypeError("")
    return value.strip()


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
        "logging setup. The loggers are `unicorn.error` and `unicorn.access`; "
        "gunicorn's names `gunicorn.error` and `gunicorn.access` work as well.",
    ),
    Setting(
        name="logconfig_dict",
        section=SECTION,
        cli=("--log-config-dict",),
        type="dict",
        meta="JSON",
        default={},
        doc="A `logging.config.dictConfig` dictionary (a JSON object on the command "
        "line) applied after unicorn's own logging setup; wins over "
        "`logconfig_json` and `logconfig`. Name the loggers `unicorn.error` / "
        "`unicorn.access` or gunicorn's `gunicorn.error` / `gunicorn.access`.",
    ),
    Setting(
        name="logconfig_json",
        section=SECTION,
        cli=("--log-config-json",),
        meta="FILE",
        doc="A JSON file holding a `logging.config.dictConfig` dictionary, applied "
        "like `logconfig_dict` (which wins over it); wins over `logconfig`.",
    ),
    Setting(
        name="logger_class",
        section=SECTION,
        cli=("--logger-class",),
        type=_class_or_path,
        meta="STRING",
        default="unicorn_core.logs.Logger",
        doc="The class that writes the error and access logs: the dotted path to "
        "a subclass of `unicorn_core.logs.Logger`. gunicorn's "
        "`gunicorn.glogging.Logger` and `gunicorn.instrument.statsd.Statsd` name "
        "unicorn's own (which sends StatsD metrics when `statsd_host` is set); a "
        "subclass of gunicorn's Logger is refused, with the reason, since its "
        "`access()` takes gunicorn's request objects.",
    ),
    Setting(
        name="syslog",
        section=SECTION,
        cli=("--log-syslog",),
        type="bool",
        default=False,
        doc="Also send the error log, and the access log unless "
        "`disable_redirect_access_to_syslog`, to syslog at `syslog_addr`. Each "
        "line is tagged `gunicorn.PREFIX.error` or `gunicorn.PREFIX.access`, as "
        "gunicorn tags them, so existing syslog filters keep matching.",
    ),
    Setting(
        name="syslog_addr",
        section=SECTION,
        cli=("--log-syslog-to",),
        type=_syslog_address,
        meta="SYSLOG_ADDR",
        default="udp://localhost:514",
        doc="Where syslog listens: `udp://HOST:PORT`, `tcp://HOST:PORT`, or "
        "`unix://PATH` with an optional `#dgram` or `#stream` (by default both "
        "are tried).",
    ),
    Setting(
        name="syslog_prefix",
        section=SECTION,
        cli=("--log-syslog-prefix",),
        meta="SYSLOG_PREFIX",
        doc="The program name in syslog tags (`gunicorn.PREFIX.error`). By "
        "default the process name (`proc_name`, else the application's name).",
    ),
    Setting(
        name="syslog_facility",
        section=SECTION,
        cli=("--log-syslog-facility",),
        type=_facility,
        meta="SYSLOG_FACILITY",
        default="user",
        doc="The syslog facility: `user`, `daemon`, `local0` ... `local7` and the "
        "other names of RFC 5424.",
    ),
    Setting(
        name="disable_redirect_access_to_syslog",
        section=SECTION,
        cli=("--disable-redirect-access-to-syslog",),
        type="bool",
        default=False,
        doc="With `syslog`, send only the error log there, not the access log.",
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


def parse_syslog_address(text: str) -> tuple[Any, int | None]:
    """``syslog_addr`` -> (address, socket type) for ``SysLogHandler``."""
    if text.startswith("unix://"):
        path, _, kind = text[len("unix://") :].partition("#")
        if not path:
            raise ValueError("unix:// needs a path")
        types = {"": None, "dgram": socket.SOCK_DGRAM, "stream": socket.SOCK_STREAM}
        if kind not in types:
            raise ValueError(f"unknown socket type #{kind}; use #dgram or #stream")
        return path, types[kind]
    for scheme, socktype in (("udp://", socket.SOCK_DGRAM), ("tcp://", socket.SOCK_STREAM)):
        if text.startswith(scheme):
            rest = text[len(scheme) :]
            if rest.startswith("["):
                host, _, port = rest[1:].partition("]")
                port = port.lstrip(":")
            else:
                host, _, port = rest.partition(":")
            if port and not port.isdigit():
                raise ValueError(f"{port!r} is not a port number")
            return (host or "localhost", int(port or 514)), socktype
    raise ValueError("udp://HOST:PORT, tcp://HOST:PORT or unix://PATH")


class _Forward(logging.Handler):
    """Hands every record to another logger: the second name of the same log."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def handle(self, record: logging.LogRecord) -> bool:  # no lock, no filters here
        self.target.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


class Logger:
    """The error log (``unicorn.error``) and access log (``unicorn.access``),
    also reachable as ``gunicorn.error`` and ``gunicorn.access``."""

    def __init__(self, cfg: Any) -> None:
        self.error_log = logging.getLogger("unicorn.error")
        self.error_log.propagate = False
        self.access_log = logging.getLogger("unicorn.access")
        self.access_log.propagate = False
        self._aliases = (
            (self.error_log, logging.getLogger("gunicorn.error")),
            (self.access_log, logging.getLogger("gunicorn.access")),
        )
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
        for ours, theirs in self._aliases:
            for logger in (ours, theirs):
                for handler in list(logger.handlers):
                    if isinstance(handler, _Forward):
                        logger.removeHandler(handler)
        self.error_log.setLevel(cfg.loglevel.upper())
        self.access_log.setLevel(logging.INFO)

        own_error = self._add_handler(self.error_log, cfg.errorlog, ERROR_FORMAT, sys.stderr)
        own: dict[logging.Logger, list[logging.Handler]] = {
            self.error_log: [own_error],
            self.access_log: [],
        }
        if cfg.accesslog:
            own[self.access_log].append(
                self._add_handler(self.access_log, cfg.accesslog, "%(message)s", sys.stdout)
            )
        levels = {self.error_log: self.error_log.level, self.access_log: logging.INFO}
        if cfg.syslog:
            self._add_syslog_handler(self.error_log, "error")
            if not cfg.disable_redirect_access_to_syslog:
                self._add_syslog_handler(self.access_log, "access")

        # a logging configuration replaces the handlers of each logger it names:
        # these markers tell afterwards which names it configured
        markers = {}
        for ours, theirs in self._aliases:
            markers[ours] = logging.NullHandler()
            ours.addHandler(markers[ours])
            markers[theirs] = _Forward(ours)
            theirs.addHandler(markers[theirs])
            theirs.propagate = False
            theirs.setLevel(ours.level)

        user_config = self._apply_user_config(cfg)

        for ours, theirs in self._aliases:
            configured_ours = markers[ours] not in ours.handlers
            configured_theirs = markers[theirs] not in theirs.handlers
            ours.removeHandler(markers[ours])
            if configured_theirs and not configured_ours:
                # only gunicorn's name was configured: that configuration writes
                for handler in own[ours]:
                    ours.removeHandler(handler)
                ours.addHandler(_Forward(theirs))
                ours.setLevel(theirs.level or levels[ours])
            elif not configured_theirs:
                theirs.setLevel(ours.getEffectiveLevel())
        self.access_enabled = bool(self.access_log.handlers) and self.access_log.isEnabledFor(
            logging.INFO
        )
        # Without a logging config of the user's, the access log is only our
        # handler: write each line to its fd in one system call (O_APPEND makes
        # it atomic between threads and processes) instead of a logging record.
        self._access_fd: int | None = None
        if cfg.accesslog and not user_config and not cfg.syslog:
            try:
                self._access_fd = self.access_log.handlers[-1].stream.fileno()  # type: ignore[attr-defined]
            except (AttributeError, OSError, ValueError):
                self._access_fd = None
        self._format = compile_access_format(cfg.access_log_format)
        if cfg.capture_output and cfg.errorlog != "-":
            self._capture_output()
        self.statsd = Statsd.from_config(cfg)

    def _apply_user_config(self, cfg: Any) -> bool:
        """``logconfig_dict``, else ``logconfig_json``, else ``logconfig``; True if any."""
        if cfg.logconfig_dict:
            self._dict_config(dict(cfg.logconfig_dict), "logconfig_dict")
            return True
        if cfg.logconfig_json:
            try:
                with open(cfg.logconfig_json) as f:
                    config = json.load(f)
            except OSError as exc:
                raise ConfigError(
                    f"logconfig_json file {cfg.logconfig_json!r}: {exc.strerror}"
                ) from None
            except ValueError as exc:
                raise ConfigError(
                    f"logconfig_json file {cfg.logconfig_json!r} is not JSON: {exc}"
                ) from None
            if not isinstance(config, dict):
                raise ConfigError(f"logconfig_json file {cfg.logconfig_json!r} holds no object")
            self._dict_config(config, f"logconfig_json file {cfg.logconfig_json!r}")
            return True
        if cfg.logconfig:
            if not os.path.exists(cfg.logconfig):
                raise ConfigError(f"logconfig file {cfg.logconfig!r} not found")
            try:
                logging.config.fileConfig(cfg.logconfig, disable_existing_loggers=False)
            except Exception as exc:
                raise ConfigError(f"logconfig file {cfg.logconfig!r} rejected: {exc}") from None
            return True
        return False

    @staticmethod
    def _dict_config(config: dict[str, Any], what: str) -> None:
        config.setdefault("version", 1)
        config.setdefault("disable_existing_loggers", False)
        try:
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise ConfigError(f"{what} rejected: {exc}") from None

    def _add_syslog_handler(self, logger: logging.Logger, kind: str) -> None:
        cfg = self.cfg
        address, socktype = parse_syslog_address(cfg.syslog_addr)
        facility = logging.handlers.SysLogHandler.facility_names[cfg.syslog_facility]
        try:
            handler = logging.handlers.SysLogHandler(address, facility, socktype)
        except OSError as exc:
            raise ConfigError(
                f"syslog: cannot reach {cfg.syslog_addr!r}: {exc.strerror or exc}"
            ) from None
        name = cfg.syslog_prefix or cfg.proc_name or cfg.default_proc_name or cfg.app_uri
        tag = f"gunicorn.{str(name or 'unicorn').replace(':', '.')}.{kind}"
        handler.setFormatter(logging.Formatter(f"{tag}: [%(process)d] %(message)s"))
        logger.addHandler(handler)
        self._own_handlers.append(handler)

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

    # With StatsD, critical/error/warning/exception count as gunicorn.log.LEVEL,
    # and ``extra={"metric": NAME, "value": V, "mtype": "gauge"|"counter"|
    # "histogram"|"timer"}`` on any call sends that metric, as gunicorn's does.

    def critical(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.critical(msg, *args, **kwargs)
        if self.statsd is not None:
            self.statsd.log_line("critical", kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.error(msg, *args, **kwargs)
        if self.statsd is not None:
            self.statsd.log_line("error", kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.warning(msg, *args, **kwargs)
        if self.statsd is not None:
            self.statsd.log_line("warning", kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.info(msg, *args, **kwargs)
        if self.statsd is not None:
            self.statsd.log_line(None, kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.debug(msg, *args, **kwargs)
        if self.statsd is not None:
            self.statsd.log_line(None, kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.exception(msg, *args, **kwargs)
        if self.statsd is not None:
            self.statsd.log_line("exception", kwargs)

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.log(level, msg, *args, **kwargs)
        if self.statsd is not None:
            self.statsd.log_line(None, kwargs)

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


#: gunicorn's logger classes, which unicorn's own Logger stands in for
_GUNICORN_LOGGERS = frozenset({"gunicorn.glogging.Logger", "gunicorn.instrument.statsd.Statsd"})


def logger_class(cfg: Any) -> type[Logger]:
    """The class ``logger_class`` names (unicorn's Logger for gunicorn's own)."""
    value = getattr(cfg, "logger_class", None) or "unicorn_core.logs.Logger"
    if isinstance(value, str):
        path = value.replace(":", ".")
        if path in _GUNICORN_LOGGERS or path == "unicorn_core.logs.Logger":
            return Logger
        try:
            value = import_object(value)
        except ValueError as exc:
            raise ConfigError(f"logger_class {path!r}: {exc}") from None
    if isinstance(value, type) and issubclass(value, Logger):
        return value
    name = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', value)}"
    if isinstance(value, type) and any(
        f"{k.__module__}.{k.__qualname__}" in _GUNICORN_LOGGERS for k in value.__mro__
    ):
        raise ConfigError(
            f"logger_class {name!r} extends gunicorn's Logger, whose access(resp, req, "
            "environ, request_time) takes gunicorn's request objects; subclass "
            "unicorn_core.logs.Logger instead (see docs/migrating-from-gunicorn.md)"
        )
    raise ConfigError(f"logger_class {name!r} is not a subclass of unicorn_core.logs.Logger")


def make_logger(cfg: Any) -> Logger:
    """The logger ``cfg`` asks for."""
    return logger_class(cfg)(cfg)

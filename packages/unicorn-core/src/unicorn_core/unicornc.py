"""``unicornc``: talk to a running unicorn master over its control socket.

    unicornc show workers            # one command, a table
    unicornc -j show stats           # the same data as JSON, for scripts
    unicornc -s /run/app.ctl         # interactive, with readline history
    unicornc -c "worker add 2"       # gunicornc's spelling works too

Exit status: 0 when the command succeeded, 1 when the server refused it,
2 when the socket cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Any

from unicorn_core.control import default_socket_path

EXIT_REFUSED = 1
EXIT_UNREACHABLE = 2


class Unreachable(Exception):
    """The control socket cannot be reached; the message says what to change."""


def request(path: str, command: str, timeout: float = 10.0) -> dict[str, Any]:
    """Send one command; return the server's decoded reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise Unreachable(
                f"no control socket at {path}: is unicorn running? "
                "(point at it with -s PATH, the server's control_socket)"
            ) from None
        except PermissionError:
            raise Unreachable(
                f"permission denied on {path}: run as the server's user "
                "or widen control_socket_mode"
            ) from None
        except OSError as exc:
            raise Unreachable(f"cannot connect to {path}: {exc.strerror or exc}") from None
        sock.sendall(command.strip().encode("utf-8") + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise Unreachable(f"no answer from {path} within {timeout:.0f}s") from None
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    if not data:
        raise Unreachable(f"{path} closed the connection without an answer")
    try:
        reply = json.loads(data)
    except ValueError:
        raise Unreachable(f"{path} answered something that is not JSON: {data[:80]!r}") from None
    if not isinstance(reply, dict) or "ok" not in reply:
        raise Unreachable(f"{path} answered an unexpected shape: {data[:80]!r}")
    return reply


# --- human output --------------------------------------------------------------------


def _size(value: Any) -> str:
    if not isinstance(value, int):
        return "-"
    return f"{value / 1024**2:.1f}M"


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str, Any]]) -> str:
    head = [title for title, _, _ in columns]
    body = [[fmt(row.get(key)) for _, key, fmt in columns] for row in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [head, *body]
    ]
    return "\n".join(lines)


_WORKER_COLUMNS = [
    ("PID", "pid", str),
    ("AGE", "age", str),
    ("UPTIME", "uptime", lambda v: f"{v:.0f}s"),
    ("REQUESTS", "requests", str),
    ("RSS", "rss", _size),
    ("STATE", "state", str),
    ("LAST_BEAT", "last_beat", lambda v: f"{v:.1f}s ago"),
]


def format_result(command: str, result: Any) -> str:
    words = command.split()
    if words[:2] == ["show", "workers"] and isinstance(result, list):
        return _table(result, _WORKER_COLUMNS) + f"\n\nTotal: {len(result)} workers"
    if isinstance(result, list):
        return "\n".join(str(item) for item in result)
    if isinstance(result, dict):
        width = max((len(str(k)) for k in result), default=0)
        return "\n".join(
            f"{str(k).ljust(width)}  {v if isinstance(v, str) else json.dumps(v)}"
            for k, v in result.items()
        )
    return str(result)


# --- the command line ------------------------------------------------------------------


def _run_one(path: str, command: str, as_json: bool) -> int:
    try:
        reply = request(path, command)
    except Unreachable as exc:
        print(f"unicornc: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if as_json:
        print(json.dumps(reply.get("result") if reply["ok"] else reply, indent=2))
    elif reply["ok"]:
        print(format_result(command, reply.get("result")))
    else:
        print(f"unicornc: {reply.get('error')}", file=sys.stderr)
    return 0 if reply["ok"] else EXIT_REFUSED


def _interactive(path: str, as_json: bool) -> int:
    try:
        import readline  # noqa: F401 - line editing and history for input()
    except ImportError:
        pass
    print(f"Connected to {path}\nType 'help' for the commands, 'quit' to leave.")
    status = 0
    while True:
        try:
            line = input("unicorn> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return status
        if line in ("quit", "exit"):
            return status
        if line:
            status = _run_one(path, line, as_json)
            if status == EXIT_UNREACHABLE:
                return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="unicornc",
        description="Inspect and steer a running unicorn server through its control socket.",
    )
    parser.add_argument(
        "-s",
        "--socket",
        default=None,
        metavar="PATH",
        help=f"the server's control_socket (default: {default_socket_path()})",
    )
    parser.add_argument("-c", "--command", default=None, help="run this one command and exit")
    parser.add_argument("-j", "--json", action="store_true", help="print the result as JSON")
    parser.add_argument("words", nargs="*", help="the command, e.g. show workers")
    args = parser.parse_args(argv)
    path = args.socket or default_socket_path()
    if args.command and args.words:
        parser.error("give the command either with -c or as words, not both")
    command = args.command or " ".join(args.words)
    if not command:
        return _interactive(path, args.json)
    return _run_one(path, command, args.json)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The import rules of the design, checked over packages/*/src (run from the root).

Two rules, both static (every ``import`` statement, at module level or inside a
function):

1. Who may import whom among our packages (docs/architecture.md, "Who imports
   whom"): a package imports only the packages of ours listed for it.
2. What else a package may import at module level: the standard library, and
   the third-party modules listed for it. A package may import an optional
   dependency only inside a function (lazily, behind its extra), so that it
   imports with nothing but its declared dependencies installed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

OURS = {
    "unicorn_http",
    "unicorn_uwsgi",
    "unicorn_core",
    "unicorn_workers",
    "unicorn_asgi",
    "unicorn_dirty",
}
#: package -> the packages of ours it may import
MAY_IMPORT = {
    "unicorn_http": set(),
    "unicorn_uwsgi": {"unicorn_http"},
    "unicorn_core": set(),
    "unicorn_workers": {"unicorn_core", "unicorn_http", "unicorn_uwsgi"},
    "unicorn_asgi": {"unicorn_core", "unicorn_http", "unicorn_uwsgi"},
    "unicorn_dirty": set(),
}
#: package -> third-party modules it may import at module level (its required
#: dependencies; optional ones only inside functions or in the modules named here)
THIRD_PARTY = {
    "unicorn_http": {},
    "unicorn_uwsgi": {},
    "unicorn_core": {},
    "unicorn_workers": {},
    "unicorn_asgi": {},
    "unicorn_dirty": {},
}
#: module (dotted) -> third-party modules it may import at module level, because
#: the module itself is imported only when its extra is installed
OPTIONAL_MODULES = {
    "unicorn_http.h2": {"h2", "hpack", "hyperframe"},
    # imported by unicorn_dirty.backend only when dirty_backend is "ray"
    "unicorn_dirty.ray_backend": {"ray"},
}


def _top(name: str) -> str:
    return name.split(".")[0]


def _module_level(tree: ast.Module):
    """Import nodes not inside a function (class bodies and if-blocks count as module level)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                stack.append(child)


def _names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def _guarded(tree: ast.Module) -> set[int]:
    """Line numbers of imports inside ``try: ... except ImportError`` (optional speedups)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        lines.add(sub.lineno)
    return lines


def check(root: Path) -> list[str]:
    broken = []
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for src in sorted(root.glob("packages/*/src")):
        for path in sorted(src.rglob("*.py")):
            rel = path.relative_to(src)
            own = rel.parts[0]
            if own not in MAY_IMPORT:
                continue
            dotted = ".".join(rel.with_suffix("").parts)
            if dotted.endswith(".__init__"):
                dotted = dotted[: -len(".__init__")]
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            where = path.relative_to(root)
            for node in ast.walk(tree):
                for name in _names(node):
                    top = _top(name)
                    if top in OURS and top != own and top not in MAY_IMPORT[own]:
                        broken.append(f"{where}:{node.lineno}: {own} must not import {name}")
            allowed = set(THIRD_PARTY[own]) | OPTIONAL_MODULES.get(dotted, set())
            guarded = _guarded(tree)
            for node in _module_level(tree):
                for name in _names(node):
                    top = _top(name)
                    if top in OURS or top in stdlib or top in allowed:
                        continue
                    if node.lineno in guarded:
                        continue
                    broken.append(
                        f"{where}:{node.lineno}: {name} at module level: {own} may import it "
                        "only inside a function (it is not a required dependency)"
                    )
    return broken


def main() -> int:
    root = Path.cwd()
    if not (root / "packages").is_dir():
        print("check_imports: run from the repository root", file=sys.stderr)
        return 2
    broken = check(root)
    for line in broken:
        print(line)
    if broken:
        print(f"import rules broken in {len(broken)} place(s)")
        return 1
    files = sum(1 for _ in root.glob("packages/*/src/**/*.py"))
    print(f"import rules kept in {files} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""tools/check_imports.py: the design's import rules, enforced from the repository."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "check_imports.py"


def _load():
    spec = importlib.util.spec_from_file_location("check_imports", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _tree(tmp: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp / "packages" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp


def test_the_repository_keeps_the_rules():
    result = subprocess.run(
        [sys.executable, str(TOOL)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "import rules kept" in result.stdout


def test_core_importing_a_worker_package_is_refused(tmp_path):
    root = _tree(tmp_path, {"unicorn-core/src/unicorn_core/bad.py": "import unicorn_asgi\n"})
    broken = _load().check(root)
    assert len(broken) == 1 and "unicorn_core must not import unicorn_asgi" in broken[0]


def test_a_lazy_import_of_another_package_is_refused_too(tmp_path):
    text = "def f():\n    from unicorn_core import settings\n"
    root = _tree(tmp_path, {"unicorn-dirty/src/unicorn_dirty/bad.py": text})
    assert "unicorn_dirty must not import unicorn_core" in _load().check(root)[0]


def test_an_optional_dependency_only_inside_a_function(tmp_path):
    root = _tree(
        tmp_path,
        {
            "unicorn-dirty/src/unicorn_dirty/eager.py": "import ray\n",
            "unicorn-dirty/src/unicorn_dirty/lazy.py": "def f():\n    import ray\n",
            "unicorn-dirty/src/unicorn_dirty/guarded.py": (
                "try:\n    import uvloop\nexcept ImportError:\n    uvloop = None\n"
            ),
        },
    )
    broken = _load().check(root)
    assert len(broken) == 1 and "eager.py" in broken[0] and "ray at module level" in broken[0]

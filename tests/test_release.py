"""tools/release.py and tools/check_release.py, run in scratch clones of the repository.

The release goes all the way (bump, changelog move, sdist and wheel built and
twine-checked, commit, tag) except the isolated-wheel tests, which `make
test` runs anyway (`--skip-isolated`).
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "release test",
    "GIT_AUTHOR_EMAIL": "release-test@example.invalid",
    "GIT_COMMITTER_NAME": "release test",
    "GIT_COMMITTER_EMAIL": "release-test@example.invalid",
}


def _uv() -> str:
    found = shutil.which("uv") or ROOT / ".venv-tools" / "bin" / "uv"
    return str(found)


def _env() -> dict[str, str]:
    return {**os.environ, **GIT_ENV, "UV": _uv()}


def git(clone: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=clone, env=_env(), check=True, capture_output=True, text=True
    ).stdout


def tool(clone: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, f"tools/{name}", *args],
        cwd=clone,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )


def scratch_clone(tmp_path: Path) -> Path:
    """A clone of the repository at the work tree's HEAD (commit what you test)."""
    clone = tmp_path / "repo"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
        check=True,
        env=_env(),
    )
    return clone


def unreleased_text(changelog: str) -> str:
    """The text between the first `## ` heading and the next one."""
    parts = re.split(r"(?m)^## ", changelog)
    return parts[1].partition("\n")[2].strip()


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A scratch clone after `tools/release.py http minor`."""
    clone = scratch_clone(tmp_path_factory.mktemp("release"))
    before = {
        "changelog": (clone / "packages/unicorn-http/CHANGELOG.md").read_text(),
        "version": tomllib.loads((clone / "packages/unicorn-http/pyproject.toml").read_text())[
            "project"
        ]["version"],
        "head": git(clone, "rev-parse", "HEAD").strip(),
    }
    result = tool(clone, "release.py", "http", "minor", "--skip-isolated")
    assert result.returncode == 0, result.stdout + result.stderr
    return clone, before, result


def _next_minor(version: str) -> str:
    major, minor = (int(x) for x in version.split(".")[:2])
    return f"{major}.{minor + 1}.0"


def test_release_bumps_the_version_in_pyproject_and_dunder(released):
    clone, before, _ = released
    new = _next_minor(before["version"])
    meta = tomllib.loads((clone / "packages/unicorn-http/pyproject.toml").read_text())
    assert meta["project"]["version"] == new
    init = (clone / "packages/unicorn-http/src/unicorn_http/__init__.py").read_text()
    assert f'__version__ = "{new}"' in init


def test_release_moves_unreleased_under_the_new_version(released):
    clone, before, _ = released
    new = _next_minor(before["version"])
    old_entries = unreleased_text(before["changelog"])
    assert old_entries, "the test needs something under Unreleased to move"
    text = (clone / "packages/unicorn-http/CHANGELOG.md").read_text()
    today = datetime.date.today().isoformat()
    assert text.startswith("# Changelog — unicorn-http\n\n## Unreleased\n\n")
    assert unreleased_text(text) == ""
    section = text.split(f"## {new} — {today}\n", 1)[1]
    assert section.strip().startswith(old_entries.splitlines()[0])
    # every entry line survived the move
    for line in old_entries.splitlines():
        assert line in section


def test_release_builds_a_checked_sdist_and_wheel_of_the_new_version(released):
    clone, before, result = released
    new = _next_minor(before["version"])
    out = clone / "dist" / f"unicorn-http-{new}"
    wheel = out / f"unicorn_http-{new}-py3-none-any.whl"
    sdist = out / f"unicorn_http-{new}.tar.gz"
    assert wheel.is_file() and sdist.is_file()
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(f"unicorn_http-{new}.dist-info/METADATA").decode()
        init = zf.read("unicorn_http/__init__.py").decode()
    assert f"\nVersion: {new}\n" in metadata
    assert f'__version__ = "{new}"' in init
    assert result.stdout.count("PASSED") == 2  # twine check, once per file


def test_release_commits_and_tags(released):
    clone, before, _ = released
    new = _next_minor(before["version"])
    tag = f"unicorn-http-v{new}"
    assert (
        git(clone, "rev-parse", f"{tag}^{{commit}}").strip()
        == git(clone, "rev-parse", "HEAD").strip()
    )
    assert git(clone, "rev-parse", "HEAD~1").strip() == before["head"]
    assert git(clone, "status", "--porcelain", "--untracked-files=no") == ""
    assert git(clone, "log", "-1", "--format=%s").strip() == f"unicorn-http {new}"
    assert git(clone, "cat-file", "-t", tag).strip() == "tag"  # annotated


def test_release_widens_the_ranges_that_would_leave_the_new_version_out(released):
    clone, before, _ = released
    new = _next_minor(before["version"])
    root = tomllib.loads((clone / "pyproject.toml").read_text())["project"]
    http_reqs = [r for r in root["dependencies"] if r.startswith("unicorn-http")]
    assert http_reqs, root["dependencies"]
    from packaging.requirements import Requirement

    for req in http_reqs + root["optional-dependencies"]["http2"]:
        assert Requirement(req).specifier.contains(new), req
    assert f"Admits unicorn-http {new}" in unreleased_text((clone / "CHANGELOG.md").read_text())
    # and the released tree passes the check as it stands
    check = tool(clone, "check_release.py")
    assert check.returncode == 0, check.stderr


def test_check_fails_on_a_source_change_without_a_changelog_entry(released):
    clone, _, _ = released
    source = clone / "packages/unicorn-http/src/unicorn_http/h1.py"
    original = source.read_text()
    source.write_text(original + "\n# a change after the release\n")
    try:
        check = tool(clone, "check_release.py")
        assert check.returncode == 1
        assert "unicorn-http: its source changed since unicorn-http-v" in check.stderr
        assert "CHANGELOG.md has nothing under `## Unreleased`" in check.stderr
        # a change to the tests only is not a change to what ships
        source.write_text(original)
        test_file = clone / "packages/unicorn-http/tests/test_scratch_only.py"
        test_file.write_text("def test_nothing():\n    assert True\n")
        assert tool(clone, "check_release.py").returncode == 0
        test_file.unlink()
        # an entry makes the source change releasable again
        source.write_text(original + "\n# a change after the release\n")
        log = clone / "packages/unicorn-http/CHANGELOG.md"
        log_text = log.read_text()
        log.write_text(log_text.replace("## Unreleased\n", "## Unreleased\n\n- A comment.\n", 1))
        check = tool(clone, "check_release.py")
        assert check.returncode == 0, check.stderr
        log.write_text(log_text)
    finally:
        source.write_text(original)


def test_check_fails_when_a_range_leaves_a_version_out(tmp_path):
    clone = scratch_clone(tmp_path)
    pyproject = clone / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"unicorn-core>=0.1,<0.2"', '"unicorn-core>=0.2,<0.3"')
    )
    init = clone / "packages/unicorn-dirty/src/unicorn_dirty/__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', '__version__ = "9.9.9"', init.read_text()))
    check = tool(clone, "check_release.py")
    assert check.returncode == 1
    assert '"unicorn-core>=0.2,<0.3" leaves out unicorn-core 0.1.0' in check.stderr
    assert "unicorn-dirty: pyproject.toml says 0.1.0" in check.stderr
    assert "__version__ = '9.9.9'" in check.stderr


def test_release_refuses_an_empty_unreleased_and_changes_nothing(tmp_path):
    clone = scratch_clone(tmp_path)
    log = clone / "packages/unicorn-uwsgi/CHANGELOG.md"
    log.write_text("# Changelog — unicorn-uwsgi\n\n## Unreleased\n")
    git(clone, "commit", "--quiet", "-am", "empty changelog")
    never_released = tool(clone, "check_release.py")
    assert never_released.returncode == 1
    assert "unicorn-uwsgi: its source changed and was never released" in never_released.stderr
    result = tool(clone, "release.py", "uwsgi", "patch", "--skip-isolated")
    assert result.returncode == 1
    assert "nothing under `## Unreleased`" in result.stderr
    assert git(clone, "status", "--porcelain") == ""
    assert git(clone, "tag") == ""

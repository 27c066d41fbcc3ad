"""Release one package: `make release PKG=http BUMP=minor` runs this.

    python tools/release.py PKG BUMP [--skip-isolated]

PKG is a short name (http, uwsgi, core, workers, asgi, dirty) or `unicorn`,
the meta-package. BUMP is `major`, `minor`, `patch` or a version (`0.2.0`).

In order, stopping at the first failure with the files as they were:

1. the work tree must be clean, the new tag free and Unreleased non-empty;
2. the version is written to pyproject.toml and ``__version__``;
3. CHANGELOG.md's Unreleased entries move under `## VERSION — today`, and an
   empty `## Unreleased` stays on top;
4. a range on this package elsewhere (the meta-package's, another package's)
   that would leave the new version out gets its upper bound raised, with an
   Unreleased entry in that package's changelog saying so;
5. sdist and wheel are built into dist/DIST-VERSION/ (`uv build`) and checked
   with `twine check --strict`;
6. the package's own tests run against its wheel alone (`.ci/isolated.sh`;
   `--skip-isolated` leaves them out);
7. `tools/check_release.py`'s checks pass on the result;
8. one commit, and the annotated tag DIST-vVERSION. Nothing is uploaded.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_release import (
    META,
    PACKAGES,
    ROOT,
    Changelog,
    Package,
    current_versions,
    git,
    problems,
    project_version,
    range_problems,
    write_version,
)
from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

UV = os.environ.get("UV", "uv")


class ReleaseError(Exception):
    pass


def bumped(current: str, bump: str) -> str:
    """hatch's rules for the three segments: minor on 0.1.3 gives 0.2.0."""
    major, minor, patch = (*Version(current).release, 0, 0, 0)[:3]
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    if bump == "patch":
        return f"{major}.{minor}.{patch + 1}"
    try:
        explicit = Version(bump)
    except InvalidVersion:
        raise ReleaseError(
            f"BUMP={bump!r}: use major, minor, patch or a version such as 1.2.0"
        ) from None
    if explicit <= Version(current):
        raise ReleaseError(f"BUMP={bump}: the version must be above the current {current}")
    return str(explicit)


def _upper_bound_for(version: Version) -> str:
    """The exclusive upper bound admitting `version` and its compatible successors."""
    if version.major == 0:
        return f"0.{version.minor + 1}"
    return f"{version.major + 1}"


def widen_ranges(pkg: Package, version: str, today: str) -> list[Path]:
    """Raise the upper bounds that would leave `version` of `pkg` out."""
    changed = []
    new = Version(version)
    quoted = re.compile(r'"(' + re.escape(pkg.dist) + r'(?:\[[^\]]*\])?[^"]*)"')
    for other in PACKAGES.values():
        if other is pkg:
            continue
        text = other.pyproject.read_text()
        widened = []

        def widen(match: re.Match, other: Package = other, widened: list[str] = widened) -> str:
            req = Requirement(match.group(1))
            if req.name != pkg.dist or req.specifier.contains(new, prereleases=True):
                return match.group(0)
            spec = re.sub(r"<\s*[0-9][0-9.]*", "<" + _upper_bound_for(new), match.group(1))
            if not Requirement(spec).specifier.contains(new, prereleases=True):
                raise ReleaseError(
                    f'{other.pyproject.relative_to(ROOT)}: "{match.group(1)}" cannot admit '
                    f"{pkg.dist} {version} by raising its upper bound; change it by hand"
                )
            widened.append(spec)
            return f'"{spec}"'

        text = quoted.sub(widen, text)
        if not widened:
            continue
        other.pyproject.write_text(text)
        log = Changelog.parse(other.changelog.read_text())
        entry = (
            f"- Admits {pkg.dist} {version} (released {today}): "
            + ", ".join(f"`{spec}`" for spec in dict.fromkeys(widened))
            + "."
        )
        other.changelog.write_text(_add_unreleased(log, entry))
        changed += [other.pyproject, other.changelog]
    return changed


def _add_unreleased(log: Changelog, entry: str) -> str:
    """The changelog with `entry` added at the top of its Unreleased section."""
    if log.sections and log.sections[0][0].lower() == "unreleased":
        heading, body = log.sections[0]
        log.sections[0] = (heading, f"\n{entry}\n{body.lstrip(chr(10))}")
    else:
        log.sections.insert(0, ("Unreleased", f"\n{entry}\n\n"))
    out = [log.preamble.rstrip() + "\n"]
    for heading, body in log.sections:
        out.append(f"\n## {heading}\n{body.rstrip()}\n")
    return "".join(out)


def run(*cmd: str, env: dict | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, cwd=ROOT, env=env)
    if result.returncode != 0:
        raise ReleaseError(f"`{' '.join(cmd)}` failed with exit status {result.returncode}")


def build(pkg: Package, version: str) -> list[Path]:
    out = ROOT / "dist" / f"{pkg.dist}-{version}"
    if out.exists():
        for stale in out.iterdir():
            stale.unlink()
    run(UV, "build", "--quiet", "--package", pkg.dist, "--out-dir", str(out))
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise ReleaseError(f"uv build left {sorted(p.name for p in out.iterdir())} in {out}")
    artifacts = [*sdists, *wheels]
    run(sys.executable, "-m", "twine", "check", "--strict", *map(str, artifacts))
    return artifacts


def release(short: str, bump: str, skip_isolated: bool = False, today: str | None = None) -> str:
    if short not in PACKAGES:
        raise ReleaseError(f"PKG={short!r}: one of {', '.join(PACKAGES)}")
    pkg = PACKAGES[short]
    today = today or datetime.date.today().isoformat()
    if git("status", "--porcelain", "--untracked-files=no").strip():
        raise ReleaseError("the work tree has uncommitted changes: commit or stash them first")
    current = project_version(pkg)
    version = bumped(current, bump)
    tag = pkg.tag(version)
    if git("tag", "--list", tag).strip():
        raise ReleaseError(f"tag {tag} exists already")
    log = Changelog.parse(pkg.changelog.read_text())
    if not log.unreleased():
        raise ReleaseError(
            f"{pkg.changelog.relative_to(ROOT)} has nothing under `## Unreleased`: "
            "a release says what it changes"
        )

    changed: list[Path] = []
    try:
        changed += write_version(pkg, version)
        pkg.changelog.write_text(log.release(version, today))
        changed.append(pkg.changelog)
        changed += widen_ranges(pkg, version, today)
        leftover = range_problems(current_versions())
        if leftover:
            raise ReleaseError("; ".join(leftover))
        artifacts = build(pkg, version)
        if short != META and not skip_isolated:
            run("bash", ".ci/isolated.sh", short, env={**os.environ, "UV": UV})
        found = problems(releasing=short)
        if found:
            raise ReleaseError("; ".join(found))
        paths = sorted({str(p.relative_to(ROOT)) for p in changed})
        git("add", "--", *paths)
        git("commit", "--quiet", "-m", f"{pkg.dist} {version}", "-m", _commit_body(pkg, version))
        git("tag", "-a", tag, "-m", f"{pkg.dist} {version}")
    except BaseException:
        if changed:
            git("checkout", "HEAD", "--", *sorted({str(p.relative_to(ROOT)) for p in changed}))
        raise
    for artifact in artifacts:
        print(f"built {artifact.relative_to(ROOT)}")
    print(f"tagged {tag} (not pushed, nothing uploaded)")
    return tag


def _commit_body(pkg: Package, version: str) -> str:
    return (
        f"Released with tools/release.py: the version in pyproject.toml"
        f"{' and __version__' if pkg.init else ''}, the Unreleased changelog entries "
        f"moved under {version}, sdist and wheel checked with twine."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pkg", help=f"one of {', '.join(PACKAGES)}")
    parser.add_argument("bump", help="major, minor, patch or a version")
    parser.add_argument(
        "--skip-isolated",
        action="store_true",
        help="leave out the isolated-wheel tests (for the release tool's own test)",
    )
    args = parser.parse_args(argv)
    try:
        release(args.pkg, args.bump, skip_isolated=args.skip_isolated)
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What must hold for every package to be releasable, checked in `make test`.

- A package whose source changed since its last release tag has something
  under Unreleased in its CHANGELOG.md (a package never tagged has changed).
- Each package's version is the same in its pyproject.toml and its
  ``__version__``.
- Every range on one of our packages (the meta-package's extras and
  dependencies, and the packages' dependencies on each other) admits that
  package's current version.

tools/release.py builds on the same model of the repository (``PACKAGES``,
``Changelog``). Run from the repository root: ``python tools/check_release.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
META = "unicorn"


@dataclass(frozen=True, slots=True)
class Package:
    short: str  # the name `make release PKG=...` takes: http, core, ..., unicorn
    dist: str  # the distribution name: unicorn-http
    directory: Path  # where its pyproject.toml and CHANGELOG.md are
    init: Path | None  # the __init__.py holding __version__ (None for the meta-package)

    @property
    def pyproject(self) -> Path:
        return self.directory / "pyproject.toml"

    @property
    def changelog(self) -> Path:
        return self.directory / "CHANGELOG.md"

    @property
    def tag_prefix(self) -> str:
        return f"{self.dist}-v"

    def tag(self, version: str) -> str:
        return f"{self.tag_prefix}{version}"

    def source_pathspecs(self) -> list[str]:
        """What ships in the package, as git pathspecs (tests and changelog excluded)."""
        rel = self.directory.relative_to(ROOT).as_posix()
        return [rel, f":(exclude){rel}/CHANGELOG.md", f":(exclude){rel}/tests"]


def discover(root: Path = ROOT) -> dict[str, Package]:
    packages = {}
    for directory in sorted((root / "packages").glob("unicorn-*")):
        dist = directory.name
        inits = sorted((directory / "src").glob("unicorn_*/__init__.py"))
        packages[dist.removeprefix("unicorn-")] = Package(
            dist.removeprefix("unicorn-"), dist, directory, inits[0] if inits else None
        )
    packages[META] = Package(META, META, root, None)
    return packages


PACKAGES = discover()

# --- versions --------------------------------------------------------------

_PROJECT_VERSION = re.compile(r'(?m)^(version\s*=\s*)"([^"]+)"')
_DUNDER_VERSION = re.compile(r'(?m)^(__version__\s*=\s*)"([^"]+)"')


def project_version(pkg: Package) -> str:
    return tomllib.loads(pkg.pyproject.read_text())["project"]["version"]


def dunder_version(pkg: Package) -> str | None:
    if pkg.init is None:
        return None
    match = _DUNDER_VERSION.search(pkg.init.read_text())
    return match.group(2) if match else None


def write_version(pkg: Package, version: str) -> list[Path]:
    """Set the version in pyproject.toml's [project] table and in __version__."""
    text = pkg.pyproject.read_text()
    start = text.index("[project]")
    head, tail = text[:start], text[start:]
    tail, count = _PROJECT_VERSION.subn(rf'\g<1>"{version}"', tail, count=1)
    if count != 1:
        raise SystemExit(f"{pkg.pyproject}: no `version = ...` in [project]")
    pkg.pyproject.write_text(head + tail)
    changed = [pkg.pyproject]
    if pkg.init is not None:
        init_text, count = _DUNDER_VERSION.subn(rf'\g<1>"{version}"', pkg.init.read_text(), count=1)
        if count != 1:
            raise SystemExit(f"{pkg.init}: no `__version__ = ...`")
        pkg.init.write_text(init_text)
        changed.append(pkg.init)
    return changed


# --- changelogs ------------------------------------------------------------

_UNRELEASED = re.compile(r"(?i)\bunreleased\b")


@dataclass(slots=True)
class Changelog:
    """A CHANGELOG.md: a preamble, then `## ` sections, newest first.

    The sections at the top whose heading says "Unreleased" (`## Unreleased`,
    or the older `## 0.1.0 — unreleased`) hold what the next release ships.
    """

    preamble: str
    sections: list[tuple[str, str]]  # (heading line without "## ", body)

    @classmethod
    def parse(cls, text: str) -> Changelog:
        parts = re.split(r"(?m)^## ", text)
        sections = []
        for part in parts[1:]:
            heading, _, body = part.partition("\n")
            sections.append((heading.strip(), body))
        return cls(parts[0], sections)

    def _unreleased_count(self) -> int:
        count = 0
        for heading, _ in self.sections:
            if not _UNRELEASED.search(heading):
                break
            count += 1
        return count

    def unreleased(self) -> str:
        """The text of the Unreleased entries, stripped ('' when there are none)."""
        bodies = [body.strip() for _, body in self.sections[: self._unreleased_count()]]
        return "\n\n".join(b for b in bodies if b)

    def release(self, version: str, date: str) -> str:
        """The changelog with the Unreleased entries moved under `## version — date`."""
        entries = self.unreleased()
        rest = self.sections[self._unreleased_count() :]
        out = [self.preamble.rstrip() + "\n\n", "## Unreleased\n\n", f"## {version} — {date}\n\n"]
        out.append(entries + "\n")
        for heading, body in rest:
            out.append(f"\n## {heading}\n{body.rstrip()}\n")
        return "".join(out)


# --- git -------------------------------------------------------------------


def git(*args: str, root: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


def last_tag(pkg: Package) -> str | None:
    tags = git("tag", "--list", f"{pkg.tag_prefix}*").split()
    versions = []
    for tag in tags:
        try:
            versions.append((Version(tag.removeprefix(pkg.tag_prefix)), tag))
        except ValueError:
            continue
    return max(versions)[1] if versions else None


def changed_since(pkg: Package, tag: str | None) -> bool:
    """Whether what the package ships differs from the tag (working tree included)."""
    if tag is None:
        return True
    if pkg.short == META:
        # the meta-package ships only its metadata: the [project] table
        then = tomllib.loads(git("show", f"{tag}:pyproject.toml"))["project"]
        now = tomllib.loads(pkg.pyproject.read_text())["project"]
        return then != now
    specs = pkg.source_pathspecs()
    if git("diff", "--name-only", tag, "--", *specs).strip():
        return True
    return bool(git("ls-files", "--others", "--exclude-standard", "--", *specs).strip())


# --- ranges ----------------------------------------------------------------


def requirements(pkg: Package) -> list[str]:
    """Every requirement string in the package's dependencies and extras."""
    project = tomllib.loads(pkg.pyproject.read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return reqs


def range_problems(versions: dict[str, str]) -> list[str]:
    """Ranges on our packages that leave out their version (dist -> version)."""
    problems = []
    for pkg in PACKAGES.values():
        for text in requirements(pkg):
            req = Requirement(text)
            if req.name == pkg.dist or req.name not in versions:
                continue
            if not req.specifier.contains(versions[req.name], prereleases=True):
                where = pkg.pyproject.relative_to(ROOT)
                problems.append(
                    f'{where}: "{text}" leaves out {req.name} {versions[req.name]}, '
                    f"its current version"
                )
    return problems


def current_versions() -> dict[str, str]:
    return {pkg.dist: project_version(pkg) for pkg in PACKAGES.values()}


# --- the check -------------------------------------------------------------


def problems(releasing: str | None = None) -> list[str]:
    """Everything that is not releasable; `releasing` names a package whose
    release commit is being made (its Unreleased section was just emptied)."""
    found = []
    for pkg in PACKAGES.values():
        version = project_version(pkg)
        dunder = dunder_version(pkg)
        if pkg.init is not None and dunder != version:
            found.append(
                f"{pkg.dist}: pyproject.toml says {version}, "
                f"{pkg.init.relative_to(ROOT)} says __version__ = {dunder!r}; make them agree"
            )
        tag = last_tag(pkg)
        if pkg.short != releasing and changed_since(pkg, tag):
            if not pkg.changelog.is_file():
                found.append(f"{pkg.dist}: no {pkg.changelog.relative_to(ROOT)}")
            elif not Changelog.parse(pkg.changelog.read_text()).unreleased():
                since = f"since {tag}" if tag else "and was never released"
                found.append(
                    f"{pkg.dist}: its source changed {since}, but "
                    f"{pkg.changelog.relative_to(ROOT)} has nothing under `## Unreleased`; "
                    f"say what changed there"
                )
    found.extend(range_problems(current_versions()))
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(f"check-release: {problem}", file=sys.stderr)
    if not found:
        print(f"check-release: {len(PACKAGES)} packages releasable")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

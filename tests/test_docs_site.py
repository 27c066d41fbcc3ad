"""The documentation site builds with --strict, and the READMEs' links resolve.

mkdocs.yml turns a page missing from the nav, a link to a missing page and a
link to a missing anchor into warnings, and --strict makes any warning fail
the build: this is the link check of docs/. The READMEs (shown by GitHub and
the package index, outside docs/) are checked here directly.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READMES = [
    ROOT / "README.md",
    *sorted(ROOT.glob("packages/*/README.md")),
    *sorted(ROOT.glob("examples/*/README.md")),
    ROOT / "benchmarks" / "README.md",
]

pytest.importorskip("mkdocs", reason="the docs dependency group is not installed: make sync")


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    result = mkdocs_build(ROOT / "mkdocs.yml", site)
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert result.returncode == 0, "\n".join(warnings) or result.stderr
    home = (site / "index.html").read_text()
    home_text = re.sub(r"<[^>]+>", "", home)
    assert "make demo" in home_text and "make test" in home_text
    assert 'src="img/process-tree.svg"' in home
    # the pages taken in from beside the code are there, their links rewritten
    http_readme = (site / "packages/unicorn-http/index.html").read_text()
    assert 'href="../../http/' in http_readme
    for svg in ("process-tree", "request-path", "dirty-pool"):
        assert (site / "img" / f"{svg}.svg").is_file()


def _config_for(docs: Path, tmp_path: Path) -> Path:
    """mkdocs.yml pointed at another docs directory (the hook keeps the repo's paths)."""
    text = (ROOT / "mkdocs.yml").read_text()
    text = text.replace("docs_dir: docs", f"docs_dir: {docs}")
    text = text.replace("- tools/mkdocs_hooks.py", f"- {ROOT / 'tools' / 'mkdocs_hooks.py'}")
    config = tmp_path / "mkdocs.yml"
    config.write_text(text)
    return config


def test_a_page_left_out_of_the_nav_and_a_broken_anchor_fail_the_build(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    (docs / "forgotten.md").write_text("# A page nobody added to the nav\n")
    index = docs / "index.md"
    index.write_text(index.read_text() + "\nSee [nothing](signals.md#no-such-heading).\n")
    result = mkdocs_build(_config_for(docs, tmp_path), tmp_path / "site")
    assert result.returncode != 0
    assert 'not included in the "nav"' in result.stderr and "forgotten.md" in result.stderr
    assert "signals.md#no-such-heading" in result.stderr


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", markdown.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"(?m)^#{1,6}\s+(.+?)\s*#*$", text)}


def _relative_links(markdown: Path) -> list[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", markdown.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link)]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_relative_links_resolve(readme):
    assert readme.is_file()
    broken = []
    for link in _relative_links(readme):
        path, _, fragment = link.partition("#")
        target = (readme.parent / path).resolve() if path else readme
        if not target.exists():
            broken.append(f"{link}: no {target.relative_to(ROOT)}")
        elif fragment and target.suffix == ".md" and fragment not in _anchors(target):
            broken.append(f"{link}: no heading #{fragment} in {target.relative_to(ROOT)}")
    assert not broken, f"{readme.relative_to(ROOT)}: " + "; ".join(broken)


def test_pictures_are_well_formed_svg_and_shown():
    shown = "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    svgs = sorted((ROOT / "docs" / "img").glob("*.svg"))
    assert {p.stem for p in svgs} >= {"process-tree", "request-path", "dirty-pool"}
    for svg in svgs:
        root = ET.parse(svg).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg", svg
        assert root.find("{http://www.w3.org/2000/svg}title") is not None, f"{svg}: no <title>"
        assert f"img/{svg.name}" in shown, f"{svg.name} is on no page"

"""mkdocs hooks: pages that live beside the code join the site built from docs/.

The package READMEs and changelogs, the examples' and the benchmarks' READMEs
are written where they belong in the repository (GitHub and the package index
show them there). The site takes them in under the paths of ``SITE_PAGES``, and
a relative link between any of them and docs/ is rewritten to point at the
page the site built, so the same Markdown works in both places. A link from a
docs/ page is left for mkdocs to check; a link from a page taken in here to a
repository file that is not a page (a source file) keeps its text and loses
its target, since the site has nothing to show there.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent

#: repository path -> the page's path in the site (relative to docs_dir)
SITE_PAGES = {
    "README.md": "index.md",
    "CHANGELOG.md": "packages/unicorn/changelog.md",
    "benchmarks/README.md": "benchmarks.md",
    "examples/celery_alternative/README.md": "examples/celery-alternative.md",
}
for _pkg in sorted((ROOT / "packages").glob("unicorn-*")):
    SITE_PAGES[f"packages/{_pkg.name}"] = f"packages/{_pkg.name}/index.md"
    SITE_PAGES[f"packages/{_pkg.name}/README.md"] = f"packages/{_pkg.name}/index.md"
    SITE_PAGES[f"packages/{_pkg.name}/CHANGELOG.md"] = f"packages/{_pkg.name}/changelog.md"

#: the site's path of a page taken in -> its repository path
_TAKEN_IN = {
    site: repo for repo, site in SITE_PAGES.items() if repo != "README.md" and repo.endswith(".md")
}

_TEXT_THEN_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")


def on_files(files, config):
    for site_path, repo_path in _TAKEN_IN.items():
        source = ROOT / repo_path
        if source.is_file():
            files.append(File.generated(config, site_path, abs_src_path=str(source)))
    return files


def _site_page(repo_path: str) -> str | None:
    if repo_path in SITE_PAGES:
        return SITE_PAGES[repo_path]
    if repo_path.startswith("docs/"):
        return repo_path.removeprefix("docs/")
    return None


def on_page_markdown(markdown, page, config, files):
    page_uri = page.file.src_uri
    taken_in = page_uri in _TAKEN_IN
    repo_path = _TAKEN_IN.get(page_uri, f"docs/{page_uri}")
    here = posixpath.dirname(repo_path)

    def rewrite(match: re.Match) -> str:
        text, target = match.group(1), match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:|#", target):
            return match.group(0)
        path, _, fragment = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(here, path))
        site = _site_page(resolved)
        if site is None:
            if taken_in and (ROOT / resolved).exists():
                return text
            return match.group(0)
        if not taken_in and resolved.startswith("docs/"):
            return match.group(0)
        new = posixpath.relpath(site, posixpath.dirname(page_uri))
        return f"[{text}]({new}{'#' + fragment if fragment else ''})"

    return _TEXT_THEN_LINK.sub(rewrite, markdown)

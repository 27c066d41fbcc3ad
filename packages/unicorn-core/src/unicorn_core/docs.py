"""Generate the settings reference (docs/settings.md) from the registry.

``python -m unicorn_core.docs docs/settings.md`` writes it;
``--check`` exits 1 when the file is out of date. Each distribution's
settings form one block between markers, so a package's tests can check its
own block even when the other packages are not installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from unicorn_core.settings import Registry, Setting, build_registry

HEADER = """# Settings reference

Every setting unicorn knows, generated from the settings registry by
`python -m unicorn_core.docs docs/settings.md`; do not edit by hand. A setting
is set, lowest precedence first, by its default, its environment variable,
the config file (`name = value`), `UNICORN_CMD_ARGS`, or the command line.
Settings come from the package that declares them; only installed packages'
settings are accepted.
"""

BEGIN = "<!-- settings of {owner}: begin -->"
END = "<!-- settings of {owner}: end -->"


def _default(setting: Setting) -> str:
    value = setting.default
    if callable(value):
        return "no-op" if getattr(value, "__unicorn_default_hook__", False) else "built in"
    if value is None:
        return "unset"
    return f"`{value!r}`"


def render_setting(setting: Setting) -> str:
    lines = [f"#### `{setting.name}`", ""]
    facts = []
    if setting.cli:
        meta = "" if setting.type == "bool" else f" {setting.meta or 'VALUE'}"
        facts.append(", ".join(f"`{flag}{meta}`" for flag in setting.cli))
    else:
        facts.append("config file only")
    if setting.env:
        facts.append(f"env `{setting.env}`")
    facts.append(f"default: {_default(setting)}")
    if setting.type == "callable":
        facts.append(f"a callable taking {setting.arity} argument(s)")
    elif setting.type == "choice":
        facts.append("one of " + ", ".join(f"`{c}`" for c in setting.choices))
    lines.append(" · ".join(facts))
    lines.append("")
    lines.append(" ".join(setting.doc.split()))
    lines.append("")
    return "\n".join(lines)


def render_owner(registry: Registry, owner: str) -> str:
    parts = [BEGIN.format(owner=owner), "", f"## {owner}", ""]
    sections: dict[str, list[Setting]] = {}
    for setting in registry:
        if setting.owner == owner:
            sections.setdefault(setting.section, []).append(setting)
    for section, settings in sections.items():
        parts.append(f"### {section}\n")
        parts.extend(render_setting(s) for s in settings)
    parts.append(END.format(owner=owner))
    return "\n".join(parts)


def owners(registry: Registry) -> list[str]:
    seen: dict[str, None] = {}
    for setting in registry:
        seen.setdefault(setting.owner, None)
    return ["unicorn-core", *sorted(o for o in seen if o != "unicorn-core")]


def render(registry: Registry) -> str:
    blocks = [render_owner(registry, owner) for owner in owners(registry)]
    return HEADER + "\n" + "\n\n".join(blocks) + "\n"


def extract_block(text: str, owner: str) -> str | None:
    """The block of ``owner`` in a rendered file, or None."""
    pattern = re.escape(BEGIN.format(owner=owner)) + r".*?" + re.escape(END.format(owner=owner))
    match = re.search(pattern, text, re.S)
    return match.group(0) if match else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unicorn_core.docs", description=__doc__)
    parser.add_argument("path", nargs="?", default="docs/settings.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render(build_registry())
    if args.check:
        try:
            with open(args.path, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            print(f"{args.path} is out of date; run python -m unicorn_core.docs", file=sys.stderr)
            return 1
        return 0
    with open(args.path, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""docs/settings.md is generated from the registry and kept up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from unicorn_core.docs import extract_block, render, render_owner
from unicorn_core.settings import build_registry

REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "settings.md"


@pytest.mark.skipif(not REFERENCE.exists(), reason="not run from a source checkout")
def test_core_block_is_up_to_date():
    expected = render_owner(build_registry(), "unicorn-core")
    assert extract_block(REFERENCE.read_text(), "unicorn-core") == expected, (
        "docs/settings.md is stale: run `python -m unicorn_core.docs docs/settings.md`"
    )


def test_every_core_setting_is_documented():
    registry = build_registry()
    text = render(registry)
    for setting in registry:
        assert f"#### `{setting.name}`" in text
        if setting.owner == "unicorn-core":
            assert setting.doc and setting.section, setting.name

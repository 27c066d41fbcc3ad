"""Fails at import, for the "app failed to load" tests."""

raise RuntimeError("broken on purpose")

"""Unit-test fixtures: each test reads appflow's limits from its own environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from appflow import settings


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    """APPFLOW_MAX_... variables a test sets (monkeypatch) are read anew, and forgotten after."""
    settings.limits.cache_clear()
    yield
    settings.limits.cache_clear()

"""The render cache on a disk that fails, and under its size limit (issue 10, item 12)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from appflow.render.cache import RenderCache
from appflow.render.types import Rendered
from tests.unit.limits_support import set_limits


def rendered(name: str, size: int = 100) -> Rendered:
    return Rendered.of(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name},
                "data": {"k": "x" * size},
            }
        ]
    )


def fill(cache: RenderCache, key: str, value: Rendered) -> Rendered:
    async def render() -> Rendered:
        return value

    return asyncio.run(cache.get_or_render(key, render))


def test_a_cache_folder_that_cannot_be_written_warns_once_and_renders_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A file where the folder should be: every write fails with an OSError (ENOTDIR),
    # as it does on a full disk (ENOSPC) or a read-only mount (EROFS).
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    cache = RenderCache(directory=blocker / "render")
    with caplog.at_level(logging.WARNING, logger="appflow.render.cache"):
        first = fill(cache, "a" * 64, rendered("a"))
        second = fill(cache, "b" * 64, rendered("b"))
    assert first.objects[0]["metadata"]["name"] == "a"
    assert second.objects[0]["metadata"]["name"] == "b"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "keeps renders in memory only" in warnings[0]
    assert cache.disk_error is not None
    # The memory cache still serves what was rendered.
    assert fill(cache, "a" * 64, rendered("other")).objects[0]["metadata"]["name"] == "a"
    assert cache.hits == 1


def test_the_least_recently_used_renders_are_evicted_past_the_limit(tmp_path: Path) -> None:
    folder = tmp_path / "render"
    keys = [f"{n}" * 64 for n in range(4)]
    probe = RenderCache(directory=tmp_path / "probe")
    probe.put(keys[0], rendered("a0", 500))
    size = (tmp_path / "probe" / f"{keys[0]}.json").stat().st_size
    # Room for three entries and a half.
    cache = RenderCache(directory=folder, max_bytes=3 * size + size // 2)
    for n in range(3):
        fill(cache, keys[n], rendered(f"a{n}", 500))
    now = time.time()
    for n, age in enumerate((30, 20, 10)):  # written oldest first
        os.utime(folder / f"{keys[n]}.json", (now - age, now - age))
    # Another process reads the oldest entry from disk: that makes it the most recent.
    assert RenderCache(directory=folder).get(keys[0]) is not None
    fill(cache, keys[3], rendered("a3", 500))
    left = sorted(p.stem for p in folder.glob("*.json"))
    # Over the limit: the least recently used go first, down to 80% of it.
    assert left == sorted([keys[0], keys[3]])
    assert sum(p.stat().st_size for p in folder.glob("*.json")) <= cache.max_bytes


def test_the_limit_is_the_operators_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_limits(monkeypatch, render_cache_bytes="2Mi")
    assert RenderCache(directory=tmp_path).max_bytes == 2 * 1024 * 1024

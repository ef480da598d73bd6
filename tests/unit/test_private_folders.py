"""The cache folder is private like the data folder (issue 10, item 22)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from appflow.paths import cache_dir


def test_a_new_cache_folder_is_made_0700(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPFLOW_CACHE_DIR", str(tmp_path / "new" / "cache"))
    folder = cache_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_cache_folder_left_open_by_an_older_appflow_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old-cache"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    monkeypatch.setenv("APPFLOW_CACHE_DIR", str(old))
    assert cache_dir() == old
    assert stat.S_IMODE(old.stat().st_mode) == 0o700

"""Checking out commits into content-addressed, read-only folders, and diffing commits."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from gitservers import Origin

from appflow.errors import ConfigError, GitRefNotFoundError, SourceError
from appflow.sources.git import GitSource, RefSpec, changed_paths, checkout, checkouts_dir, fetch


def _url(origin: Origin) -> str:
    return f"file://{origin.path}"


async def _fetched(origin: Origin) -> str:
    result = await fetch(GitSource(_url(origin), RefSpec.branch("main")))
    return result.commit


async def test_checkout_is_content_addressed_read_only_and_reused(
    origin: Origin, cache: Path
) -> None:
    origin.commit({"bin/run.sh": "#!/bin/sh\necho hi\n"}, executable=frozenset({"bin/run.sh"}))
    commit = await _fetched(origin)

    folder = await checkout(_url(origin), commit)
    assert folder == cache / "git" / "checkouts" / commit
    assert (folder / "apps/web/deployment.yaml").read_text() == "kind: Deployment\n"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "apps", "bin"]
    # Modes, not writes: tests run as root, who may write anywhere. Read-only, and
    # for the owner only, like the cache folder they are in (issue 10, item 22).
    assert stat.S_IMODE((folder / "README.md").stat().st_mode) == 0o400
    assert stat.S_IMODE((folder / "bin/run.sh").stat().st_mode) == 0o500
    assert stat.S_IMODE((folder / "apps/web").stat().st_mode) == 0o500
    assert stat.S_IMODE(folder.stat().st_mode) == 0o500
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700

    inode = folder.stat().st_ino
    again = await checkout(_url(origin), commit)
    assert again == folder
    assert again.stat().st_ino == inode, "an existing checkout was written again"
    # No temporary folders are left behind.
    assert [p.name for p in checkouts_dir().iterdir()] == [commit]


async def test_each_commit_gets_its_own_folder(origin: Origin) -> None:
    first = await _fetched(origin)
    origin.commit({"README.md": "# app v2\n"})
    second = await _fetched(origin)
    old, new = await asyncio.gather(checkout(_url(origin), first), checkout(_url(origin), second))
    assert old != new
    assert (old / "README.md").read_text() == "# app\n"
    assert (new / "README.md").read_text() == "# app v2\n"


async def test_checkout_fetches_a_missing_commit_when_given_the_source(origin: Origin) -> None:
    commit = origin.head()
    folder = await checkout(GitSource(_url(origin)), commit, subpath="apps/db")
    assert (folder / "statefulset.yaml").read_text() == "kind: StatefulSet\n"


async def test_checkout_of_an_unknown_commit_by_url(origin: Origin) -> None:
    with pytest.raises(GitRefNotFoundError, match="is not in the mirror"):
        await checkout(_url(origin), origin.head())


async def test_subpath(origin: Origin) -> None:
    commit = await _fetched(origin)
    web = await checkout(_url(origin), commit, subpath="apps/web/")
    assert web.name == "web"
    assert sorted(p.name for p in web.iterdir()) == ["deployment.yaml", "service.yaml"]
    assert web.parent.parent.name == commit


async def test_missing_subpath_names_the_path_and_commit(origin: Origin) -> None:
    commit = await _fetched(origin)
    with pytest.raises(SourceError) as caught:
        await checkout(_url(origin), commit, subpath="apps/mqtt")
    assert "'apps/mqtt'" in str(caught.value)
    assert commit in str(caught.value)
    with pytest.raises(ConfigError, match="leaves the repository"):
        await checkout(_url(origin), commit, subpath="../etc")


async def test_symlinks_inside_are_kept_and_outside_refused(origin: Origin) -> None:
    origin.commit({}, symlinks={"apps/current": "web"})
    commit = await _fetched(origin)
    folder = await checkout(_url(origin), commit)
    assert os.readlink(folder / "apps/current") == "web"
    assert (folder / "apps/current/service.yaml").read_text() == "kind: Service\n"

    origin.commit({}, symlinks={"apps/secrets": "../../../../../../etc"})
    bad = await _fetched(origin)
    with pytest.raises(ConfigError, match=r"symlink 'apps/secrets'.*points outside"):
        await checkout(_url(origin), bad)
    assert not (checkouts_dir() / bad).exists()
    assert [p.name for p in checkouts_dir().iterdir()] == [commit]


async def test_changed_paths_between_two_commits(origin: Origin) -> None:
    first = await _fetched(origin)
    origin.commit(
        {
            "apps/web/deployment.yaml": "kind: Deployment\nreplicas: 3\n",
            "apps/db/statefulset.yaml": None,
            "apps/mqtt/values.yaml": "persistence: {}\n",
        }
    )
    second = await _fetched(origin)
    assert await changed_paths(_url(origin), first, second) == {
        "apps/web/deployment.yaml",
        "apps/db/statefulset.yaml",
        "apps/mqtt/values.yaml",
    }
    assert await changed_paths(_url(origin), second, second) == set()
    with pytest.raises(GitRefNotFoundError):
        await changed_paths(_url(origin), first, "f" * 40)

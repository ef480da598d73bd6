"""Stores written by earlier appflows open, migrate, and sync on real clusters.

The store is tests/unit/testdata/store-v3.sql, written by that version's own engine
(tests/unit/testdata/make_store_v3.py): a plain app with a paused rollout, a Helm
release-mode app, a catalog install and a git app, each synced before. The store of
tests/unit/testdata/store-v9.sql (tests/unit/testdata/make_store_v9.py) holds two Helm apps
whose hooks ran, their state kept among the fingerprints as version 9 did.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from appflow.engine import catalog as _catalog  # registers the catalog's resolver
from appflow.engine.engine import Engine
from appflow.engine.rollouts import resume_rollout
from appflow.model.records import GitCommit, LocalContent
from appflow.store import SqliteStore, open_store
from tests.helpers import Sandbox
from tests.integration.engine.support import cli, new_suffix, one_line
from tests.legacy_store import (
    DUMP,
    DUMP_V9,
    HOOK_APPS,
    app_name,
    hook_app_name,
    load_dump,
    namespace,
    write_hook_sources,
    write_sources,
)

assert _catalog


def _load(sandbox: Sandbox, home: Path, *, src: Path, suffix: str, dump: Path) -> None:
    """The old store DUMP as HOME's store, its clusters' kubeconfigs where it expects them."""
    for info in sandbox.clusters:
        target = home / "clusters" / f"{info.name}.kubeconfig"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(info.kubeconfig, target)
        os.chmod(target, 0o600)
    load_dump(
        home / "appflow.db",
        home=home,
        cache=Path(os.environ["APPFLOW_CACHE_DIR"]),
        src=src,
        suffix=suffix,
        dump=dump,
    )


@pytest.fixture
def legacy(
    sandbox: Sandbox, appflow_home: Path, tmp_path: Path
) -> Iterator[tuple[SqliteStore, Engine, str]]:
    suffix = new_suffix()
    src = tmp_path / "src"
    write_sources(src, suffix, generation=2)
    _load(sandbox, appflow_home, src=src, suffix=suffix, dump=DUMP)
    store = open_store()
    engine = Engine(store)
    try:
        yield store, engine, suffix
    finally:
        for kind in ("plain", "rel", "git", "cat"):
            asyncio.run(engine.uninstall(app_name(kind, suffix)))
        for index in range(len(sandbox.clusters)):
            kube = sandbox.kube(index)
            try:
                for ns in (namespace(suffix), app_name("cat", suffix)):
                    kube.delete_sync("v1", "Namespace", ns)
            finally:
                kube.close()
        engine.close()
        store.close()


def test_a_version_3_store_migrates_and_syncs(
    legacy: tuple[SqliteStore, Engine, str], sandbox: Sandbox
) -> None:
    store, engine, suffix = legacy
    names = {kind: app_name(kind, suffix) for kind in ("plain", "rel", "git", "cat")}

    # Since operator policies, a Helm release (helm acting with the cluster's credentials)
    # needs one that allows it: an upgraded store's release app is refused until then.
    refused = asyncio.run(engine.sync(names["rel"]))
    assert not refused.ok
    assert "--helm-release allow" in str(refused.blocked[0].hint), refused
    for info in sandbox.clusters:
        allowed = cli("policy", "set", "cluster", info.name, "--helm-release", "allow")
        assert allowed.exit_code == 0, allowed.output

    for kind in ("rel", "git", "cat"):
        report = asyncio.run(engine.sync(names[kind]))
        assert report.ok, (kind, report)
        assert {r.state for r in report.results} == {"Ready"}, kind

    git = store.latest_revision(names["git"], with_rendered=False)
    assert git is not None
    assert git.number == 3
    assert isinstance(git.source_ref, GitCommit)
    for d in store.list_deployments(app=names["rel"]):
        assert d.release is not None
        # Revisions 1 and 2 came from the old store; this sync installed the
        # release afresh on these clusters (Helm revision 1).
        assert [(h.revision, h.helm_revision) for h in d.release.history] == [
            (1, 1),
            (2, 2),
            (3, 1),
        ]

    # The old store's rollout of the plain app is paused: a sync holds every cluster.
    held = asyncio.run(engine.sync(names["plain"]))
    assert sorted(held.held) == [c.name for c in sandbox.clusters]
    assert {d.state for d in store.list_deployments(app=names["plain"])} == {"OutOfSync"}
    assert store.get_rollout(names["plain"]).state == "Paused"

    resume_rollout(store, names["plain"])
    report = asyncio.run(engine.sync(names["plain"]))
    assert report.ok, report
    assert not report.held
    assert {r.state for r in report.results} == {"Ready"}
    assert store.get_rollout(names["plain"]).state == "Complete"
    latest = store.latest_revision(names["plain"], with_rendered=False)
    assert latest is not None
    assert latest.number == 3
    assert isinstance(latest.source_ref, LocalContent)
    kube = sandbox.kube(0)
    try:
        settings = kube.get_sync("v1", "ConfigMap", "settings", namespace(suffix))
    finally:
        kube.close()
    assert settings is not None
    assert settings["data"] == {"generation": "2"}

    history = cli("app", "history", names["plain"])
    assert history.exit_code == 0, history.output
    assert "local:" in history.output


@pytest.fixture
def legacy_v9(sandbox: Sandbox, appflow_home: Path, tmp_path: Path) -> Iterator[tuple[Engine, str]]:
    suffix = new_suffix()
    src = tmp_path / "src"
    write_hook_sources(src, suffix, generation=2)
    _load(sandbox, appflow_home, src=src, suffix=suffix, dump=DUMP_V9)
    store = open_store()
    engine = Engine(store)
    try:
        yield engine, suffix
    finally:
        for kind in HOOK_APPS:
            asyncio.run(engine.uninstall(hook_app_name(kind, suffix)))
        for index in range(len(sandbox.clusters)):
            kube = sandbox.kube(index)
            try:
                kube.delete_sync("v1", "Namespace", namespace(suffix))
            finally:
                kube.close()
        engine.close()
        store.close()


def test_a_version_9_store_keeps_what_its_hooks_did(legacy_v9: tuple[Engine, str]) -> None:
    """Version 9 remembered that app "hooked"'s install failed (its post-install hook) and
    that app "done"'s succeeded; after the migration the next syncs are an install again
    and an upgrade, as they would have been before."""
    engine, suffix = legacy_v9
    ns = namespace(suffix)
    hooked, done = (hook_app_name(kind, suffix) for kind in HOOK_APPS)

    retried = cli("sync", hooked)
    assert retried.exit_code == 0, retried.output
    text = one_line(retried.output)
    assert f"pre-install hook Job.batch/{ns}/{hooked}-first: succeeded" in text, text
    assert f"post-install hook Job.batch/{ns}/{hooked}-welcome: succeeded" in text, text
    assert f"{hooked}-upgrade" not in text, text

    upgraded = cli("sync", done)
    assert upgraded.exit_code == 0, upgraded.output
    text = one_line(upgraded.output)
    assert f"pre-upgrade hook Job.batch/{ns}/{done}-upgrade: succeeded" in text, text
    assert f"{done}-first" not in text, text
    assert f"{done}-welcome" not in text, text

    # Once per revision and cluster: a re-sync runs no hook.
    again = cli("sync", done)
    assert again.exit_code == 0, again.output
    assert "hook" not in again.output, again.output
    for d in engine.parts.store.list_deployments(app=done):
        assert d.hooks is not None
        assert "appflow.dev/hooks" not in d.applied

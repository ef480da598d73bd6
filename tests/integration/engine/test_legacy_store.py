"""A store written by appflow schema version 3 opens, migrates, and syncs on real clusters.

The store is tests/unit/testdata/store-v3.sql, written by that version's own engine
(tests/unit/testdata/make_store_v3.py): a plain app with a paused rollout, a Helm
release-mode app, a catalog install and a git app, each synced before.
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
from tests.integration.engine.support import cli, new_suffix
from tests.legacy_store import app_name, load_dump, namespace, write_sources

assert _catalog


@pytest.fixture
def legacy(
    sandbox: Sandbox, appflow_home: Path, tmp_path: Path
) -> Iterator[tuple[SqliteStore, Engine, str]]:
    suffix = new_suffix()
    src = tmp_path / "src"
    write_sources(src, suffix, generation=2)
    for info in sandbox.clusters:
        target = appflow_home / "clusters" / f"{info.name}.kubeconfig"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(info.kubeconfig, target)
        os.chmod(target, 0o600)
    load_dump(
        appflow_home / "appflow.db",
        home=appflow_home,
        cache=Path(os.environ["APPFLOW_CACHE_DIR"]),
        src=src,
        suffix=suffix,
    )
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

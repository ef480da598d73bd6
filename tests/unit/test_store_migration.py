"""A store written by schema version 3 (main before typed records) opens and migrates.

The store is tests/unit/testdata/store-v3.sql, written by that version's own engine
(see tests/unit/testdata/make_store_v3.py); tests/integration/engine/test_legacy_store.py
syncs from it on the sandbox.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from appflow.errors import StoreError
from appflow.model.appdef import SyncPolicy
from appflow.model.records import CatalogChart, GitCommit, LocalContent
from appflow.store import open_store
from appflow.store.migrations import MIGRATIONS, SCHEMA_VERSION, migrate
from tests.legacy_store import app_name, load_dump

SFX = "m1"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    db = tmp_path / "home" / "appflow.db"
    load_dump(
        db, home=tmp_path / "home", cache=tmp_path / "cache", src=tmp_path / "src", suffix=SFX
    )
    return db


def test_the_dump_is_a_version_3_store(legacy: Path) -> None:
    conn = sqlite3.connect(legacy)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    columns = {row[1] for row in conn.execute("PRAGMA table_info(apps)")}
    conn.close()
    assert "definition" in columns


def test_apps_keep_their_policy_and_catalog_install_as_typed_records(legacy: Path) -> None:
    with open_store(legacy) as store:
        plain = store.get_app(app_name("plain", SFX))
        rel = store.get_app(app_name("rel", SFX))
        cat = store.get_app(app_name("cat", SFX))

    assert plain.policy == SyncPolicy(self_heal=True)
    assert rel.policy == SyncPolicy(auto=False)
    assert cat.catalog is not None
    assert (cat.catalog.entry, cat.catalog.version, cat.catalog.chart.kind) == (
        "tiny",
        "1.0.0",
        "local",
    )
    assert cat.catalog.targets.all
    assert cat.catalog.upgrade_policy == "manual"
    assert cat.catalog.chart.folder is not None
    assert cat.catalog.chart.folder.endswith("/src/catalog/tiny/chart")


def test_source_refs_become_tagged_and_helm_releases_leave_the_fingerprints(legacy: Path) -> None:
    with open_store(legacy) as store:
        refs = {
            kind: [r.source_ref for r in store.list_revisions(app_name(kind, SFX))]
            for kind in ("plain", "rel", "git", "cat")
        }
        releases = [d for d in store.list_deployments(app=app_name("rel", SFX))]
        syncs = store.list_syncs(app_name("rel", SFX), limit=100)
        plain = store.list_deployments(app=app_name("plain", SFX))

    assert all(isinstance(r, LocalContent) for r in refs["plain"] + refs["rel"])
    assert len(refs["plain"]) == 2
    assert all(isinstance(r, GitCommit) and len(r.commit) == 40 for r in refs["git"])
    assert refs["cat"] == [CatalogChart(entry="tiny", version="1.0.0")]
    assert len(releases) == 3
    for d in releases:
        assert d.release is not None
        assert (d.release.namespace, d.release.name) == (f"legacy-{SFX}", app_name("rel", SFX))
        assert d.release.revision == 2
        assert [(h.revision, h.helm_revision) for h in d.release.history] == [(1, 1), (2, 2)]
        assert "helm.release" not in d.applied
    assert syncs
    assert not [s for s in syncs if "helmRevision" in s.counts]
    assert {d.state for d in plain} == {"Ready"}
    # The ConfigMap and the namespace appflow adds for it.
    assert all(len(d.inventory) == 2 and d.resource_counts.desired_ready == 2 for d in plain)


def test_the_paused_rollout_and_the_history_survive(legacy: Path) -> None:
    with open_store(legacy) as store:
        rollout = store.get_rollout(app_name("plain", SFX))
        rendered = store.get_revision(app_name("plain", SFX), 2).rendered

    assert rollout.state == "Paused"
    assert [p.state for p in rollout.partitions] == ["Ready", "Ready", "Ready"]
    assert sorted(rendered) == ["test-1", "test-2", "test-3"]


def test_an_app_a_rollback_paused_stays_pinned_at_the_revision_it_applied(legacy: Path) -> None:
    conn = sqlite3.connect(legacy, isolation_level=None)
    conn.execute("UPDATE apps SET paused = 1 WHERE name = ?", (app_name("plain", SFX),))
    conn.close()

    with open_store(legacy) as store:
        plain = store.get_app(app_name("plain", SFX))
        git = store.get_app(app_name("git", SFX))

    assert (plain.pinned_revision, plain.paused) == (2, True)
    assert (git.pinned_revision, git.paused) == (None, False)


def test_a_failed_conversion_leaves_the_store_at_the_version_before(legacy: Path) -> None:
    conn = sqlite3.connect(legacy, isolation_level=None)
    conn.execute("UPDATE revisions SET source_ref = 'svn:12' WHERE number = 1")

    with pytest.raises(StoreError, match="unknown source 'svn:12'"):
        migrate(conn, path=legacy)

    # Version 4 (the dashboard's columns) applied; version 5, the typed records, not at all.
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    assert "definition" in {row[1] for row in conn.execute("PRAGMA table_info(apps)")}
    assert migrate(conn, path=legacy, migrations=MIGRATIONS[:4]) == 4
    conn.close()
    assert SCHEMA_VERSION > 5

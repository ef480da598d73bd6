"""A store written by schema version 9 (main before hook state had a field of its own)
opens and migrates: each Deployment's hook state leaves its fingerprints for its own field.

The store is tests/unit/testdata/store-v9.sql, written by that version's own engine
(tests/unit/testdata/make_store_v9.py); tests/integration/engine/test_legacy_store.py
syncs from it on the sandbox.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from appflow.model.hooks import HOOKS_KEY
from appflow.model.records import HookRecord
from appflow.store import open_store
from appflow.store.migrations import MIGRATIONS, migrate
from tests.legacy_store import DUMP_V9, hook_app_name, load_dump

SFX = "m9"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    db = tmp_path / "home" / "appflow.db"
    load_dump(
        db,
        home=tmp_path / "home",
        cache=tmp_path / "cache",
        src=tmp_path / "src",
        suffix=SFX,
        dump=DUMP_V9,
    )
    return db


def _v9_hook_states(db: Path) -> dict[tuple[str, str], str]:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 9
        rows = conn.execute("SELECT app, cluster, applied FROM deployments").fetchall()
    finally:
        conn.close()
    return {(app, cluster): json.loads(applied)[HOOKS_KEY] for app, cluster, applied in rows}


def test_the_dump_keeps_hook_state_among_the_fingerprints(legacy: Path) -> None:
    states = _v9_hook_states(legacy)
    assert len(states) == 6
    assert {s for (app, _), s in states.items() if app == hook_app_name("hooked", SFX)} == {
        "install-failed"
    }


def test_hook_state_moves_to_its_own_field_and_leaves_the_fingerprints(legacy: Path) -> None:
    before = _v9_hook_states(legacy)
    conn = sqlite3.connect(legacy)
    old_applied = {
        (app, cluster): json.loads(applied)
        for app, cluster, applied in conn.execute("SELECT app, cluster, applied FROM deployments")
    }
    conn.close()
    done_revision = before[(hook_app_name("done", SFX), "test-1")]

    with open_store(legacy) as store:
        deployments = store.list_deployments()

    assert len(deployments) == 6
    for d in deployments:
        assert HOOKS_KEY not in d.applied
        # Every object's fingerprint is kept as it was.
        old = old_applied[(d.app, d.cluster)]
        del old[HOOKS_KEY]
        assert d.applied == old
        assert d.applied, "the apps' objects were applied and fingerprinted"
        if d.app == hook_app_name("hooked", SFX):
            assert d.hooks == HookRecord(install_failed=True)
        else:
            assert d.hooks == HookRecord(revision=done_revision)


def test_the_syncs_of_version_9_have_no_actor(legacy: Path) -> None:
    with open_store(legacy) as store:
        syncs = store.list_syncs(hook_app_name("done", SFX), limit=10)
    assert len(syncs) == 3
    assert {s.actor for s in syncs} == {""}
    assert {s.trigger for s in syncs} == {"user"}


def test_version_10_reads_hook_state_written_back_after_the_migration(legacy: Path) -> None:
    # A record written after the migration reads back as written (no fingerprint key).
    with open_store(legacy) as store:
        d = store.list_deployments(app=hook_app_name("done", SFX))[0]
        store.put_deployment(replace(d, hooks=HookRecord(revision="r9")))
        again = store.get_deployment(d.app, d.cluster)
    assert again.hooks == HookRecord(revision="r9")
    assert HOOKS_KEY not in again.applied


def test_a_store_migrated_to_version_9_stops_there(legacy: Path) -> None:
    conn = sqlite3.connect(legacy, isolation_level=None)
    assert migrate(conn, path=legacy, migrations=MIGRATIONS[:9]) == 9
    assert "hooks" not in {row[1] for row in conn.execute("PRAGMA table_info(deployments)")}
    assert migrate(conn, path=legacy) == 10
    assert "hooks" in {row[1] for row in conn.execute("PRAGMA table_info(deployments)")}
    conn.close()

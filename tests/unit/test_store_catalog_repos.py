"""Catalog repositories in the store, and the migration that takes in the JSON file
earlier versions kept them in (and the free-form repository credentials of version 5)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from appflow.errors import NotFoundError, StoreError
from appflow.model.records import CatalogRepoRecord, RepoCredentials
from appflow.store import open_store
from appflow.store.migrations import MIGRATIONS, migrate

# The step that takes catalog repositories in, and the migrations before it (a store as the
# main before it wrote it), whatever number it ends up with.
STEP = next(m for m in MIGRATIONS if "catalog repositories" in m.description)
BEFORE = tuple(m for m in MIGRATIONS if m.version < STEP.version)


def _store_before_the_step(path: Path, *, auth: dict[str, object]) -> None:
    """A store as main before STEP wrote it: the schema before it, a repo row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, path=path, migrations=BEFORE) == BEFORE[-1].version
    conn.execute(
        """INSERT INTO repos (name, url, ref, paths, auth, poll_interval_seconds, created_at)
           VALUES ('infra', 'ssh://git@example.com/infra.git', 'main', '[]', ?, 60,
                   '2026-11-01T00:00:00+00:00')""",
        (json.dumps(auth),),
    )
    conn.close()


def test_a_catalog_repository_is_recorded_replaced_and_removed(tmp_path: Path) -> None:
    store = open_store(tmp_path / "appflow.db")
    first = store.put_catalog_repo(CatalogRepoRecord(name="charts", url="https://c.example"))
    again = store.put_catalog_repo(
        CatalogRepoRecord(name="charts", url="https://c2.example", username="ci")
    )
    assert (again.url, again.username, again.created_at) == (
        "https://c2.example",
        "ci",
        first.created_at,
    )
    assert [r.name for r in store.list_catalog_repos()] == ["charts"]
    store.delete_catalog_repo("charts")
    with pytest.raises(NotFoundError, match="no catalog repository named 'charts'"):
        store.get_catalog_repo("charts")
    store.close()


def test_a_store_before_the_step_takes_in_the_catalog_repos_file(tmp_path: Path) -> None:
    db = tmp_path / "home" / "appflow.db"
    _store_before_the_step(db, auth={})
    legacy = db.parent / "catalog-repos.json"
    legacy.write_text(
        json.dumps(
            {
                "repos": [
                    {
                        "name": "charts",
                        "url": "https://charts.example",
                        "username": "ci",
                        "password_file": "/secrets/charts.pw",
                        "ca_file": None,
                        "poll_interval_seconds": 120,
                    },
                    {"name": "oci", "url": "oci://registry.example/charts"},
                ]
            }
        )
    )

    store = open_store(db)
    repos = {r.name: r for r in store.list_catalog_repos()}
    store.close()

    assert set(repos) == {"charts", "oci"}
    assert (repos["charts"].username, repos["charts"].password_file) == ("ci", "/secrets/charts.pw")
    assert repos["charts"].poll_interval_seconds == 120
    assert repos["oci"].is_oci
    assert repos["oci"].poll_interval_seconds == 300
    # Read once: the file is kept under another name, never read again.
    assert not legacy.exists()
    assert (db.parent / "catalog-repos.json.moved-to-store").is_file()


def test_earlier_credentials_become_typed_and_unusable_ones_are_dropped(
    tmp_path: Path,
) -> None:
    token = tmp_path / "home" / "a"
    _store_before_the_step(token / "appflow.db", auth={"kind": "token", "token_file": "/s/t"})
    ssh = tmp_path / "home" / "b"
    _store_before_the_step(
        ssh / "appflow.db",
        auth={"kind": "ssh", "private_key_file": "/s/k", "known_hosts_file": "/s/kh"},
    )
    odd = tmp_path / "home" / "c"
    _store_before_the_step(odd / "appflow.db", auth={"kind": "basic", "password_file": "/s/p"})

    def credentials(folder: Path) -> RepoCredentials:
        store = open_store(folder / "appflow.db")
        try:
            return store.get_repo("infra").auth
        finally:
            store.close()

    assert credentials(token) == RepoCredentials(kind="token", secret_file="/s/t")
    assert credentials(ssh) == RepoCredentials(
        kind="ssh", secret_file="/s/k", known_hosts_file="/s/kh"
    )
    # Basic without a user name never worked: the repository stays, without credentials.
    assert credentials(odd) == RepoCredentials()


def test_a_broken_catalog_repos_file_stops_the_step_naming_the_file(tmp_path: Path) -> None:
    db = tmp_path / "home" / "appflow.db"
    _store_before_the_step(db, auth={})
    legacy = db.parent / "catalog-repos.json"
    legacy.write_text(json.dumps({"repos": [{"url": "https://no-name.example"}]}))

    with pytest.raises(StoreError, match=r"catalog-repos.json cannot be read: .*name and a url"):
        open_store(db)

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == BEFORE[-1].version
    conn.close()
    assert legacy.is_file()

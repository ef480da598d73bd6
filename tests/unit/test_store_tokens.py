"""API tokens in the SQLite store: kept as hashes, unique names, revocation, last use."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from appflow.errors import ConfigError, NotFoundError
from appflow.model.records import utc_now
from appflow.model.tokens import hash_token, new_token
from appflow.store import SqliteStore, open_store
from appflow.store.migrations import MIGRATIONS, migrate


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with open_store(tmp_path / "appflow.db") as opened:
        yield opened


def test_a_token_is_found_by_its_hash_and_never_kept_in_clear(
    store: SqliteStore, tmp_path: Path
) -> None:
    token = new_token()
    added = store.add_token("ci", token_hash=hash_token(token))
    assert added.id > 0
    assert added.last_used is None
    found = store.use_token(hash_token(token))
    assert found is not None
    assert found.name == "ci"
    assert found.last_used is not None
    assert store.use_token(hash_token(new_token())) is None
    assert token.encode() not in (tmp_path / "appflow.db").read_bytes()
    assert [t.name for t in store.list_tokens()] == ["ci"]


def test_token_names_are_unique(store: SqliteStore) -> None:
    store.add_token("ci", token_hash=hash_token(new_token()))
    with pytest.raises(ConfigError, match="a token named 'ci' exists"):
        store.add_token("ci", token_hash=hash_token(new_token()))


def test_a_revoked_token_is_refused(store: SqliteStore) -> None:
    token = new_token()
    store.add_token("ci", token_hash=hash_token(token))
    store.delete_token("ci")
    assert store.use_token(hash_token(token)) is None
    assert store.list_tokens() == []
    with pytest.raises(NotFoundError, match="appflow token list"):
        store.delete_token("ci")


def test_last_used_is_written_at_most_once_a_minute(store: SqliteStore) -> None:
    token = new_token()
    store.add_token("ci", token_hash=hash_token(token))
    t0 = utc_now()
    first = store.use_token(hash_token(token), now=t0)
    again = store.use_token(hash_token(token), now=t0 + timedelta(seconds=30))
    later = store.use_token(hash_token(token), now=t0 + timedelta(seconds=61))
    assert first is not None
    assert again is not None
    assert later is not None
    assert again.last_used == t0
    assert later.last_used == t0 + timedelta(seconds=61)
    assert store.list_tokens()[0].last_used == t0 + timedelta(seconds=61)


def test_a_version_2_store_gains_the_tokens_table_and_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, path=path, migrations=MIGRATIONS[:2]) == 2
    conn.execute(
        """INSERT INTO repos (name, url, ref, paths, auth, poll_interval_seconds, created_at)
           VALUES ('retail', 'https://git.example.com/retail.git', 'main', '[]', '{}', 60,
                   '2025-01-01T00:00:00.000000+00:00')"""
    )
    conn.close()
    with open_store(path) as store:
        assert store.get_repo("retail").url == "https://git.example.com/retail.git"
        store.add_token("ci", token_hash=hash_token(new_token()))
        assert [t.name for t in store.list_tokens()] == ["ci"]


def test_a_version_5_store_keeps_its_tokens_and_gains_their_expiry(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, path=path, migrations=MIGRATIONS[:5]) == 5
    conn.execute(
        "INSERT INTO tokens (name, hash, created_at, last_used) VALUES (?, ?, ?, NULL)",
        ("old", hash_token(new_token()), utc_now().isoformat()),
    )
    conn.close()
    with open_store(path) as store:
        (old,) = store.list_tokens()
        assert old.name == "old"
        assert old.expires_at is None
        assert not old.expired(utc_now())
        assert not store.remember_deliveries(["id:x"], now=1.0, ttl_seconds=60)
        assert store.list_policies() == []

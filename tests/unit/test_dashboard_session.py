"""Dashboard session cookies and CSRF tokens (appflow.server.ui.session)."""

from __future__ import annotations

import stat
from pathlib import Path

from appflow.server.ui.session import Sessions
from appflow.store.sqlite import SqliteStore

HASH = "a" * 64


def test_a_cookie_round_trips_and_any_change_to_it_is_refused() -> None:
    sessions = Sessions(b"k" * 32)
    cookie = sessions.issue(HASH, now=1000.0)
    session = sessions.read(cookie, now=1001.0)
    assert session is not None
    assert session.token_hash == HASH
    body, _, signature = cookie.partition(".")
    assert (
        sessions.read(
            body + "." + signature[:-1] + ("A" if signature[-1] != "A" else "B"), now=1001.0
        )
        is None
    )
    assert sessions.read(body[:-2] + "." + signature, now=1001.0) is None
    assert Sessions(b"other-key" * 4).read(cookie, now=1001.0) is None
    assert sessions.read("", now=1001.0) is None
    assert sessions.read("garbage", now=1001.0) is None


def test_a_session_ends_after_its_lifetime() -> None:
    sessions = Sessions(b"k" * 32, lifetime=60)
    cookie = sessions.issue(HASH, now=1000.0)
    assert sessions.read(cookie, now=1059.0) is not None
    assert sessions.read(cookie, now=1061.0) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    sessions = Sessions(b"k" * 32)
    one = sessions.read(sessions.issue(HASH, now=1.0), now=2.0)
    two = sessions.read(sessions.issue(HASH, now=1.0), now=2.0)
    assert one is not None
    assert two is not None
    assert sessions.csrf_ok(one, sessions.csrf(one))
    assert not sessions.csrf_ok(one, sessions.csrf(two))
    assert not sessions.csrf_ok(one, None)
    assert not sessions.csrf_ok(one, "")


def test_the_key_is_made_once_private_and_shared_by_every_server_of_the_store(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "appflow.db"
    first, second = SqliteStore(path), SqliteStore(path)
    try:
        key = first.session_key()
        assert len(key) == 32
        assert second.session_key() == key
        assert stat.S_IMODE((path.parent / "ui-session.key").stat().st_mode) == 0o600
    finally:
        first.close()
        second.close()
    reopened = SqliteStore(path)
    try:
        assert reopened.session_key() == key
    finally:
        reopened.close()

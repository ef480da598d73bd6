"""Age keys held for clusters and groups: stored like credentials, listed without secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from appflow.errors import ConfigError, NotFoundError
from appflow.secrets import age
from appflow.secrets.keys import KeyRing, read_identity_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_held_0600_in_0700_folders_and_listed_by_recipient(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    made = age.generate()
    held = ring.add("site", scope="cluster", owner="berlin-1", identity=made)
    assert held.recipient == made.recipient
    path = tmp_path / "keys" / "cluster" / "berlin-1" / "site.agekey"
    assert mode(path) == 0o600
    for folder in (path.parent, path.parent.parent, tmp_path / "keys"):
        assert mode(folder) == 0o700
    assert ring.held() == [held]
    assert made.secret not in repr(ring.held())
    assert ring.identities(scope="cluster", owner="berlin-1") == [made]
    assert ring.identities(scope="group", owner="berlin-1") == []


def test_a_name_or_an_identity_is_held_once(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path)
    made = age.generate()
    ring.add("a", scope="group", owner="eu", identity=made)
    with pytest.raises(ConfigError, match="already holds a key named a"):
        ring.add("a", scope="group", owner="eu", identity=age.generate())
    with pytest.raises(ConfigError, match="already holds this identity as key a"):
        ring.add("b", scope="group", owner="eu", identity=made)
    with pytest.raises(ConfigError, match="DNS label"):
        ring.add("Bad_Name", scope="group", owner="eu", identity=age.generate())


def test_remove_and_remove_owner(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path)
    ring.add("a", scope="cluster", owner="c1", identity=age.generate())
    ring.add("b", scope="cluster", owner="c1", identity=age.generate())
    ring.remove("a", scope="cluster", owner="c1")
    assert [k.name for k in ring.held(owner="c1", scope="cluster")] == ["b"]
    with pytest.raises(NotFoundError):
        ring.remove("a", scope="cluster", owner="c1")
    assert [k.name for k in ring.remove_owner(scope="cluster", owner="c1")] == ["b"]
    assert not (tmp_path / "cluster" / "c1").exists()


def test_an_identity_file_must_hold_exactly_one_identity(tmp_path: Path) -> None:
    one, two = age.generate(), age.generate()
    path = tmp_path / "k.txt"
    path.write_text(age.format_identity_file(one))
    assert read_identity_file(path) == one
    path.write_text(age.format_identity_file(one) + age.format_identity_file(two))
    with pytest.raises(ConfigError, match="holds 2 age identities"):
        read_identity_file(path)

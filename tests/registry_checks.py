"""What the registry's engine functions do, written once and run against both stores
(SQLite in tests/unit/test_registry.py, the hub's custom resources in
tests/integration/hub/test_registry_hub.py): cluster labels, groups, API tokens and
webhook secrets, called without the CLI."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from appflow.engine.clusters import add_group, label_cluster, list_groups, remove_group
from appflow.engine.repos import set_webhook_secret
from appflow.engine.tokens import create_token, revoke_token
from appflow.errors import AppflowError, ConfigError, NotFoundError
from appflow.model.tokens import hash_token
from appflow.secrets import age
from appflow.secrets.keys import KeyRing
from appflow.store import Store


def check_labels_and_groups(store: Store, *, cluster: str, other: str, keys: KeyRing) -> None:
    """CLUSTER and OTHER are registered, without the labels used here."""
    labelled = label_cluster(store, name=cluster, set_labels={"tier": "edge", "zone": "a"})
    assert labelled.labels["tier"] == "edge"
    assert store.get_cluster(cluster).labels == labelled.labels
    label_cluster(store, name=other, set_labels={"tier": "core"})

    assert add_group(store, name="edges", selector="tier=edge") == [cluster]
    assert add_group(store, name="tiered", selector="tier in (edge,core)") == sorted(
        [cluster, other]
    )
    with pytest.raises(ConfigError):
        add_group(store, name="bad", selector="tier in (")
    groups = {g.name: members for g, members in list_groups(store)}
    assert groups == {"edges": [cluster], "tiered": sorted([cluster, other])}

    # Removing a label takes the cluster out of the group's members.
    after = label_cluster(store, name=cluster, remove=["tier", "absent"])
    assert "tier" not in after.labels
    assert after.labels["zone"] == "a"
    assert {g.name: m for g, m in list_groups(store)}["edges"] == []
    with pytest.raises(NotFoundError):
        label_cluster(store, name="no-such-cluster", set_labels={"a": "b"})

    keys.add("k1", scope="group", owner="edges", identity=age.generate())
    assert [k.name for k in keys.held(scope="group", owner="edges")] == ["k1"]
    remove_group(store, name="edges", keys=keys)
    assert [g.name for g, _ in list_groups(store)] == ["tiered"]
    assert keys.held(scope="group", owner="edges") == [], "its keys went with it"
    remove_group(store, name="tiered", keys=keys)


def check_tokens(store: Store, *, name: str) -> None:
    made = create_token(store, name=name, read_only=True, ttl=timedelta(days=2))
    assert made.record.scope == "read-only"
    assert made.record.expires_at is not None
    listed = {t.name: t for t in store.list_tokens()}
    assert listed[name].expires_at == made.record.expires_at
    assert store.use_token(hash_token(made.secret)) is not None
    # Only the hash is kept.
    assert made.secret not in repr(store.list_tokens())
    with pytest.raises(AppflowError):
        create_token(store, name=name)
    revoke_token(store, name=name)
    assert store.use_token(hash_token(made.secret)) is None
    assert name not in {t.name for t in store.list_tokens()}


def check_webhook_secret(
    store: Store, *, repo: str, folder: Path, stored_as: Callable[[str], str]
) -> None:
    """STORED_AS: the reference the store keeps for one given (a hub copies the secret into
    a Secret of its own). HOOK_SECRET is set in this process's environment."""
    secret = folder / "secret"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o644)
    kept = set_webhook_secret(store, repo=repo, secret_file=secret)
    assert kept.ref == f"file:{secret.resolve()}"
    assert len(kept.warnings) == 1
    assert "chmod 600" in kept.warnings[0]
    assert store.get_repo(repo).webhook_secret_ref == stored_as(kept.ref)
    os.chmod(secret, 0o600)
    assert set_webhook_secret(store, repo=repo, secret_file=secret).warnings == ()

    from_env = set_webhook_secret(store, repo=repo, secret_env="HOOK_SECRET")
    assert (from_env.ref, from_env.warnings) == ("env:HOOK_SECRET", ())
    assert store.get_repo(repo).webhook_secret_ref == stored_as("env:HOOK_SECRET")

    cleared = set_webhook_secret(store, repo=repo, clear=True)
    assert (cleared.ref, store.get_repo(repo).webhook_secret_ref) == (None, None)

    empty = folder / "empty"
    empty.write_text("  \n")
    for wrong in (
        {"secret_file": empty},
        {"secret_file": folder / "missing"},
        {"secret_env": "NOT A NAME"},
        {},
        {"clear": True, "secret_env": "HOOK_SECRET"},
    ):
        with pytest.raises(ConfigError):
            set_webhook_secret(store, repo=repo, **wrong)  # type: ignore[arg-type]
    assert store.get_repo(repo).webhook_secret_ref is None, "a refused change changes nothing"

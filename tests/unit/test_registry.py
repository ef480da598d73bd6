"""The registry's engine functions on the embedded SQLite store, without the CLI
(the same checks run on a hub in tests/integration/hub/test_registry_hub.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appflow.engine.repos import set_webhook_secret
from appflow.model.records import ClusterRecord, RepoRecord
from appflow.secrets.keys import KeyRing
from appflow.store import SqliteStore, open_store
from tests.registry_checks import check_labels_and_groups, check_tokens, check_webhook_secret


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with open_store(tmp_path / "appflow.db") as opened:
        yield opened


def _cluster(name: str) -> ClusterRecord:
    return ClusterRecord(name=name, kind="imported", labels={"site": name})


def test_cluster_labels_and_groups(store: SqliteStore, tmp_path: Path) -> None:
    for name in ("berlin-1", "paris-1"):
        store.put_cluster(_cluster(name))
    check_labels_and_groups(
        store, cluster="berlin-1", other="paris-1", keys=KeyRing(tmp_path / "keys")
    )


def test_api_tokens(store: SqliteStore) -> None:
    check_tokens(store, name="ci")


def test_webhook_secrets(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put_repo(RepoRecord(name="gitops", url="https://git.example/org/gitops.git", ref="main"))
    monkeypatch.setenv("HOOK_SECRET", "from-env")
    check_webhook_secret(store, repo="gitops", folder=tmp_path, stored_as=lambda ref: ref)
    # The server reads the variable from its own environment: set or not here, it is kept.
    unset = set_webhook_secret(store, repo="gitops", secret_env="OTHER_SECRET", environ={})
    assert store.get_repo("gitops").webhook_secret_ref == "env:OTHER_SECRET"
    assert len(unset.warnings) == 1
    assert "OTHER_SECRET is not set here" in unset.warnings[0]

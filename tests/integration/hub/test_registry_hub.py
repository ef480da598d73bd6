"""The registry's engine functions on a hub (HubStore: custom resources), without the CLI:
the same checks as tests/unit/test_registry.py on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from appflow.hub.store import HubStore
from appflow.model.records import ClusterRecord, RepoRecord
from appflow.model.resources import SECRET_KEY_WEBHOOK, webhook_secret_name
from appflow.secrets.keys import KeyRing
from tests.integration.hub.conftest import Hub
from tests.registry_checks import check_labels_and_groups, check_tokens, check_webhook_secret

pytestmark = pytest.mark.cluster


def test_the_registry_functions_on_a_hub(
    hub_crds: Hub, hub_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "from-env")
    store = HubStore(hub_crds.kube(), workspace=hub_namespace)
    try:
        for name in ("berlin-1", "paris-1"):
            store.put_cluster(ClusterRecord(name=name, kind="imported", labels={"site": name}))
        check_labels_and_groups(
            store, cluster="berlin-1", other="paris-1", keys=KeyRing(tmp_path / "keys")
        )
        check_tokens(store, name="ci")
        store.put_repo(
            RepoRecord(name="gitops", url="https://git.example/org/gitops.git", ref="main")
        )
        # The hub keeps the secret in a Secret of its own, for its webhook receivers.
        check_webhook_secret(
            store,
            repo="gitops",
            folder=tmp_path,
            stored_as=lambda _: f"secret:{webhook_secret_name('gitops')}/{SECRET_KEY_WEBHOOK}",
        )
    finally:
        store.close()

"""Objects whose names hold '_' (legal for RBAC objects and custom resources) are synced,
kept track of and pruned like any other, and inventories written before inventory ids
were escaped are read and migrated."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appflow.model.objects import INVENTORY_NAMESPACE, Manifest
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    added,
    cli,
    configmap,
    dev_cluster,
    dev_only,
    exists,
    synced,
    write_files,
)

pytestmark = pytest.mark.cluster

RBAC = "rbac.authorization.k8s.io/v1"


def _rbac(ns: str, suffix: str) -> dict[str, list[Manifest]]:
    """A ServiceAccount and what grants it, by RBAC objects named with '_' and ':'."""
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
    subject = [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]
    cluster_role = f"appflow-test:{suffix}_reader"
    return {
        "account.yaml": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader", "namespace": ns}},
            configmap("plain", ns, {"k": "v"}),
        ],
        "role.yaml": [
            {"apiVersion": RBAC, "kind": "Role", "metadata": {"name": "read_only", "namespace": ns}, "rules": rules},
        ],
        "binding.yaml": [
            {
                "apiVersion": RBAC,
                "kind": "RoleBinding",
                "metadata": {"name": "read_only_binding", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read_only"},
                "subjects": subject,
            },
        ],
        "cluster-role.yaml": [
            {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": cluster_role}, "rules": rules},
        ],
    }  # fmt: skip


@pytest.fixture
def cluster_roles(fleet: Fleet, space: Space) -> Iterator[None]:
    """Cluster-scoped objects outlive the test's namespace: remove them whatever happens."""
    yield
    for index in range(len(fleet.cluster_names)):
        kube = fleet.sandbox.kube(index)
        try:
            kube.delete_sync(RBAC, "ClusterRole", f"appflow-test:{space.suffix}_reader")
        finally:
            kube.close()


def _rbac_app(fleet: Fleet, space: Space, folder: Path, base: str) -> tuple[str, int, str]:
    """App BASE (with the space's suffix) of _rbac's objects in FOLDER, registered:
    its name, and the index and name of the cluster it goes to."""
    app = space.app(base)
    files: dict[str, Any] = {"appflow.yaml": dev_only(app, space.namespace)}
    write_files(folder, {**files, **_rbac(space.namespace, space.suffix)})
    added(app, folder)
    return (app, *dev_cluster(fleet.sandbox))


@pytest.mark.usefixtures("cluster_roles")
def test_objects_whose_names_hold_underscores_sync_prune_and_delete(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, folder = space.namespace, tmp_path / "app"
    app, index, dev = _rbac_app(fleet, space, folder, "rbac")

    assert f"-> {dev}: Ready (5 created, 1 configured, 0 unchanged, 0 pruned)" in synced(app)
    # The second sync reads back what the first recorded: ids with '_' in a name.
    assert f"-> {dev}: Ready (0 created, 0 configured, 6 unchanged, 0 pruned)" in synced(app)

    write_files(folder, {"binding.yaml": None, "cluster-role.yaml": None})
    assert f"-> {dev}: Ready (0 created, 0 configured, 4 unchanged, 2 pruned)" in synced(app)
    sandbox = fleet.sandbox
    assert not exists(sandbox, index, RBAC, "RoleBinding", "read_only_binding", ns)
    assert not exists(
        sandbox, index, RBAC, "ClusterRole", f"appflow-test:{space.suffix}_reader", ""
    )
    assert exists(sandbox, index, RBAC, "Role", "read_only", ns)

    deleted = cli("app", "delete", app)
    assert deleted.exit_code == 0, deleted.output
    assert not exists(sandbox, index, RBAC, "Role", "read_only", ns)
    assert not exists(sandbox, index, "v1", "ServiceAccount", "reader", ns)


def _legacy_id(entry_id: str) -> str:
    """The id appflow wrote before escaping: the fields joined by '_' as they are."""
    from appflow.model.objects import ObjectRef

    ref = ObjectRef.decode(entry_id)
    return f"{ref.namespace}_{ref.name}_{ref.group}_{ref.kind}"


@pytest.mark.usefixtures("cluster_roles")
def test_inventories_written_before_ids_were_escaped_are_read_and_rewritten(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, folder = space.namespace, tmp_path / "app"
    app, index, dev = _rbac_app(fleet, space, folder, "legacy")
    synced(app)

    # Make both copies of the inventory what an appflow of the first format wrote:
    # the ConfigMap (format "1", ids not escaped) and the store's mirror and fingerprints.
    kube = fleet.sandbox.kube(index)
    try:
        cm = kube.get_sync("v1", "ConfigMap", f"appflow-inventory-{app}", INVENTORY_NAMESPACE)
        assert cm is not None
        entries = json.loads(cm["data"]["entries"])
        old = [{"id": _legacy_id(e["id"]), "v": e["v"]} for e in entries]
        assert any(e["id"].count("_") > 3 for e in old), old
        cm["data"] = {"format": "1", "entries": json.dumps(old)}
        for key in ("managedFields", "resourceVersion", "uid", "creationTimestamp"):
            cm["metadata"].pop(key, None)
        kube.apply_sync(cm, force=True)
    finally:
        kube.close()
    _legacy_store(fleet.home / "appflow.db", app)

    # Nothing changed in the app: the sync still rewrites the inventory in the new format.
    assert f"-> {dev}: Ready (0 created, 0 configured, 6 unchanged, 0 pruned)" in synced(app)
    data = _inventory_data(fleet, index, app)
    assert data["format"] == "2"
    ids = [e["id"] for e in json.loads(data["entries"])]
    assert f"{ns}_read%5Fonly_rbac.authorization.k8s.io_Role" in ids, ids

    write_files(folder, {"binding.yaml": None})
    assert f"-> {dev}: Ready (0 created, 0 configured, 5 unchanged, 1 pruned)" in synced(app)
    assert not exists(fleet.sandbox, index, RBAC, "RoleBinding", "read_only_binding", ns)
    assert exists(fleet.sandbox, index, RBAC, "Role", "read_only", ns)


def _inventory_data(fleet: Fleet, index: int, app: str) -> dict[str, str]:
    kube = fleet.sandbox.kube(index)
    try:
        cm = kube.get_sync("v1", "ConfigMap", f"appflow-inventory-{app}", INVENTORY_NAMESPACE)
    finally:
        kube.close()
    assert cm is not None
    return dict(cm["data"])


def _legacy_store(path: Path, app: str) -> None:
    """Rewrite APP's mirrored inventory and fingerprints with ids not escaped."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        for cluster, inventory, applied in conn.execute(
            "SELECT cluster, inventory, applied FROM deployments WHERE app = ?", (app,)
        ).fetchall():
            lines = []
            for line in json.loads(inventory):
                api_version, _, entry_id = line.partition(" ")
                lines.append(f"{api_version} {_legacy_id(entry_id)}")
            keys = {_legacy_id(k): v for k, v in json.loads(applied).items()}
            conn.execute(
                "UPDATE deployments SET inventory = ?, applied = ? WHERE app = ? AND cluster = ?",
                (json.dumps(lines), json.dumps(keys), app, cluster),
            )
    finally:
        conn.close()

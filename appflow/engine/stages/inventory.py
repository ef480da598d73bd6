"""The inventory on the cluster: the ConfigMap ``appflow-system/appflow-inventory-<app>``.

Both this copy and the store's mirror are written ahead of any apply, so a crash
mid-apply never leaves an object appflow created without tracking it; a sync reads both
and prunes from their union, so losing either (a deleted ConfigMap, a store write that
failed) loses nothing. A ConfigMap in an older format is rewritten by the next sync.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from appflow.errors import AppflowError, MissingKindError, MissingNamespaceError
from appflow.kube.client import KubeCluster
from appflow.model.inventory import Inventory
from appflow.model.objects import INVENTORY_NAMESPACE, LABEL_APP, Manifest, ObjectRef
from appflow.model.ownership import without_objects

_COMPONENT = "app.kubernetes.io/component"


def inventory_name(app: str) -> str:
    return f"appflow-inventory-{app}"


def inventory_ref(app: str) -> ObjectRef:
    return ObjectRef(
        group="", kind="ConfigMap", namespace=INVENTORY_NAMESPACE, name=inventory_name(app)
    )


def inventory_of(kube: KubeCluster, app: str, configmap: Manifest) -> Inventory:
    """The inventory a ConfigMap read from KUBE holds (StoreError naming app and cluster)."""
    try:
        return Inventory.from_data(app, configmap.get("data") or {})
    except AppflowError as err:
        located = err.located(app=app, cluster=kube.name, object=str(inventory_ref(app)))
        located.hint = (
            f"nothing is synced or pruned until it is readable; if it was damaged, delete it "
            f"(kubectl -n {INVENTORY_NAMESPACE} delete configmap {inventory_name(app)}): "
            "the store's mirror stands in and the next sync writes it again"
        )
        raise located from None


async def read_inventory(kube: KubeCluster, app: str) -> Inventory | None:
    """The inventory stored on the cluster, or None when there is none."""
    cm = await inventory_configmap(kube, app)
    return None if cm is None else inventory_of(kube, app, cm)


async def inventory_configmap(kube: KubeCluster, app: str) -> Manifest | None:
    """The ConfigMap that holds APP's inventory on the cluster, or None."""
    try:
        return await kube.get("v1", "ConfigMap", inventory_name(app), INVENTORY_NAMESPACE)
    except MissingKindError:
        return None


async def write_inventory(kube: KubeCluster, inventory: Inventory) -> None:
    cm: Manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": inventory_name(inventory.app),
            "namespace": INVENTORY_NAMESPACE,
            "labels": {LABEL_APP: inventory.app, _COMPONENT: "inventory"},
        },
        "data": inventory.to_data(),
    }
    try:
        await kube.apply(cm, force=True)
    except MissingNamespaceError:
        # The cluster's first inventory. Creating the namespace only when the
        # write says it is missing saves a request on every other write.
        await kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": INVENTORY_NAMESPACE}}
        )
        await kube.apply(cm, force=True)


async def read_inventories(kube: KubeCluster) -> list[Inventory]:
    """Every app's inventory on KUBE (one LIST). An unreadable one is left out: the
    labels of the objects it names still say whose they are."""
    try:
        found = await kube.list_objects(
            "v1",
            "ConfigMap",
            namespace=INVENTORY_NAMESPACE,
            label_selector=f"{_COMPONENT}=inventory",
        )
    except MissingKindError:
        return []
    out: list[Inventory] = []
    for configmap in found:
        app = ((configmap.get("metadata") or {}).get("labels") or {}).get(LABEL_APP)
        if not app:
            continue
        with contextlib.suppress(AppflowError):
            out.append(inventory_of(kube, str(app), configmap))
    return out


async def hand_over(
    kube: KubeCluster, taken_from: Mapping[str, Sequence[ObjectRef]]
) -> dict[str, tuple[ObjectRef, ...]]:
    """Remove objects another app took from their previous owners' inventories on KUBE.

    Called once the new owner has applied them (its label is on them now): a crash
    before this leaves a stale entry in the old inventory, which prune ignores, as it
    re-reads the label before deleting. Returns what was handed over, per old owner.
    """
    done: dict[str, tuple[ObjectRef, ...]] = {}
    for owner, refs in sorted(taken_from.items()):
        if not refs:
            continue
        current = await read_inventory(kube, owner)
        if current is not None:
            remaining = without_objects(current, refs)
            if remaining != current:
                await write_inventory(kube, remaining)
        done[owner] = tuple(refs)
    return done


async def delete_inventory(kube: KubeCluster, app: str) -> None:
    await kube.delete("v1", "ConfigMap", inventory_name(app), INVENTORY_NAMESPACE)

"""The Inventory: building it, storing it in a ConfigMap, and what it offers for prune."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appflow.errors import PruneError, StoreError
from appflow.model.inventory import Inventory, InventoryEntry, prune_set, with_failed_deletes
from appflow.model.objects import Manifest, ObjectRef


def obj(api_version: str, kind: str, name: str, namespace: str = "") -> Manifest:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


DEPLOYMENT = obj("apps/v1", "Deployment", "web", "shop")
SERVICE = obj("v1", "Service", "web", "shop")
NAMESPACE = obj("v1", "Namespace", "shop")
CLUSTER_ROLE = obj("rbac.authorization.k8s.io/v1", "ClusterRole", "system:web-reader")


def entry(manifest: Manifest) -> InventoryEntry:
    return InventoryEntry(ObjectRef.of(manifest), manifest["apiVersion"])


def test_from_manifests_sorts_and_keeps_one_entry_per_object() -> None:
    hpa_old = obj("autoscaling/v2beta2", "HorizontalPodAutoscaler", "web", "shop")
    hpa_new = obj("autoscaling/v2", "HorizontalPodAutoscaler", "web", "shop")
    inventory = Inventory.from_manifests("web", [SERVICE, hpa_old, DEPLOYMENT, hpa_new, SERVICE])
    # Sorted by group, kind, namespace, name; the later apiVersion of the HPA wins.
    assert [str(ref) for ref in inventory.refs()] == [
        "Service/shop/web",
        "Deployment.apps/shop/web",
        "HorizontalPodAutoscaler.autoscaling/shop/web",
    ]
    assert inventory.entries[2].api_version == "autoscaling/v2"
    assert len(inventory) == 3


def test_to_data_is_a_stable_json_document_one_entry_per_line() -> None:
    inventory = Inventory.from_manifests("web", [SERVICE, CLUSTER_ROLE, DEPLOYMENT])
    data = inventory.to_data()
    assert data["format"] == "2"
    assert data["entries"].splitlines() == [
        "[",
        '{"id": "shop_web__Service", "v": "v1"},',
        '{"id": "shop_web_apps_Deployment", "v": "apps/v1"},',
        '{"id": "_system:web-reader_rbac.authorization.k8s.io_ClusterRole", "v": "rbac.authorization.k8s.io/v1"}',
        "]",
    ]
    reordered = Inventory.from_manifests("web", [DEPLOYMENT, CLUSTER_ROLE, SERVICE])
    assert reordered.to_data() == data


def test_data_round_trips() -> None:
    inventory = Inventory.from_manifests("web", [SERVICE, CLUSTER_ROLE, DEPLOYMENT, NAMESPACE])
    assert Inventory.from_data("web", inventory.to_data()) == inventory
    empty = Inventory.from_manifests("web", [])
    assert empty.to_data()["entries"] == "[]\n"
    assert Inventory.from_data("web", empty.to_data()) == empty


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        ({"entries": "[]"}, "unknown inventory format None"),
        ({"format": "1", "entries": "[{"}, "entries are not JSON"),
        ({"format": "1", "entries": "{}"}, "entries are not a JSON list"),
        ({"format": "1", "entries": '[{"id": "x"}]'}, "entry 0 is not"),
        ({"format": "1", "entries": '[{"id": "a_b", "v": "v1"}]'}, "entry 0: not an inventory id"),
    ],
)
def test_unreadable_data_is_a_store_error_naming_the_app(data: dict[str, str], detail: str) -> None:
    with pytest.raises(StoreError) as caught:
        Inventory.from_data("web", data)
    text = str(caught.value)
    assert text.startswith("app web: the inventory could not be read")
    assert detail in text
    assert "nothing is pruned" in text


def test_prune_set_is_old_minus_new_in_deletion_order() -> None:
    old = Inventory.from_manifests("web", [NAMESPACE, CLUSTER_ROLE, SERVICE, DEPLOYMENT])
    new = Inventory.from_manifests("web", [SERVICE])
    assert [str(e.ref) for e in prune_set(old, new)] == [
        "Deployment.apps/shop/web",
        "ClusterRole.rbac.authorization.k8s.io/system:web-reader",
        "Namespace/shop",
    ]


def test_prune_set_ignores_a_changed_api_version() -> None:
    old = Inventory.from_manifests(
        "web", [obj("autoscaling/v2beta2", "HorizontalPodAutoscaler", "h", "s")]
    )
    new = Inventory.from_manifests(
        "web", [obj("autoscaling/v2", "HorizontalPodAutoscaler", "h", "s")]
    )
    assert prune_set(old, new) == ()


def test_prune_set_refuses_inventories_of_two_apps() -> None:
    with pytest.raises(PruneError, match="inventory of app web with that of app api"):
        prune_set(Inventory.from_manifests("web", [SERVICE]), Inventory.from_manifests("api", []))


def test_failed_deletes_go_back_into_the_inventory() -> None:
    old = Inventory.from_manifests("web", [SERVICE, DEPLOYMENT, NAMESPACE])
    new = Inventory.from_manifests("web", [SERVICE])
    failed = [entry(DEPLOYMENT)]
    kept = with_failed_deletes(new, failed)
    assert set(kept.refs()) == {ObjectRef.of(SERVICE), ObjectRef.of(DEPLOYMENT)}
    # The next sync offers the failed object for prune again.
    assert [e.ref for e in prune_set(kept, new)] == [ObjectRef.of(DEPLOYMENT)]
    assert prune_set(old, kept) == (entry(NAMESPACE),)


def test_failed_delete_of_a_desired_object_keeps_the_desired_api_version() -> None:
    new = Inventory.from_manifests(
        "web", [obj("autoscaling/v2", "HorizontalPodAutoscaler", "h", "s")]
    )
    stale = InventoryEntry(new.entries[0].ref, "autoscaling/v2beta2")
    assert with_failed_deletes(new, [stale]) == new


_refs = st.builds(
    ObjectRef,
    group=st.sampled_from(["", "apps", "rbac.authorization.k8s.io"]),
    kind=st.sampled_from(["Deployment", "Service", "Namespace", "ClusterRole"]),
    namespace=st.sampled_from(["", "shop", "kube-system"]),
    name=st.sampled_from(["web", "api", "db"]),
)
_entries = st.builds(InventoryEntry, ref=_refs, api_version=st.sampled_from(["v1", "apps/v1"]))
_inventories = st.lists(_entries, max_size=12).map(lambda es: Inventory("web", tuple(es)))


@given(_inventories, _inventories)
def test_prune_set_is_within_old_and_outside_new(old: Inventory, new: Inventory) -> None:
    pruned = prune_set(old, new)
    refs = [e.ref for e in pruned]
    assert set(pruned) <= set(old.entries)
    assert not set(refs) & set(new.refs())
    assert set(refs) == set(old.refs()) - set(new.refs())
    assert len(refs) == len(set(refs))


@given(_inventories)
def test_stored_form_round_trips(inventory: Inventory) -> None:
    data = inventory.to_data()
    assert Inventory.from_data("web", data) == inventory
    assert len(json.loads(data["entries"])) == len(inventory)

"""Ownership: the marks stamp() adds, fingerprints, and one owning app per object."""

from __future__ import annotations

import copy

from appflow.errors import OwnershipConflictError
from appflow.model.inventory import Inventory, InventoryEntry
from appflow.model.objects import ANNOTATION_OWNER, LABEL_APP, Manifest, ObjectRef
from appflow.model.ownership import (
    OwnershipCheck,
    Transfer,
    check_ownership,
    fingerprint,
    owned_values,
    stamp,
    unchanged_since,
    untouched_since,
    without_objects,
)


def _config_map() -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "web", "labels": {"tier": "front"}, "annotations": {"a": "1"}},
        "data": {"key": "value"},
    }


def test_stamp_adds_the_marks_and_keeps_the_rest() -> None:
    stamped = stamp(_config_map(), app="shop")

    assert stamped["metadata"]["labels"] == {"tier": "front", LABEL_APP: "shop"}
    assert stamped["metadata"]["annotations"] == {"a": "1", ANNOTATION_OWNER: "shop"}
    assert stamped["data"] == {"key": "value"}
    assert stamped["metadata"]["name"] == "web"


def test_stamp_leaves_its_input_as_it_was() -> None:
    original = _config_map()
    before = copy.deepcopy(original)

    stamp(original, app="shop")

    assert original == before


def test_stamp_of_an_object_without_metadata() -> None:
    stamped = stamp({"apiVersion": "v1", "kind": "Namespace"}, app="shop")

    assert stamped["metadata"] == {
        "labels": {LABEL_APP: "shop"},
        "annotations": {ANNOTATION_OWNER: "shop"},
    }


def test_untouched_since_ignores_the_desired_content_but_not_appflows_fields() -> None:
    live = {
        "metadata": {
            "uid": "u-1",
            "managedFields": [
                {"manager": "appflow", "operation": "Apply", "fieldsV1": {"f:spec": {}}}
            ],
        }
    }
    recorded = fingerprint("a" * 64, live)
    assert untouched_since(recorded, live)
    moved = {
        "metadata": {
            "uid": "u-1",
            "managedFields": [
                {"manager": "appflow", "operation": "Apply", "fieldsV1": {}},
                {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}},
            ],
        }
    }
    assert not untouched_since(recorded, moved)
    recreated = {"metadata": {**live["metadata"], "uid": "u-2"}}
    assert not untouched_since(recorded, recreated)


def _applied(data: dict[str, str], *, uid: str = "u-1", extra: Manifest | None = None) -> Manifest:
    """A ConfigMap as the API server returns it after appflow applied DATA."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "settings",
            "uid": uid,
            "resourceVersion": "7",
            "labels": {LABEL_APP: "shop", "added-by": "someone"},
            "managedFields": [
                {
                    "manager": "appflow",
                    "operation": "Apply",
                    "apiVersion": "v1",
                    "fieldsV1": {
                        "f:data": {f"f:{k}": {} for k in data},
                        "f:metadata": {"f:labels": {f"f:{LABEL_APP}": {}}},
                    },
                },
                {
                    "manager": "kubectl-label",
                    "operation": "Update",
                    "fieldsV1": {"f:metadata": {"f:labels": {"f:added-by": {}}}},
                },
            ],
        },
        "data": {**data, **(extra or {})},
    }


def test_the_fingerprint_covers_the_values_of_appflows_fields() -> None:
    # Content A recorded; content B then applied by appflow but never recorded (a sync
    # killed, or whose store write was refused): same fields, other values.
    recorded = fingerprint("a" * 64, _applied({"mode": "blue"}))
    assert unchanged_since(recorded, "a" * 64, _applied({"mode": "blue"}))
    assert not unchanged_since(recorded, "a" * 64, _applied({"mode": "green"}))
    assert not untouched_since(recorded, _applied({"mode": "green"}))


def test_fields_of_other_managers_and_status_do_not_count() -> None:
    recorded = fingerprint("a" * 64, _applied({"mode": "blue"}))
    relabelled = _applied({"mode": "blue"})
    relabelled["metadata"]["labels"]["added-by"] = "someone-else"
    relabelled["metadata"]["resourceVersion"] = "9"
    relabelled["status"] = {"observed": True}
    assert unchanged_since(recorded, "a" * 64, relabelled)


def test_owned_values_follow_keys_sets_and_indexes_of_lists() -> None:
    live = {
        "spec": {
            "containers": [
                {"name": "side", "image": "side:1"},
                {"name": "main", "image": "web:1", "env": [{"name": "A", "value": "1"}]},
            ],
            "finalizers": ["a", "b"],
            "args": ["x", "y"],
        }
    }
    fields = {
        "f:spec": {
            "f:containers": {
                'k:{"name":"main"}': {
                    ".": {},
                    "f:image": {},
                    "f:env": {'k:{"name":"A"}': {".": {}}},
                }
            },
            "f:finalizers": {'v:"b"': {}, 'v:"z"': {}},
            "f:args": {"i:1": {}},
        }
    }
    assert owned_values(live, fields) == {
        "f:spec": {
            "f:containers": {
                'k:{"name":"main"}': {"f:image": "web:1", "f:env": {'k:{"name":"A"}': True}}
            },
            "f:finalizers": {'v:"b"': "b", 'v:"z"': None},
            "f:args": {"i:1": "y"},
        }
    }
    live["spec"]["containers"][1]["image"] = "web:2"
    assert (
        owned_values(live, fields)["f:spec"]["f:containers"]['k:{"name":"main"}']["f:image"]
        == "web:2"
    )


# -- one owner per object: check_ownership ------------------------------------------

TAKE = {"appflow.dev/take-ownership": "true"}


def _cm(
    name: str, *, app: str | None = None, annotations: dict[str, str] | None = None
) -> Manifest:
    meta: dict[str, object] = {"name": name, "namespace": "shop"}
    if app is not None:
        meta["labels"] = {LABEL_APP: app}
        meta["annotations"] = {ANNOTATION_OWNER: app, **(annotations or {})}
    elif annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {}}


def _ref(name: str) -> ObjectRef:
    return ObjectRef(group="", kind="ConfigMap", namespace="shop", name=name)


def _inventory(app: str, *names: str) -> Inventory:
    return Inventory(app, tuple(InventoryEntry(_ref(n), "v1") for n in names))


def test_an_object_labelled_by_another_app_is_a_conflict_naming_both_apps() -> None:
    check = check_ownership(
        app="web-b",
        desired=[_cm("settings"), _cm("own")],
        live={_ref("settings"): _cm("settings", app="web-a"), _ref("own"): None},
    )

    assert check.transfers == ()
    (conflict,) = check.conflicts
    assert (conflict.ref, conflict.owners, conflict.contested) == (
        _ref("settings"),
        ("web-a",),
        False,
    )
    error = conflict.error(app="web-b", cluster="edge-1")
    assert isinstance(error, OwnershipConflictError)
    text = str(error)
    assert text.startswith("app web-b, cluster edge-1, ConfigMap/shop/settings: owned by app web-a")
    assert "label appflow.dev/app=web-a" in text
    assert "--take-ownership" in text
    assert 'appflow.dev/take-ownership: "true"' in text


def test_an_object_in_another_apps_inventory_is_a_conflict_even_before_it_exists() -> None:
    # web-a's write-ahead inventory names it: web-a is creating it right now.
    check = check_ownership(
        app="web-b",
        desired=[_cm("settings")],
        live={_ref("settings"): None},
        inventories=[_inventory("web-a", "settings"), _inventory("web-b", "settings")],
    )

    (conflict,) = check.conflicts
    assert conflict.owners == ("web-a",)
    assert "in the inventory of app web-a" in conflict.why


def test_label_and_inventories_name_every_owner_label_first() -> None:
    check = check_ownership(
        app="new",
        desired=[_cm("x")],
        live={_ref("x"): _cm("x", app="zeta")},
        inventories=[_inventory("alpha", "x"), _inventory("zeta", "x")],
    )
    assert check.conflicts[0].owners == ("zeta", "alpha")


def test_own_objects_and_unowned_objects_are_no_conflict() -> None:
    check = check_ownership(
        app="web",
        desired=[_cm("mine"), _cm("by-hand"), _cm("new")],
        live={
            # A stale entry of another app does not make web's own object contested:
            # prune re-reads the label before deleting, so the entry is harmless.
            _ref("mine"): _cm("mine", app="web"),
            _ref("by-hand"): _cm("by-hand"),
            _ref("new"): None,
        },
        inventories=[_inventory("other", "mine")],
    )
    assert check == OwnershipCheck()


def test_take_ownership_flag_transfers_from_every_owner() -> None:
    check = check_ownership(
        app="web-b",
        desired=[_cm("settings"), _cm("queued")],
        live={_ref("settings"): _cm("settings", app="web-a"), _ref("queued"): None},
        inventories=[_inventory("web-a", "settings"), _inventory("jobs", "queued")],
        take_ownership=True,
    )
    assert check.conflicts == ()
    assert check.transfers == (
        Transfer(_ref("settings"), ("web-a",)),
        Transfer(_ref("queued"), ("jobs",)),
    )
    assert check.taken_from() == {"jobs": (_ref("queued"),), "web-a": (_ref("settings"),)}


def test_take_ownership_annotation_transfers_that_object_only() -> None:
    check = check_ownership(
        app="web-b",
        desired=[_cm("moved", annotations=TAKE), _cm("shared")],
        live={_ref("moved"): _cm("moved", app="web-a"), _ref("shared"): _cm("shared", app="web-a")},
    )
    assert check.transfers == (Transfer(_ref("moved"), ("web-a",)),)
    assert [c.ref for c in check.conflicts] == [_ref("shared")]


def test_two_sources_that_both_claim_an_object_never_hand_it_back_and_forth() -> None:
    # web-a applied it with the annotation (its source claims it too).
    live = {_ref("x"): _cm("x", app="web-a", annotations=TAKE)}
    check = check_ownership(app="web-b", desired=[_cm("x", annotations=TAKE)], live=live)

    (conflict,) = check.conflicts
    assert conflict.contested
    text = str(conflict.error(app="web-b"))
    assert "both app web-a and app web-b mark it" in text
    assert "--take-ownership" in text
    # A user's explicit --take-ownership still moves it, once.
    forced = check_ownership(
        app="web-b", desired=[_cm("x", annotations=TAKE)], live=live, take_ownership=True
    )
    assert forced.transfers == (Transfer(_ref("x"), ("web-a",)),)


def test_after_a_transfer_the_old_owner_cannot_claim_it_back_by_annotation() -> None:
    # web-b took it by annotation; the live copy now carries web-b's label and annotation.
    after = {_ref("x"): _cm("x", app="web-b", annotations=TAKE)}
    back = check_ownership(app="web-a", desired=[_cm("x", annotations=TAKE)], live=after)
    assert back.transfers == ()
    assert back.conflicts[0].contested


def test_without_objects_leaves_the_rest_of_the_inventory() -> None:
    inventory = _inventory("web-a", "a", "b", "c")
    assert without_objects(inventory, [_ref("b"), _ref("zzz")]) == _inventory("web-a", "a", "c")


def test_a_shared_object_is_owned_by_no_app() -> None:
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "shop", "annotations": {"appflow.dev/shared": "true"}},
    }
    assert stamp(namespace, app="web-b") is namespace
    assert Inventory.from_manifests("web-b", [namespace, _cm("a")]).refs() == (_ref("a"),)
    labelled = {**namespace, "metadata": {**namespace["metadata"], "labels": {LABEL_APP: "web-a"}}}
    ns_ref = ObjectRef(group="", kind="Namespace", namespace="", name="shop")
    check = check_ownership(
        app="web-b",
        desired=[namespace],
        live={ns_ref: labelled},
        inventories=[Inventory.from_manifests("web-a", [labelled])],
    )
    assert check == OwnershipCheck()

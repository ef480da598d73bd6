"""Ownership marks: stamp() adds appflow's label and annotation without touching its input."""

from __future__ import annotations

import copy

from appflow.model.objects import ANNOTATION_OWNER, LABEL_APP, Manifest
from appflow.model.ownership import (
    fingerprint,
    owned_values,
    stamp,
    unchanged_since,
    untouched_since,
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

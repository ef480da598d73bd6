"""Ownership marks: stamp() adds appflow's label and annotation without touching its input."""

from __future__ import annotations

import copy

from appflow.model.objects import ANNOTATION_OWNER, LABEL_APP, Manifest
from appflow.model.ownership import fingerprint, stamp, untouched_since


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

"""Drift: which applied objects changed on the cluster, where, and what the Deployment then is."""

from __future__ import annotations

from pathlib import Path

import yaml

from appflow.model.drift import Drift, drift_message, drifted_paths, find_drift
from appflow.model.health import HealthStatus
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.ownership import digest, fingerprint, stamp
from appflow.model.status import deployment_state

TESTDATA = Path(__file__).parent / "testdata" / "drift"
WEB = ObjectRef(group="apps", kind="Deployment", namespace="shop", name="web")


def load(name: str) -> Manifest:
    data: Manifest = yaml.safe_load((TESTDATA / name).read_text())
    return data


def recorded() -> dict[str, str]:
    """The fingerprint appflow recorded when it applied the Deployment."""
    desired = stamp(load("deployment-desired.yaml"), app="shop")
    return {WEB.encode(): fingerprint(digest(desired), load("deployment-applied.yaml"))}


def test_untouched_object_has_not_drifted_whatever_the_server_added() -> None:
    drift = find_drift(
        app="shop",
        desired=[load("deployment-desired.yaml")],
        live={WEB: load("deployment-applied.yaml")},
        fingerprints=recorded(),
    )
    assert drift == ()


def test_hand_scaled_deployment_drifted_at_spec_replicas_only() -> None:
    drift = find_drift(
        app="shop",
        desired=[load("deployment-desired.yaml")],
        live={WEB: load("deployment-scaled.yaml")},
        fingerprints=recorded(),
    )
    assert drift == (Drift(WEB, ("spec.replicas",)),)
    assert drift[0].describe() == "Deployment.apps/shop/web changed: spec.replicas"


def test_objects_never_applied_or_gone_are_not_drift() -> None:
    desired = [load("deployment-desired.yaml")]
    assert find_drift(app="shop", desired=desired, live={}, fingerprints=recorded()) == ()
    assert (
        find_drift(
            app="shop", desired=desired, live={WEB: load("deployment-scaled.yaml")}, fingerprints={}
        )
        == ()
    )


def test_drifted_paths_ignore_fields_appflow_does_not_set() -> None:
    live = load("deployment-applied.yaml")
    live["metadata"]["labels"]["team"] = "ops"
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/web:hotfix"
    assert drifted_paths(load("deployment-desired.yaml"), live, app="shop") == (
        "spec.template.spec.containers[0].image",
    )


def test_state_missing_before_modified_before_health() -> None:
    assert deployment_state(HealthStatus.HEALTHY) == "Ready"
    assert deployment_state(HealthStatus.PROGRESSING) == "NotReady"
    assert deployment_state(HealthStatus.HEALTHY, modified=True) == "Modified"
    assert deployment_state(HealthStatus.PROGRESSING, modified=True) == "Modified"
    assert deployment_state(HealthStatus.MISSING, modified=True) == "Missing"
    assert deployment_state(HealthStatus.HEALTHY, modified=True, apply_failed=True) == "ErrApplied"


def test_drift_message_names_the_first_objects_and_counts_the_rest() -> None:
    drifts = [Drift(ObjectRef("", "ConfigMap", "shop", f"c{i}"), ("data.k",)) for i in range(5)]
    assert drift_message(drifts[:1]) == "ConfigMap/shop/c0 changed: data.k"
    assert drift_message(drifts).endswith(
        "ConfigMap/shop/c2 changed: data.k; and 2 more objects changed"
    )
    assert drift_message([Drift(WEB)]) == "Deployment.apps/shop/web changed: fields appflow owns"


def test_a_secret_is_judged_with_the_content_its_fingerprint_was_taken_with() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "shop", "uid": "u-9", "managedFields": []},
        "data": {"password": "czNjcjN0"},
    }
    ref = ObjectRef("", "Secret", "shop", "creds")
    recorded = {ref.encode(): fingerprint("d" * 64, secret, content="keyed-digest-1")}

    def content(live: Manifest) -> str:
        return "keyed-digest-1" if live["data"]["password"] == "czNjcjN0" else "keyed-digest-2"

    kept = find_drift(
        app="shop", desired=[secret], live={ref: secret}, fingerprints=recorded, content=content
    )
    assert kept == ()
    changed = {**secret, "data": {"password": "b3RoZXI="}}
    moved = find_drift(
        app="shop", desired=[secret], live={ref: changed}, fingerprints=recorded, content=content
    )
    assert [d.ref for d in moved] == [ref]

"""The sandbox clusters are real Kubernetes: the behaviours fakes get wrong, checked."""

from __future__ import annotations

import pytest

from appflow.errors import ConflictError
from tests.helpers import Sandbox, eventually

pytestmark = pytest.mark.cluster


def test_apply_conflict_names_the_first_field_manager(sandbox: Sandbox, namespace: str) -> None:
    kube = sandbox.kube(0)
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "shared", "namespace": namespace},
        "data": {"mode": "first"},
    }
    kube.apply_sync(cm, field_manager="first-tool")
    changed = {**cm, "data": {"mode": "second"}}
    with pytest.raises(ConflictError) as caught:
        kube.apply_sync(changed, field_manager="second-tool")
    assert "first-tool" in str(caught.value)
    assert "--force-conflicts" in str(caught.value)
    live = kube.get_sync("v1", "ConfigMap", "shared", namespace)
    assert live is not None
    assert live["data"] == {"mode": "first"}
    forced = kube.apply_sync(changed, field_manager="second-tool", force=True)
    assert forced["data"] == {"mode": "second"}


def test_deployment_with_two_replicas_becomes_available(sandbox: Sandbox, namespace: str) -> None:
    kube = sandbox.kube(0)
    kube.apply_sync(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        }
    )

    def available() -> bool:
        live = kube.get_sync("apps/v1", "Deployment", "web", namespace) or {}
        return (live.get("status") or {}).get("availableReplicas") == 2

    eventually(available, what="2 available replicas")
    pods = kube.list_sync("v1", "Pod", namespace=namespace, label_selector="app=web")
    assert len(pods) == 2
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert all(p["spec"].get("nodeName") for p in pods), "pods were scheduled onto kwok nodes"


def test_namespace_deletion_completes(sandbox: Sandbox) -> None:
    kube = sandbox.kube(1)
    kube.apply_sync({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    kube.apply_sync(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "inside", "namespace": "doomed"},
            "data": {"k": "v"},
        }
    )
    assert kube.delete_sync("v1", "Namespace", "doomed")
    eventually(
        lambda: kube.get_sync("v1", "Namespace", "doomed") is None,
        what="the namespace controller to finish deleting 'doomed'",
    )


def test_crd_becomes_established_and_serves_custom_resources(
    sandbox: Sandbox, namespace: str
) -> None:
    kube = sandbox.kube(0)
    kube.apply_sync(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.test.appflow.dev"},
            "spec": {
                "group": "test.appflow.dev",
                "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {"size": {"type": "integer"}},
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        }
    )

    def established() -> bool:
        crd = kube.get_sync(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", "gadgets.test.appflow.dev"
        )
        conditions = ((crd or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    eventually(established, what="the CRD to be Established")
    kube.invalidate_discovery()
    created = kube.apply_sync(
        {
            "apiVersion": "test.appflow.dev/v1",
            "kind": "Gadget",
            "metadata": {"name": "g1", "namespace": namespace},
            "spec": {"size": 3},
        }
    )
    assert created["spec"] == {"size": 3}
    assert kube.get_sync("test.appflow.dev/v1", "Gadget", "g1", namespace) is not None

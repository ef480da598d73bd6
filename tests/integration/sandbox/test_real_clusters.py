"""The sandbox clusters are real Kubernetes: the behaviours fakes get wrong, checked."""

from __future__ import annotations

import pytest

from appflow.errors import ConflictError, ObjectChangedError
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


def test_delete_with_preconditions_leaves_an_object_changed_since_it_was_read(
    sandbox: Sandbox, namespace: str
) -> None:
    kube = sandbox.kube(0)
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "owned", "namespace": namespace, "labels": {"app": "one"}},
    }
    read = kube.apply_sync(cm)
    meta = read["metadata"]
    # Someone relabels it between our read and our delete.
    kube.apply_sync({**cm, "metadata": {**cm["metadata"], "labels": {"app": "two"}}})
    with pytest.raises(ObjectChangedError, match="not deleted"):
        kube.delete_sync(
            "v1", "ConfigMap", "owned", namespace,
            uid=meta["uid"], resource_version=meta["resourceVersion"],
        )  # fmt: skip
    now = kube.get_sync("v1", "ConfigMap", "owned", namespace)
    assert now is not None
    assert kube.delete_sync(
        "v1", "ConfigMap", "owned", namespace,
        uid=now["metadata"]["uid"], resource_version=now["metadata"]["resourceVersion"],
    )  # fmt: skip
    assert kube.get_sync("v1", "ConfigMap", "owned", namespace) is None
    kube.close()


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


def _job(name: str, namespace: str, *, exit_code: str | None = None) -> dict[str, object]:
    template: dict[str, object] = {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "busybox"}]}
    }
    if exit_code is not None:
        template["metadata"] = {"annotations": {"sandbox.appflow.dev/exit-code": exit_code}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"backoffLimit": 0, "template": template},
    }


def _pod(name: str, namespace: str, restart_policy: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [{"name": "run", "image": "busybox"}],
        },
    }


def test_pods_that_are_not_restarted_run_to_completion(sandbox: Sandbox, namespace: str) -> None:
    """A Job's pod ends with exit code 0, or the one its annotation chooses; a bare pod that is
    not restarted ends too; a pod that is restarted (a Deployment's) keeps running."""
    kube = sandbox.kube(0)
    try:

        def phase(name: str) -> str:
            live = kube.get_sync("v1", "Pod", name, namespace) or {}
            return str((live.get("status") or {}).get("phase"))

        # The server first: it is Running long before the others end, so if kwok were to
        # end it too, it would have done so by the time they ended.
        kube.apply_sync(_pod("server", namespace, "Always"))
        eventually(lambda: phase("server") == "Running", what="the server pod to run")
        kube.apply_sync(_job("passes", namespace))
        kube.apply_sync(_job("fails", namespace, exit_code="3"))
        kube.apply_sync(_pod("one-off", namespace, "Never"))

        def condition(job: str, kind: str) -> bool:
            live = kube.get_sync("batch/v1", "Job", job, namespace) or {}
            conditions = (live.get("status") or {}).get("conditions") or []
            return any(c["type"] == kind and c["status"] == "True" for c in conditions)

        eventually(lambda: condition("passes", "Complete"), what="Job passes to complete")
        eventually(lambda: condition("fails", "Failed"), what="Job fails to fail")
        eventually(lambda: phase("one-off") == "Succeeded", what="the one-off pod to succeed")
        failed_pods = kube.list_sync(
            "v1", "Pod", namespace=namespace, label_selector="job-name=fails"
        )
        [failed] = failed_pods
        assert failed["status"]["phase"] == "Failed"
        assert failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
        assert phase("server") == "Running"
    finally:
        kube.close()

"""`appflow hub install` and `uninstall` against a sandbox cluster playing the hub."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from appflow.model.hub import API_VERSION
from tests.helpers import built_tool, eventually, run_cli
from tests.integration.hub.conftest import Hub

CHART = Path(__file__).resolve().parents[3] / "appflow" / "charts" / "appflow-hub"


@pytest.mark.tools
def test_the_chart_is_lint_clean() -> None:
    done = subprocess.run(
        [str(built_tool("helm")), "lint", "--strict", str(CHART)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout
    assert "[ERROR]" not in done.stdout
    rules = [
        r
        for doc in yaml.safe_load_all(_template())
        if doc and doc["kind"] in ("ClusterRole", "Role")
        for r in doc["rules"]
    ]
    assert rules
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in rules)


def _template() -> str:
    done = subprocess.run(
        [str(built_tool("helm")), "template", "hub", str(CHART), "-n", "appflow-system"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def _can(hub: Hub, verb: str, resource: str, namespace: str, sa: str) -> bool:
    done = hub.kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as={sa}", check=False)
    return done.stdout.strip() == "yes"


@pytest.mark.cluster
def test_install_then_uninstall(hub: Hub) -> None:
    suffix = secrets.token_hex(3)
    system, workspace = f"hs-{suffix}", f"hw-{suffix}"
    image = "localhost:5000/appflow/appflow:test"
    common = ["--kubeconfig", str(hub.kubeconfig), "--namespace", system, "--workspace", workspace]
    result = run_cli("hub", "install", *common, "--replicas", "3", "--image", image)
    assert result.exit_code == 0, result.output
    assert "3 controller replica(s)" in result.output

    deployment = yaml.safe_load(
        hub.kubectl("get", "deploy", "appflow-hub-controller", "-n", system, "-o", "yaml").stdout
    )
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image
    assert container["args"][0] == "controller"
    assert f"--workspace={workspace}" in container["args"]
    assert deployment["status"].get("availableReplicas") == 3
    hub.kubectl("get", "service", "appflow-hub-api", "-n", system)
    for crd in ("appflows", "clusters", "appflowdeployments", "appflowcontents"):
        hub.kubectl("get", "crd", f"{crd}.appflow.dev")

    # Least privilege, as the API server's authorizer sees it.
    sa = f"system:serviceaccount:{system}:appflow-controller"
    assert _can(hub, "watch", "appflows.appflow.dev", workspace, sa)
    assert _can(hub, "create", "leases.coordination.k8s.io", system, sa)
    assert _can(hub, "get", "secrets", workspace, sa)
    assert not _can(hub, "get", "secrets", "kube-system", sa)
    assert not _can(hub, "create", "leases.coordination.k8s.io", "kube-system", sa)
    assert not _can(hub, "update", "appflowcontents.appflow.dev", workspace, sa)
    assert not _can(hub, "delete", "nodes", "", sa)

    # Installing again upgrades in place.
    again = run_cli("hub", "install", *common, "--replicas", "2", "--image", image, "--no-wait")
    assert again.exit_code == 0, again.output
    replicas = hub.kubectl(
        "get", "deploy", "appflow-hub-controller", "-n", system, "-o", "jsonpath={.spec.replicas}"
    ).stdout
    assert replicas == "2"

    # An AppFlow on the hub: uninstall refuses and changes nothing.
    app = {
        "apiVersion": API_VERSION,
        "kind": "AppFlow",
        "metadata": {"name": "web", "namespace": workspace},
        "spec": {"definition": {"namespace": "web"}},
    }
    hub.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(app))
    refused = run_cli("hub", "uninstall", *common)
    assert refused.exit_code == 1
    assert f"AppFlow {workspace}/web" in refused.output
    assert "--force" in refused.output
    hub.kubectl("get", "deploy", "appflow-hub-controller", "-n", system)

    forced = run_cli("hub", "uninstall", *common, "--force")
    assert forced.exit_code == 0, forced.output
    assert f"deleted Deployment.apps/{system}/appflow-hub-controller" in forced.output
    assert "CustomResourceDefinition.apiextensions.k8s.io/appflows.appflow.dev" in forced.output

    def gone(*what: str) -> bool:
        return hub.kubectl("get", *what, check=False).returncode != 0

    eventually(lambda: gone("crd", "appflows.appflow.dev"), timeout=120, what="the CRDs gone")
    eventually(lambda: gone("namespace", system), timeout=120, what="the release namespace gone")
    assert gone("clusterrole", "appflow-hub-controller")


@pytest.mark.cluster
def test_uninstall_keeps_the_workspace_unless_forced(hub: Hub) -> None:
    suffix = secrets.token_hex(3)
    system, workspace = f"hs-{suffix}", f"hw-{suffix}"
    common = ["--kubeconfig", str(hub.kubeconfig), "--namespace", system, "--workspace", workspace]
    assert run_cli("hub", "install", *common, "--replicas", "1").exit_code == 0
    hub.kubectl("create", "secret", "generic", "berlin-1-kubeconfig", "-n", workspace)
    result = run_cli("hub", "uninstall", *common)
    assert result.exit_code == 0, result.output
    assert f"left Namespace/{workspace}" in result.output
    hub.kubectl("get", "secret", "berlin-1-kubeconfig", "-n", workspace)
    hub.kubectl("delete", "namespace", workspace, "--wait=false")

    def gone() -> bool:
        return hub.kubectl("get", "crd", "appflows.appflow.dev", check=False).returncode != 0

    eventually(gone, timeout=120, what="the CRDs gone")

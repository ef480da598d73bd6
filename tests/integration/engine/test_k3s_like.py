"""Sandbox clusters behave like K3s (EVE-k's base): ServiceLB and Traefik give addresses.

An app with a LoadBalancer Service and an Ingress becomes Ready with `--wait` on a K3s-like
sandbox cluster, as it does on a real EVE-k cluster; on a cluster that is not K3s-like
(`appflow sandbox up --k3s-like=false`) it keeps waiting and says what for. What ServiceLB
writes is what its source does: one `{ip: ...}` per node, the nodes' InternalIPs, sorted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appflow import sandbox as sb
from appflow.kube.client import Connection, KubeCluster
from appflow.model.objects import Manifest
from appflow.sandbox.cluster import SandboxCluster
from tests.helpers import Sandbox, eventually, run_cli
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    deployment,
    live,
    one_line,
    service,
    write_files,
)

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sb.SandboxInfo]:
    """A one-node sandbox cluster that is not K3s-like, in a folder of its own."""
    root = tmp_path_factory.mktemp("plain-sandbox")
    [info] = sb.up(clusters=1, prefix="plain", nodes=1, k3s_like=False, root=root, timeout=240)
    try:
        yield info
    finally:
        report = sb.down(root=root)
        assert not report.problems, report.problems


def _kube(info: sb.SandboxInfo) -> KubeCluster:
    return KubeCluster(Connection(name=info.name, kubeconfig=info.kubeconfig))


def _lb_service(name: str, namespace: str, **spec: Any) -> Manifest:
    svc = service(name, namespace)
    svc["spec"].update({"type": "LoadBalancer", **spec})
    return svc


def _ingress(name: str, namespace: str, *, ingress_class: str | None = None) -> Manifest:
    spec: dict[str, Any] = {
        "rules": [
            {
                "host": f"{name}.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": name, "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ]
    }
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _web_app(folder: Path, name: str, namespace: str) -> Path:
    """A web app as one is written for K3s: a Deployment behind a LoadBalancer and an Ingress."""
    return write_files(
        folder,
        {
            "appflow.yaml": f"name: {name}\nnamespace: {namespace}\n",
            "deployment.yaml": [deployment("web", namespace)],
            "service.yaml": [_lb_service("web", namespace)],
            # No ingressClassName: K3s's default class (traefik) serves it.
            "ingress.yaml": [_ingress("web", namespace)],
        },
    )


def _addresses(live_object: Manifest) -> list[str]:
    ingress = ((live_object.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i.get("ip") or i.get("hostname")) for i in ingress]


def _node_ips(kube: KubeCluster) -> list[str]:
    """The nodes' InternalIPs, each once, sorted: what ServiceLB publishes."""
    return sorted(
        {
            a["address"]
            for node in kube.list_sync("v1", "Node")
            for a in node["status"].get("addresses", [])
            if a["type"] == "InternalIP"
        }
    )


def test_app_with_load_balancer_and_ingress_becomes_ready_on_k3s_like_clusters(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app = space.namespace, space.app("web")
    folder = _web_app(tmp_path / "web", app, ns)
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0

    synced = cli("sync", app, "--wait", "--timeout", "120")
    assert synced.exit_code == 0, synced.output
    for name in fleet.cluster_names:
        assert f"{app} revision 1 -> {name}: Ready" in one_line(synced.stdout), synced.output

    kube = fleet.sandbox.kube(0)
    try:
        node_ips = _node_ips(kube)
        default_class = kube.get_sync("networking.k8s.io/v1", "IngressClass", "traefik")
    finally:
        kube.close()
    # What ServiceLB writes: the nodes' InternalIPs, sorted; Traefik publishes the same.
    assert node_ips
    svc = live(fleet.sandbox, 0, "v1", "Service", "web", ns)
    assert _addresses(svc) == node_ips
    ingress = live(fleet.sandbox, 0, "networking.k8s.io/v1", "Ingress", "web", ns)
    assert _addresses(ingress) == node_ips
    # The default IngressClass, as K3s's Traefik installs it, named the Ingress's class.
    assert default_class is not None
    assert default_class["spec"]["controller"] == "traefik.io/ingress-controller"
    annotations = default_class["metadata"]["annotations"]
    assert annotations["ingressclass.kubernetes.io/is-default-class"] == "true"
    assert ingress["spec"]["ingressClassName"] == "traefik"


def test_other_load_balancer_and_ingress_classes_get_no_address(
    sandbox: Sandbox, namespace: str
) -> None:
    """As on K3s: ServiceLB skips a Service with a loadBalancerClass, Traefik an Ingress of
    another class; both keep waiting for a controller the cluster does not have."""
    kube = sandbox.kube(0)
    try:
        kube.apply_sync(_lb_service("metal", namespace, loadBalancerClass="metallb.io/metallb"))
        kube.apply_sync(_ingress("nginx", namespace, ingress_class="nginx"))
        # The served ones go last: once they have addresses, kwok has seen the others too.
        kube.apply_sync(_lb_service("served", namespace))
        kube.apply_sync(_ingress("served", namespace, ingress_class="traefik"))

        def served() -> bool:
            return all(
                _addresses(kube.get_sync(v, k, "served", namespace) or {})
                for v, k in (("v1", "Service"), ("networking.k8s.io/v1", "Ingress"))
            )

        eventually(served, what="addresses on the Service and Ingress kwok serves")
        metal = kube.get_sync("v1", "Service", "metal", namespace)
        nginx = kube.get_sync("networking.k8s.io/v1", "Ingress", "nginx", namespace)
    finally:
        kube.close()
    assert metal is not None
    assert _addresses(metal) == []
    assert nginx is not None
    assert _addresses(nginx) == []


def test_app_keeps_waiting_for_addresses_on_a_cluster_that_is_not_k3s_like(
    plain: sb.SandboxInfo, appflow_home: Path, tmp_path: Path
) -> None:
    added = cli("cluster", "add", plain.name, "--kubeconfig", str(plain.kubeconfig))
    assert added.exit_code == 0, added.output
    folder = _web_app(tmp_path / "web", "web", "shop")
    assert cli("app", "add", "web", "--local", str(folder)).exit_code == 0

    # --wait gives up after its timeout; the point is what it says while waiting.
    synced = cli("sync", "web", "--wait", "--timeout", "5")
    assert synced.exit_code != 0, synced.output
    out = one_line(synced.output)
    assert f"web revision 1 -> {plain.name}: NotReady" in out, synced.output
    assert "Service/shop/web: Progressing: waiting for an address" in out, synced.output
    shown = one_line(cli("app", "show", "web", "-o", "json").stdout)
    assert "waiting for an address from the cluster's load balancer" in shown, shown
    assert "it never comes on a cluster without one" in shown, shown
    assert "waiting for an address from the default ingress controller" in shown, shown

    kube = _kube(plain)
    try:
        svc = kube.get_sync("v1", "Service", "web", "shop")
        assert kube.get_sync("networking.k8s.io/v1", "IngressClass", "traefik") is None
    finally:
        kube.close()
    assert svc is not None
    assert _addresses(svc) == []


def test_k3s_like_is_kept_per_cluster_and_switched_on_a_running_cluster(
    plain: sb.SandboxInfo,
) -> None:
    root = plain.kubeconfig.parent.parent
    env = {"APPFLOW_SANDBOX_DIR": str(root)}

    def sandbox_cli(*args: str) -> str:
        result = run_cli("sandbox", *args, env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    def kwok_pid() -> int:
        return next(p.pid for p in SandboxCluster(root / plain.name).running() if p.name == "kwok")

    def k3s_like() -> bool:
        [listed] = json.loads(sandbox_cli("list", "-o", "json"))
        return bool(listed["k3sLike"])

    assert not k3s_like()
    others = {p.pid for p in SandboxCluster(root / plain.name).running() if p.name != "kwok"}
    before = kwok_pid()
    # Turning it on for a running cluster restarts kwok alone; the control plane stays.
    sandbox_cli("up", "--clusters", "1", "--prefix", "plain", "--nodes", "1", "--k3s-like=true")
    assert k3s_like()
    assert kwok_pid() != before
    running = SandboxCluster(root / plain.name).running()
    assert {p.pid for p in running if p.name != "kwok"} == others

    # A stop and start keeps the setting: the LoadBalancer Service gets its address.
    sandbox_cli("stop", plain.name)
    sandbox_cli("start", plain.name)
    assert k3s_like()
    kube = _kube(plain)
    try:
        kube.apply_sync({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flip"}})
        kube.apply_sync(_lb_service("web", "flip"))
        eventually(
            lambda: (
                _addresses(kube.get_sync("v1", "Service", "web", "flip") or {}) == _node_ips(kube)
            ),
            what="ServiceLB's address on the Service after the cluster became K3s-like",
        )
    finally:
        kube.close()

    # And off again: the default IngressClass the sandbox made goes with it.
    sandbox_cli("up", "--clusters", "1", "--prefix", "plain", "--k3s-like", "false")
    assert not k3s_like()
    kube = _kube(plain)
    try:
        assert kube.get_sync("networking.k8s.io/v1", "IngressClass", "traefik") is None
    finally:
        kube.close()

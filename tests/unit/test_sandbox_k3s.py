"""What the K3s-like sandbox publishes for LoadBalancer Services, as ServiceLB decides it."""

from __future__ import annotations

from typing import Any

from appflow.sandbox import k3s


def _node(*addresses: tuple[str, str]) -> dict[str, Any]:
    return {"status": {"addresses": [{"type": t, "address": a} for t, a in addresses]}}


def test_internal_ips_of_every_node_sorted_and_once() -> None:
    nodes = [
        _node(("InternalIP", "10.0.0.3"), ("Hostname", "n3")),
        _node(("InternalIP", "10.0.0.1"), ("Hostname", "n1")),
        _node(("InternalIP", "10.0.0.3")),
    ]
    assert k3s.node_addresses(nodes) == ["10.0.0.1", "10.0.0.3"]


def test_external_ips_win_when_any_node_has_one() -> None:
    nodes = [
        _node(("InternalIP", "10.0.0.1"), ("ExternalIP", "203.0.113.7")),
        _node(("InternalIP", "10.0.0.2")),
    ]
    assert k3s.node_addresses(nodes) == ["203.0.113.7"]


def test_nodes_without_addresses_give_none() -> None:
    assert k3s.node_addresses([{}, {"status": {}}, _node(("Hostname", "n1"))]) == []


def test_stages_patch_only_objects_without_an_address() -> None:
    stages = k3s.stages(["10.0.0.1", "10.0.0.2"])
    kinds = [s["spec"]["resourceRef"]["kind"] for s in stages]
    assert kinds == ["Service", "Ingress"]
    for stage in stages:
        keys = {e.get("key") for e in stage["spec"]["selector"]["matchExpressions"]}
        assert ".status.loadBalancer.ingress" in keys
        [step] = stage["spec"]["steps"]
        assert step["patch"]["subresource"] == "status"
        assert "ip: 10.0.0.2" in step["patch"]["template"]

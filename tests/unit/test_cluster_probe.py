"""What a reachability probe learns from the version and the nodes: distribution, EVE-k mode, arch."""

from __future__ import annotations

import pytest

from appflow.engine.clusters import describe_nodes
from appflow.model.objects import Manifest

SERVER_ROLES = ("control-plane", "etcd", "master")  # what k3s puts on a server node


def node(
    name: str, *, roles: tuple[str, ...] = (), arch: str | None = "amd64", ready: bool = True
) -> Manifest:
    labels = {f"node-role.kubernetes.io/{role}": "true" for role in roles}
    if arch is not None:
        labels["kubernetes.io/arch"] = arch
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def server(name: str, **kwargs: object) -> Manifest:
    return node(name, roles=SERVER_ROLES, **kwargs)  # type: ignore[arg-type]


def test_k3s_version_string_means_the_k3s_distribution() -> None:
    probe = describe_nodes("v1.30.4+k3s1", [server("eve-1")])
    assert probe.distribution == "k3s"
    assert probe.version == "v1.30.4+k3s1"


@pytest.mark.parametrize("version", ["v1.30.4", "v1.29.2-eks-a1b2c3", "v1.28.9+rke2r1"])
def test_other_versions_are_plain_kubernetes(version: str) -> None:
    assert describe_nodes(version, [server("n1")]).distribution == "kubernetes"


def test_one_node_is_single_node_mode() -> None:
    probe = describe_nodes("v1.30.4+k3s1", [server("eve-1")])
    assert (probe.mode, probe.node_count, probe.ready_nodes) == ("single-node", 1, 1)


def test_a_single_agent_only_node_is_still_single_node() -> None:
    # An imported cluster whose one node carries no role label.
    assert describe_nodes("v1.30.4", [node("worker")]).mode == "single-node"


def test_three_servers_are_ha_3() -> None:
    probe = describe_nodes("v1.30.4+k3s1", [server("s1"), server("s2"), server("s3")])
    assert (probe.mode, probe.node_count) == ("ha-3", 3)


def test_three_servers_plus_agents_are_still_ha_3() -> None:
    nodes = [server("s1"), server("s2"), server("s3"), node("a1"), node("a2")]
    assert describe_nodes("v1.30.4+k3s1", nodes).mode == "ha-3"


def test_two_servers_and_an_agent_are_ha_2_with_a_tiebreaker() -> None:
    probe = describe_nodes("v1.30.4+k3s1", [server("s1"), server("s2"), node("tiebreaker")])
    assert (probe.mode, probe.node_count) == ("ha-2+tiebreaker", 3)


def test_servers_recognised_by_any_one_server_role() -> None:
    nodes = [
        node("s1", roles=("control-plane",)),
        node("s2", roles=("master",)),
        node("s3", roles=("etcd",)),
    ]
    assert describe_nodes("v1.30.4+k3s1", nodes).mode == "ha-3"


def test_two_servers_without_a_third_node_are_not_ha() -> None:
    assert describe_nodes("v1.30.4+k3s1", [server("s1"), server("s2")]).mode == "2-nodes"


def test_one_server_and_agents_report_the_node_count() -> None:
    nodes = [server("s1"), node("a1"), node("a2"), node("a3")]
    assert describe_nodes("v1.30.4", nodes).mode == "4-nodes"


def test_the_arch_is_the_majority_of_the_nodes() -> None:
    nodes = [
        server("s1", arch="arm64"),
        server("s2", arch="amd64"),
        node("a1", arch="arm64"),
    ]
    assert describe_nodes("v1.30.4+k3s1", nodes).arch == "arm64"


def test_nodes_without_an_arch_label_count_as_unknown() -> None:
    nodes = [node("a", arch=None), node("b", arch=None), node("c", arch="amd64")]
    assert describe_nodes("v1.30.4", nodes).arch == "unknown"


def test_ready_nodes_are_counted_from_the_ready_condition() -> None:
    nodes = [server("s1"), server("s2", ready=False), node("a1", ready=False)]
    probe = describe_nodes("v1.30.4+k3s1", nodes)
    assert (probe.ready_nodes, probe.node_count) == (1, 3)


def test_no_nodes() -> None:
    probe = describe_nodes("v1.30.4", [])
    assert (probe.node_count, probe.ready_nodes, probe.arch) == (0, 0, "unknown")
    assert probe.mode == "0-nodes"

"""Registering pull clusters: per-cluster and batch tokens, and every way a registration must
fail with a clear error and no change on either side."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from appflow.agent.edge import AGENT_NAMESPACE, CONFIG_SECRET
from appflow.model.hub import cluster_namespace
from appflow.model.registration import ANNOTATION_IDENTITY
from tests.integration.agent.conftest import Hub, token_in, wait_for

pytestmark = pytest.mark.cluster


def edge_secrets(hub: Hub, edge: int) -> list[str]:
    kube = hub.fleet.edge_kube(edge)
    try:
        return sorted(
            str(s["metadata"]["name"])
            for s in kube.list_sync("v1", "Secret", namespace=AGENT_NAMESPACE)
            if str(s["metadata"]["name"]).startswith("appflow-agent")
        )
    finally:
        kube.close()


def edge_config(hub: Hub, edge: int) -> dict[str, str]:
    kube = hub.fleet.edge_kube(edge)
    try:
        secret = kube.get_sync("v1", "Secret", CONFIG_SECRET, AGENT_NAMESPACE) or {}
    finally:
        kube.close()
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def hub_snapshot(hub: Hub) -> dict[str, Any]:
    """What registration could create on the hub: Clusters, namespaces, token uses."""
    kube = hub.fleet.hub_kube()
    try:
        namespaces = sorted(
            str(n["metadata"]["name"])
            for n in kube.list_sync(
                "v1", "Namespace", label_selector=f"appflow.dev/workspace={hub.workspace}"
            )
        )
        tokens = {
            str(s["metadata"]["name"]): base64.b64decode(s["data"]["uses"]).decode()
            for s in kube.list_sync(
                "v1",
                "Secret",
                namespace=hub.workspace,
                label_selector="appflow.dev/registration-token",
            )
        }
    finally:
        kube.close()
    clusters = sorted(
        (str(c["metadata"]["name"]), json.dumps(c.get("status"), sort_keys=True))
        for c in hub.clusters()
    )
    return {"namespaces": namespaces, "tokens": tokens, "clusters": clusters}


def registered(hub: Hub, edge: int) -> bool:
    return "registration.json" in edge_config(hub, edge)


def test_per_cluster_and_batch_tokens_register_and_forget_the_token(hub: Hub) -> None:
    hub.start_agent_api()
    added = hub.hub_cli(
        "cluster", "add", "berlin-1", "--kind", "eve-k", "--mode", "pull", "-l", "site=berlin"
    )
    one_time = token_in(added.stdout)
    assert (
        f"appflow agent install --token {one_time} --hub-url {hub.url} --hub-ca-pin {hub.pin}"
        in added.stdout.replace("\n", " ").replace("  ", " ")
    )
    assert hub.cluster("berlin-1")["status"]["state"] == "Init"  # type: ignore[index]

    batch = token_in(
        hub.hub_cli(
            "cluster",
            "token",
            "create",
            "--ttl",
            "1h",
            "--max-uses",
            "2",
            "-l",
            "fleet=retail",
            "-l",
            "region=eu",
        ).stdout
    )

    hub.install(0, one_time)
    hub.install(1, batch)
    hub.install(2, batch)
    agents = [hub.start_agent(i) for i in range(3)]
    for i in range(3):
        wait_for(lambda i=i: registered(hub, i), timeout=240, what=f"edge {i} to register")
    for i in range(3):
        config = edge_config(hub, i)
        assert "token" not in config, "the registration token must be forgotten"
        assert config["registration.json"]

    clusters = {c["metadata"]["name"]: c for c in hub.clusters()}
    assert set(clusters) >= {"berlin-1"}
    batch_names = sorted(n for n in clusters if n.startswith("edge-"))
    assert len(batch_names) == 2
    for name in batch_names:
        cluster = clusters[name]
        assert cluster["metadata"]["labels"] == {"fleet": "retail", "region": "eu"}
        assert cluster["spec"] == {"kind": "eve-k", "mode": "pull"}
        identity = cluster["metadata"]["annotations"][ANNOTATION_IDENTITY]
        assert name == "edge-" + identity.replace("-", "")[:12]
        status = cluster["status"]
        assert status["kubernetesVersion"].startswith("v1.")
        assert status["distribution"] == "kubernetes"
        assert status["nodeCount"] == 3
        assert status["architecture"] == "amd64"
        assert status["gpus"] == 0
        assert status["namespace"] == cluster_namespace(hub.workspace, name)
    assert clusters["berlin-1"]["metadata"]["labels"] == {"site": "berlin"}

    # The batch token is used up, the one-time token too: a fourth registration is refused,
    # and neither side changes.
    before = hub_snapshot(hub)
    for token in (batch, one_time):
        for agent in agents:
            agent.stop()
        kube = hub.fleet.edge_kube(0)
        try:
            kube.delete_sync("v1", "Secret", CONFIG_SECRET, AGENT_NAMESPACE)
        finally:
            kube.close()
        edge_before = edge_secrets(hub, 0)
        refused = hub.install(0, token, check=False)
        assert refused.returncode == 1
        assert "was already used" in refused.stderr or "was used 2 times" in refused.stderr, (
            refused.stderr
        )
        assert "Traceback" not in refused.stderr
        assert edge_secrets(hub, 0) == edge_before
    assert hub_snapshot(hub) == before


def test_expired_revoked_unknown_tokens_and_a_wrong_ca_change_nothing(hub: Hub) -> None:
    hub.start_agent_api()
    expiring = token_in(hub.hub_cli("cluster", "token", "create", "--ttl", "1s").stdout)
    revoked = token_in(hub.hub_cli("cluster", "token", "create", "--ttl", "1h").stdout)
    good = token_in(hub.hub_cli("cluster", "token", "create", "--ttl", "1h").stdout)
    hub.hub_cli("cluster", "token", "revoke", revoked.split(".")[0])
    time.sleep(1.5)  # the token's own lifetime, which is what is tested
    listed = hub.hub_cli("cluster", "token", "list", "-o", "json").stdout
    states = {t["id"]: t["state"] for t in json.loads(listed)}
    assert states[expiring[4:14]] == "expired"
    assert states[revoked[4:14]] == "revoked"
    assert states[good[4:14]] == "valid"

    before, edge_before = hub_snapshot(hub), edge_secrets(hub, 0)
    cases = [
        (expiring, None, "expired at"),
        (revoked, None, "was revoked"),
        ("aft_0123456789.abcdefghijklmnopqrstuvwxyzABCDEF", None, "is not known to this hub"),
        (good[:-4] + "AAAA", None, "is not valid"),
        (good, "sha256:" + "0" * 64, "not the pinned"),
    ]
    for token, pin, words in cases:
        refused = hub.install(0, token, pin=pin, check=False)
        assert refused.returncode == 1, refused.stdout
        assert words in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert hub_snapshot(hub) == before
    assert edge_secrets(hub, 0) == edge_before
    # A wrong pin never sent the token: it still works.
    hub.install(0, good)


def test_removed_cluster_stops_its_agent_and_changes_nothing(hub: Hub) -> None:
    hub.start_agent_api()
    token = token_in(hub.hub_cli("cluster", "add", "gone-1", "--mode", "pull").stdout)
    hub.install(0, token)
    agent = hub.start_agent(0)
    wait_for(lambda: registered(hub, 0), timeout=240, what="the edge to register")
    hub.hub_cli("cluster", "remove", "gone-1")
    assert hub.cluster("gone-1") is None
    edge_before = edge_secrets(hub, 0)
    code = agent.wait_exit(60)
    assert code != 0
    assert (
        "does not accept this agent's credential" in agent.text()
        or "the cluster was removed" in agent.text()
    ), agent.text()
    assert "Traceback" not in agent.text()
    assert edge_secrets(hub, 0) == edge_before
    assert hub.cluster("gone-1") is None


def test_agent_install_applies_the_agents_chart(hub: Hub) -> None:
    hub.start_agent_api()
    token = token_in(hub.hub_cli("cluster", "add", "chart-1", "--mode", "pull").stdout)
    done = hub.install(2, token, deploy=True)
    assert "registers as chart-1" in done.stdout
    kube = hub.fleet.edge_kube(2)
    try:
        deployment = kube.get_sync("apps/v1", "Deployment", "appflow-agent", AGENT_NAMESPACE)
        assert deployment is not None
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"][:2] == ["agent", "run"]
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        assert kube.get_sync("v1", "ServiceAccount", "appflow-agent", AGENT_NAMESPACE) is not None
        binding = kube.get_sync(
            "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "appflow-agent"
        )
        assert binding is not None
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "appflow-agent", "namespace": AGENT_NAMESPACE}
        ]
        config = edge_config(hub, 2)
        assert config["token"] == token  # the agent exchanges it when it starts
        assert config["caPin"] == hub.pin
        kube.delete_sync("apps/v1", "Deployment", "appflow-agent", AGENT_NAMESPACE)
        kube.delete_sync("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "appflow-agent")
    finally:
        kube.close()

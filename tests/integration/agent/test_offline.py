"""Offline: with the hub stopped, agents keep correcting drift from the desired state kept on
their cluster (also after a SIGKILL and restart) and report exactly once when it returns; a
silent agent's cluster shows Offline on the hub, its deployments never Ready."""

from __future__ import annotations

import base64
import gzip
import json
import secrets
import signal
import subprocess
import time
from typing import Any

import pytest

from appflow import sandbox as sb
from appflow.agent.edge import AGENT_NAMESPACE
from appflow.model.agent import offline_status
from appflow.model.hub import API_VERSION
from tests.helpers import built_tool
from tests.integration.agent.conftest import Hub, register_fleet, status_of, wait_for
from tests.integration.agent.publish import deployment
from tests.integration.agent.test_sync import live_value, publish_everywhere, ready

pytestmark = pytest.mark.cluster

OUTAGE = 120.0


def hand_edit(hub: Hub, edge: int, ns: str, value: str) -> None:
    kube = hub.fleet.edge_kube(edge)
    try:
        kube.patch_sync("v1", "ConfigMap", "settings", ns, {"data": {"greeting": value}})
    finally:
        kube.close()


def edge_history(hub: Hub, edge: int, app: str) -> list[dict[str, Any]]:
    """The sync history the agent keeps on its cluster (the truth the hub must end up with)."""
    kube = hub.fleet.edge_kube(edge)
    try:
        secret = kube.get_sync("v1", "Secret", f"appflow-agent-d-{app}", AGENT_NAMESPACE) or {}
    finally:
        kube.close()
    state = json.loads(gzip.decompress(base64.b64decode(secret["data"]["state.json"])))
    return list(state["history"])


def test_hub_outage_agents_self_heal_survive_a_restart_and_converge_after(hub: Hub) -> None:
    names = register_fleet(hub)
    app, ns = f"web-{secrets.token_hex(3)}", f"web-{secrets.token_hex(3)}"
    publish_everywhere(hub, names, app, ns)

    stopped_at = time.monotonic()
    sb.stop([hub.fleet.hub.name], root=hub.fleet.root)
    try:
        # Drift while the hub is away: taken back by the agent, from what it keeps locally.
        hand_edit(hub, 0, ns, "by hand")
        wait_for(
            lambda: live_value(hub, 0, ns) == "one",
            timeout=60,
            what="the hand edit reverted offline",
        )
        # SIGKILL and restart: the new process has the desired state without the hub.
        agent0 = next(p for p in hub.processes if p.log.name.startswith("agent-0"))
        agent0.stop(signal.SIGKILL)
        restarted = hub.start_agent(0)
        hand_edit(hub, 0, ns, "again by hand")
        wait_for(
            lambda: live_value(hub, 0, ns) == "one",
            timeout=60,
            what="the restarted agent to revert",
        )
        assert "drift corrected" in restarted.text()
        offline_history = edge_history(hub, 0, app)
        assert [e["trigger"] for e in offline_history] == ["watch", "selfHeal", "selfHeal"]
        # The rest of the outage.
        wait_for(
            lambda: time.monotonic() - stopped_at >= OUTAGE,
            timeout=OUTAGE + 10,
            what="the outage to last",
        )
    finally:
        sb.start([hub.fleet.hub.name], root=hub.fleet.root)
    back = time.monotonic()

    def converged() -> bool:
        for edge, cluster in enumerate(names):
            status = status_of(hub, cluster, app)
            if (
                status.get("history") != edge_history(hub, edge, app)
                or status.get("state") != "Ready"
            ):
                return False
        return True

    wait_for(converged, timeout=30, what="the hub's status to converge after the outage")
    print(f"\nstatus converged {time.monotonic() - back:.1f}s after the hub returned")
    history = status_of(hub, names[0], app)["history"]
    assert [e["id"] for e in history] == [1, 2, 3]
    assert [e["trigger"] for e in history] == ["watch", "selfHeal", "selfHeal"]
    for cluster in names[1:]:
        assert [e["id"] for e in status_of(hub, cluster, app)["history"]] == [1]


def cluster_state(hub: Hub, name: str) -> dict[str, Any]:
    return (hub.cluster(name) or {}).get("status") or {}


def test_a_silent_agent_shows_offline_never_ready_also_after_the_hub_returns_first(
    hub: Hub,
) -> None:
    names = register_fleet(hub)
    hub.start_controller(lease_duration=6)
    for name in names:
        wait_for(
            lambda n=name: cluster_state(hub, n).get("state") == "Online",
            timeout=60,
            what=f"{name} Online",
        )
    app, ns = f"web-{secrets.token_hex(3)}", f"web-{secrets.token_hex(3)}"
    publish_everywhere(hub, names, app, ns)
    quiet = names[1]

    agent1 = next(p for p in hub.processes if p.log.name.startswith("agent-1"))
    agent1.stop(signal.SIGKILL)
    sb.stop([hub.fleet.hub.name], root=hub.fleet.root)
    time.sleep(15)  # longer than 3 heartbeats of 2 s: what is tested is a silence this long
    sb.start([hub.fleet.hub.name], root=hub.fleet.root)

    def offline() -> dict[str, Any] | None:
        state = cluster_state(hub, quiet)
        return state if state.get("state") == "Offline" else None

    status = wait_for(offline, timeout=60, what=f"{quiet} to show Offline")
    assert status["lastSeen"]
    assert "no heartbeat" in status["reason"]
    shown = wait_for(
        lambda: (
            (status_of(hub, quiet, app).get("display") or {}).get("state", "").startswith("Offline")
            and status_of(hub, quiet, app)
        ),
        timeout=30,
        what="its deployment to show Offline",
    )
    assert shown["display"]["state"] == "Offline (last known: Ready r1)"
    assert shown["state"] == "Unknown"
    # kubectl shows it too.
    table = subprocess.run(
        [
            str(built_tool("kubectl")),
            "--kubeconfig",
            str(hub.kubeconfig),
            "get",
            "appflowdeployments",
            "-A",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Offline (last known: Ready r1)" in table
    # Never Ready while silent.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert status_of(hub, quiet, app).get("state") != "Ready"
        assert cluster_state(hub, quiet).get("state") == "Offline"
        time.sleep(0.5)
    for name in names:
        if name != quiet:
            wait_for(
                lambda n=name: cluster_state(hub, n).get("state") == "Online",
                timeout=60,
                what=f"{name} Online again",
            )
            wait_for(lambda n=name: ready(hub, n, app, 1), timeout=60, what=f"{name} Ready again")

    # The agent returns: Online, and its deployment Ready again with its own status.
    hub.start_agent(1)
    wait_for(
        lambda: cluster_state(hub, quiet).get("state") == "Online",
        timeout=60,
        what=f"{quiet} Online again",
    )
    wait_for(
        lambda: ready(hub, quiet, app, 1), timeout=60, what=f"{quiet}'s deployment Ready again"
    )
    kube = hub.fleet.hub_kube()
    try:
        assert (
            deployment(kube, workspace=hub.workspace, cluster=quiet, app=app)["status"]["display"][
                "state"
            ]
            == "Ready"
        )
        cluster = kube.get_sync(API_VERSION, "Cluster", quiet, hub.workspace) or {}
        assert cluster["status"]["state"] == "Online"
    finally:
        kube.close()


def test_an_offline_mark_on_a_live_agent_is_answered_after_its_next_heartbeat(hub: Hub) -> None:
    """A replica may judge a cluster Offline from a view of its own that was cut off (its Lease
    watch broke with the hub's restart): the agent, alive all along, sees the mark on its
    Deployment and answers with a heartbeat and then its real status."""
    names = register_fleet(hub)
    app, ns = f"web-{secrets.token_hex(3)}", f"web-{secrets.token_hex(3)}"
    publish_everywhere(hub, names, app, ns)
    marked = names[2]
    kube = hub.fleet.hub_kube()
    try:
        found = deployment(kube, workspace=hub.workspace, cluster=marked, app=app)
        meta = found["metadata"]
        kube.patch_sync(
            API_VERSION,
            "AppFlowDeployment",
            meta["name"],
            meta["namespace"],
            {"status": offline_status(found["status"], cluster=marked, since="earlier")},
            subresource="status",
        )
    finally:
        kube.close()
    shown = wait_for(
        lambda: (
            (status_of(hub, marked, app).get("display") or {}).get("state") == "Ready"
            and status_of(hub, marked, app)
        ),
        timeout=60,
        what=f"{marked}'s agent to answer the Offline mark",
    )
    assert shown["state"] == "Ready"
    assert shown["appliedRevision"] == 1

"""`appflow app rollback` against a hub with two pull clusters and a push one: the push cluster is
rolled back by the owning replica as before; for the pull clusters the old revision's renders are
staged again, released once their agents validated them, and applied by the agents; the app
stays pinned there as standalone pins it (a sync is refused until `app resume`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from appflow.model.hub import API_VERSION
from tests.integration.agent.conftest import Hub, register_fleet, wait_for
from tests.integration.agent.test_journeys import EXAMPLES, agent_of, cells

# Three agents registered, a push cluster added, three revisions through the agents: on a
# shared 2-core machine that outlasts the suite's 600 s default (it waits for conditions only).
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]


def _page(hub: Hub, edge: int) -> str:
    kube = hub.fleet.edge_kube(edge)
    try:
        found = kube.get_sync("v1", "ConfigMap", "hello-page", "hello-edge") or {}
    finally:
        kube.close()
    return str((found.get("data") or {}).get("index.html", ""))


def _on(hub: Hub, names: list[str], revision: int) -> bool:
    on = cells(hub, "hello-edge")
    return all(
        on.get(n, {}).get("state") == "Ready" and on[n].get("revision") == revision for n in names
    )


def _deployments(hub: Hub) -> list[dict[str, Any]]:
    kube = hub.fleet.hub_kube()
    try:
        return kube.list_sync(
            API_VERSION, "AppFlowDeployment", label_selector="appflow.dev/app=hello-edge"
        )
    finally:
        kube.close()


def test_a_rollback_reaches_the_pull_clusters_through_their_agents_and_pins_the_app(
    hub: Hub, tmp_path: Path
) -> None:
    examples = tmp_path / "repos-example"
    shutil.copytree(EXAMPLES, examples)
    registered = register_fleet(hub)
    # The third edge leaves pull mode and joins by kubeconfig: a mixed fleet.
    hub.hub_cli("cluster", "remove", registered[2])
    agent_of(hub, 2).stop()
    hub.start_controller()
    push = hub.fleet.edges[2]
    hub.hub_cli("cluster", "add", "push-1", "--kubeconfig", str(push.kubeconfig), "-l", "env=prod")
    pull = registered[:2]
    names = [*pull, "push-1"]
    hub.hub_cli("repo", "add", "examples", str(examples), "--path", "plain")
    hub.hub_cli("sync", "hello-edge", "--wait")
    wait_for(lambda: _on(hub, names, 1), timeout=120, what="revision 1 Ready on the three clusters")

    web = examples / "plain" / "web.yaml"
    web.write_text(web.read_text().replace("Hello from the edge", "Hello from revision two"))
    hub.hub_cli("sync", "hello-edge")
    wait_for(lambda: _on(hub, names, 2), timeout=120, what="revision 2 Ready on the three clusters")
    assert all("Hello from revision two" in _page(hub, e) for e in range(3))

    rolled = hub.hub_cli("app", "rollback", "hello-edge", "--to", "1")
    assert "no longer registered" not in rolled.stdout + rolled.stderr
    wait_for(
        lambda: _on(hub, names, 1), timeout=120, what="revision 1 Ready again on the three clusters"
    )
    assert all("Hello from the edge" in _page(hub, e) for e in range(3))
    # Through the two-phase rule: each agent validated revision 1 before it was released.
    ours = [d for d in _deployments(hub) if d["spec"]["cluster"] in pull]
    assert len(ours) == 2
    for d in ours:
        assert d["spec"]["released"]["revision"] == 1
        assert (d["status"]["staged"]["revision"], d["status"]["staged"]["result"]) == (
            1,
            "Validated",
        )

    # Pinned as standalone pins: app show says so and a sync is refused with the way out.
    shown = hub.hub_cli("app", "show", "hello-edge", "-o", "json")
    assert json.loads(shown.stdout)["pinnedRevision"] == 1
    refused = hub.hub_cli("sync", "hello-edge", check=False)
    assert refused.returncode != 0
    assert "pinned to revision 1" in refused.stdout + refused.stderr
    assert all(cells(hub, "hello-edge")[n]["revision"] == 1 for n in names)

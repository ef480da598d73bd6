"""The pull agent's end-to-end journeys through the hub controller (issue 13's must-show).

They drive the hub as users do, through the CLI with ``--hub`` (docs/hub.md §9): repos-example
synced to three pull clusters, the same status grid as push mode, and push and pull clusters in
one fleet.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agent.conftest import Hub, Process, register_fleet, wait_for

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[3] / "repos-example"


def grid(hub: Hub) -> dict[str, Any]:
    return dict(json.loads(hub.hub_cli("status", "-o", "json").stdout))


def cells(hub: Hub, app: str) -> dict[str, Any]:
    """Per cluster, APP's cell in `appflow status -o json`."""
    found = [a for a in grid(hub)["apps"] if a["name"] == app]
    return dict(found[0]["deployments"]) if found else {}


def agent_of(hub: Hub, edge: int) -> Process:
    """The running agent process of EDGE."""
    kubeconfig = str(hub.fleet.edges[edge].kubeconfig)
    return next(
        p for p in hub.processes if p.alive() and "agent" in p.args and kubeconfig in p.args
    )


def test_repos_example_syncs_to_three_agents_all_ready(hub: Hub) -> None:
    names = register_fleet(hub)
    hub.start_controller()
    hub.hub_cli("repo", "add", "examples", str(EXAMPLES), "--path", "plain")
    hub.hub_cli("sync", "hello-edge", "--wait")

    def all_ready() -> bool:
        on = cells(hub, "hello-edge")
        return all(on.get(n, {}).get("state") == "Ready" for n in names)

    wait_for(all_ready, timeout=120, what="hello-edge Ready on the three pull clusters")
    # The same grid as push mode: one row per app, a column per cluster.
    table = hub.cli("--hub", str(hub.kubeconfig), "status").stdout
    header = next(line for line in table.splitlines() if "APP" in line)
    assert [n for n in names if n in header] == names
    assert re.search(r"hello-edge\s+Ready r1\s+Ready r1\s+Ready r1", table), table
    for edge in range(3):
        kube = hub.fleet.edge_kube(edge)
        try:
            page = kube.get_sync("v1", "ConfigMap", "hello-page", "hello-edge") or {}
        finally:
            kube.close()
        assert "Hello from the edge" in page["data"]["index.html"]


def test_push_and_pull_clusters_side_by_side(hub: Hub) -> None:
    names = register_fleet(hub)
    # The third edge leaves pull mode (its credential revoked at once) and joins by kubeconfig.
    hub.hub_cli("cluster", "remove", names[2])
    agent_of(hub, 2).stop()
    hub.start_controller()
    push = hub.fleet.edges[2]
    hub.hub_cli("cluster", "add", "push-1", "--kubeconfig", str(push.kubeconfig), "-l", "env=prod")
    hub.hub_cli("repo", "add", "examples", str(EXAMPLES), "--path", "plain")
    hub.hub_cli("sync", "hello-edge", "--wait")
    both = [*names[:2], "push-1"]
    wait_for(
        lambda: all(cells(hub, "hello-edge").get(n, {}).get("state") == "Ready" for n in both),
        timeout=120,
        what="hello-edge Ready on two pull clusters and a push one",
    )
    assert names[2] not in cells(hub, "hello-edge")
    history = json.loads(hub.hub_cli("app", "history", "hello-edge", "-o", "json").stdout)
    assert history, "the sync is recorded once for the whole fleet"


def test_offline_targets_skip_releases_to_the_online_clusters_only(
    hub: Hub, tmp_path: Path
) -> None:
    examples = tmp_path / "repos-example"
    shutil.copytree(EXAMPLES, examples)
    definition = examples / "plain" / "appflow.yaml"
    definition.write_text(definition.read_text() + "rollout:\n  offlineTargets: skip\n")
    names = register_fleet(hub)
    hub.start_controller()
    hub.hub_cli("repo", "add", "examples", str(examples), "--path", "plain")
    hub.hub_cli("sync", "hello-edge", "--wait")
    wait_for(
        lambda: all(cells(hub, "hello-edge").get(n, {}).get("revision") == 1 for n in names),
        timeout=120,
        what="revision 1 on the three pull clusters",
    )
    quiet = names[2]
    agent_of(hub, 2).kill()
    wait_for(
        lambda: ((hub.cluster(quiet) or {}).get("status") or {}).get("state") == "Offline",
        timeout=60,
        what=f"{quiet} Offline",
    )
    web = examples / "plain" / "web.yaml"
    web.write_text(web.read_text().replace("Hello from the edge", "Hello while one is away"))
    hub.hub_cli("sync", "hello-edge")

    def released_to_the_online_ones() -> bool:
        on = cells(hub, "hello-edge")
        return all(
            on.get(n, {}).get("state") == "Ready" and on[n].get("revision") == 2 for n in names[:2]
        )

    wait_for(released_to_the_online_ones, timeout=120, what="revision 2 on the online clusters")
    assert cells(hub, "hello-edge")[quiet]["state"] != "Ready"
    # Back, it validates revision 2 itself, gets it released and applies it.
    hub.start_agent(2)
    wait_for(
        lambda: (
            cells(hub, "hello-edge").get(quiet, {}).get("revision") == 2
            and cells(hub, "hello-edge")[quiet]["state"] == "Ready"
        ),
        timeout=120,
        what=f"revision 2 on {quiet} once it is back",
    )

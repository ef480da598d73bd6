"""The pull agent's end-to-end journeys through the hub controller (issue 13's must-show).

They drive the hub as users do, through the CLI with ``--hub`` (docs/hub.md §9): repos-example
synced to three pull clusters, the same status grid as push mode, and push and pull clusters in
one fleet. They need the hub controller's reconcilers and the hub backend of the CLI (issue 12),
which render AppFlows and write their AppFlowDeployments and content: until those land, every
step up to the first sync is real and these tests fail there. They are marked ``xfail(strict=True)``
so that the day they pass, the mark must go.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agent.conftest import Hub, register_fleet, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.xfail(
        strict=True,
        reason="needs the hub controller's reconcilers and the CLI's hub backend (issue 12)",
    ),
]

EXAMPLES = Path(__file__).resolve().parents[3] / "repos-example"


def grid(hub: Hub) -> dict[str, Any]:
    return dict(json.loads(hub.hub_cli("status", "-o", "json").stdout))


def test_repos_example_syncs_to_three_agents_all_ready(hub: Hub) -> None:
    names = register_fleet(hub)
    hub.start_controller()
    hub.hub_cli("repo", "add", "examples", str(EXAMPLES), "--path", "plain")
    hub.hub_cli("sync", "hello-edge", "--wait")

    def all_ready() -> bool:
        cells = next(a for a in grid(hub)["apps"] if a["name"] == "hello-edge")["deployments"]
        return all(cells.get(n, {}).get("state") == "Ready" for n in names)

    wait_for(all_ready, timeout=120, what="hello-edge Ready on the three pull clusters")
    table = hub.hub_cli("status").stdout
    for name in names:
        assert name in table
    assert "Ready r1" in table


def test_push_and_pull_clusters_side_by_side(hub: Hub) -> None:
    names = register_fleet(hub)
    hub.start_controller()
    push = hub.fleet.edges[2]
    hub.hub_cli("cluster", "add", "push-1", "--kubeconfig", str(push.kubeconfig), "-l", "env=prod")
    hub.hub_cli("repo", "add", "examples", str(EXAMPLES), "--path", "plain")
    hub.hub_cli("sync", "hello-edge", "--wait")
    cells = next(a for a in grid(hub)["apps"] if a["name"] == "hello-edge")["deployments"]
    assert {n: cells[n]["state"] for n in [*names[:2], "push-1"]} == dict.fromkeys(
        [*names[:2], "push-1"], "Ready"
    )

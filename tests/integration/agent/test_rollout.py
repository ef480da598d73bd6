"""Rollouts and dependsOn across pull clusters: the hub releases a staged revision partition by partition,
gated on each partition being Ready as its agents report it, held by `rollout pause` and
continued by `rollout resume` (push mode's semantics, docs/hub.md §7); an app released on a
pull cluster only once what it depends on is Ready there."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import label_nodes as label_nodes_of
from tests.helpers import write_held_app
from tests.integration.agent.conftest import Hub, register_fleet, spec_of, status_of, wait_for

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[3] / "repos-example"


def label_nodes(hub: Hub, edge: int, label: str) -> None:
    kube = hub.fleet.edge_kube(edge)
    try:
        label_nodes_of(kube, label)
    finally:
        kube.close()


def rollout(hub: Hub, app: str) -> dict[str, Any]:
    done = hub.hub_cli("rollout", "status", app, "-o", "json", check=False)
    return dict(json.loads(done.stdout)) if done.returncode == 0 else {}


def test_pull_partitions_are_released_one_after_another_and_a_pause_holds(
    hub: Hub, tmp_path: Path
) -> None:
    names = register_fleet(hub)
    dev, prod = names[0], names[1:]
    app, ns = f"waves-{secrets.token_hex(3)}", f"waves-{secrets.token_hex(3)}"
    label = f"rollout-{secrets.token_hex(3)}.test/ready"
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo)
    # Partition 'dev' (site-1) first, then 'prod'; one cluster at a time.
    write_held_app(
        repo / "waves",
        app=app,
        ns=ns,
        node_label=label,
        rollout={
            "maxUnavailable": 1,
            "healthTimeoutSeconds": 900,
            "partitions": [
                {"name": "dev", "clusterSelector": {"matchLabels": {"env": "dev"}}},
                {"name": "prod", "clusterSelector": {"matchLabels": {"env": "prod"}}},
            ],
        },
    )
    hub.start_controller()
    hub.hub_cli("repo", "add", "examples", str(repo), "--path", "waves")
    hub.hub_cli("sync", app)

    # Every target validated revision 1 before anything was released (fleet-wide promise);
    # then only partition 'dev' got it, and its cluster applied it but is not Ready.
    wait_for(
        lambda: status_of(hub, dev, app).get("appliedRevision") == 1,
        timeout=180,
        what=f"revision 1 applied on {dev}",
    )
    for cluster in names:
        assert (status_of(hub, cluster, app).get("staged") or {}).get("result") == "Validated"
    wait_for(
        lambda: status_of(hub, dev, app).get("state") == "NotReady",
        timeout=60,
        what=f"{app} NotReady on {dev} (its pod has no node)",
    )
    record = wait_for(
        lambda: (r := rollout(hub, app)).get("state") == "Progressing" and r,
        timeout=60,
        what="the rollout recorded",
    )
    assert record["current"] == 0
    assert [p["name"] for p in record["partitions"]] == ["dev", "prod"]
    for cluster in prod:
        assert "released" not in spec_of(hub, cluster, app), cluster
        assert status_of(hub, cluster, app).get("appliedRevision") is None

    # Paused while 'dev' is not Ready; then 'dev' becomes Ready: 'prod' is still held.
    hub.hub_cli("rollout", "pause", app)
    label_nodes(hub, 0, label)
    wait_for(
        lambda: status_of(hub, dev, app).get("state") == "Ready",
        timeout=120,
        what=f"{app} Ready on {dev}",
    )
    # The hub's release rule ran on that change (the Deployment's state moved) and held.
    assert rollout(hub, app)["state"] == "Paused"
    for cluster in prod:
        assert "released" not in spec_of(hub, cluster, app), cluster

    # Resumed: 'prod' is released, one cluster at a time (maxUnavailable 1), and completes.
    for edge in (1, 2):
        label_nodes(hub, edge, label)
    hub.hub_cli("rollout", "resume", app)
    for cluster in prod:
        wait_for(
            lambda c=cluster: (
                status_of(hub, c, app).get("state") == "Ready"
                and status_of(hub, c, app).get("appliedRevision") == 1
            ),
            timeout=180,
            what=f"{app} Ready r1 on {cluster}",
        )
    wait_for(
        lambda: rollout(hub, app).get("state") == "Complete",
        timeout=60,
        what="the rollout Complete",
    )
    final = rollout(hub, app)
    assert [p["state"] for p in final["partitions"]] == ["Ready", "Ready"]


def test_a_pull_cluster_gets_an_app_only_once_its_dependency_is_ready_there(
    hub: Hub, tmp_path: Path
) -> None:
    names = register_fleet(hub)
    suffix = secrets.token_hex(3)
    base, top = f"base-{suffix}", f"top-{suffix}"
    label = f"deps-{suffix}.test/ready"
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo)
    write_held_app(repo / "deps" / "base", app=base, ns=base, node_label=label)
    # 'top' itself runs anywhere: only its dependency is held by the node label.
    write_held_app(
        repo / "deps" / "top", app=top, ns=top, node_label=None, dependsOn=[{"name": base}]
    )
    hub.start_controller()
    hub.hub_cli("repo", "add", "examples", str(repo), "--path", "deps")
    hub.hub_cli("sync", base)
    hub.hub_cli("sync", top)
    for cluster in names:
        wait_for(
            lambda c=cluster: (
                status_of(hub, c, base).get("state") == "NotReady"
                and status_of(hub, c, base).get("appliedRevision") == 1
            ),
            timeout=180,
            what=f"{base} applied, NotReady, on {cluster}",
        )
        wait_for(
            lambda c=cluster: (
                (status_of(hub, c, top).get("staged") or {}).get("result") == "Validated"
            ),
            timeout=120,
            what=f"{top} validated on {cluster}",
        )
    # Validated everywhere, released nowhere: its dependency is Ready on no cluster.
    for cluster in names:
        assert "released" not in spec_of(hub, cluster, top), cluster

    # Ready on the first cluster: released there, and only there.
    label_nodes(hub, 0, label)
    wait_for(
        lambda: (
            status_of(hub, names[0], top).get("state") == "Ready"
            and status_of(hub, names[0], top).get("appliedRevision") == 1
        ),
        timeout=120,
        what=f"{top} Ready on {names[0]} once {base} is",
    )
    for cluster in names[1:]:
        assert status_of(hub, cluster, base).get("state") == "NotReady"
        assert "released" not in spec_of(hub, cluster, top), cluster

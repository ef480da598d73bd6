"""A replica's watches hold what is its own (issue 12, item 2), on a real hub.

``follow`` with a selector that names the shard's apps sees only their Deployments; when the
shard changes and the watch restarts, the Deployments of the apps gained are delivered as
ADDED and those of the apps lost as DELETED, and changes after that reach the new view only.
``follow`` in a namespace (the controller's workspace) sees nothing of another workspace.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from appflow.hub.controller import follow
from appflow.model import resources as res
from appflow.model.hub import LABEL_WORKSPACE
from tests.helpers import fresh_namespace
from tests.integration.hub.conftest import Hub

pytestmark = pytest.mark.cluster


async def until(changed: asyncio.Event, check: Any, what: str) -> None:
    """Wait until CHECK holds, looking again each time CHANGED is set (by a handler)."""
    async with asyncio.timeout(60):
        while not check():
            changed.clear()
            await changed.wait()
    assert check(), what


async def test_the_watch_holds_the_shards_deployments_and_follows_it(
    hub_crds: Hub, hub_namespace: str
) -> None:
    kube = hub_crds.kube(timeout=30)
    workspace = hub_namespace
    shard = {"web"}

    def selector() -> str | None:
        names = ",".join(sorted(shard))
        return f"{LABEL_WORKSPACE}={workspace},{res.LABEL_APP} in ({names})" if shard else None

    def afd(app: str, cluster: str) -> dict[str, Any]:
        obj = res.deployment_resource(app, cluster, workspace=workspace, namespace=workspace)
        # One namespace holds them all here: the name must differ per cluster.
        obj["metadata"]["name"] = f"{app}-{cluster}"
        return obj

    view: dict[str, str] = {}
    lists: list[int] = []
    seen: list[tuple[str, str]] = []
    changed = asyncio.Event()

    def listed(found: list[dict[str, Any]]) -> None:
        lists.append(len(found))
        changed.set()

    def handle(event: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        seen.append((event, name))
        if event == "DELETED":
            view.pop(name, None)
        else:
            view[name] = obj["metadata"]["resourceVersion"]
        changed.set()

    for app in ("web", "db"):
        for cluster in ("a", "b"):
            await kube.create(afd(app, cluster))
    stop, restart = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        follow(
            kube,
            "AppFlowDeployment",
            handle,
            stop,
            label_selector=selector,
            listed=listed,
            restart=restart,
        )
    )
    try:
        await until(changed, lambda: lists, "the first list")
        assert lists[0] == 2
        assert set(view) == {"web-a", "web-b"}
        # A change to another shard's Deployment does not reach this replica; one of its own does.
        await kube.patch(
            res.API_VERSION, "AppFlowDeployment", "db-a", workspace, {"spec": {"paused": True}}
        )
        await kube.patch(
            res.API_VERSION, "AppFlowDeployment", "web-a", workspace, {"spec": {"paused": True}}
        )
        await until(changed, lambda: ("MODIFIED", "web-a") in seen, "its own change")
        assert not any(name.startswith("db-") for _, name in seen)

        # The shard moves: db gained, web lost.
        shard.clear()
        shard.add("db")
        restart.set()
        await until(changed, lambda: len(lists) == 2, "the list of the new shard")
        assert set(view) == {"db-a", "db-b"}
        assert ("DELETED", "web-a") in seen
        assert ("DELETED", "web-b") in seen
        seen.clear()
        await kube.delete(res.API_VERSION, "AppFlowDeployment", "db-b", workspace)
        await kube.patch(
            res.API_VERSION, "AppFlowDeployment", "web-b", workspace, {"spec": {"paused": True}}
        )
        await until(changed, lambda: ("DELETED", "db-b") in seen, "the deletion in its new shard")
        assert set(view) == {"db-a"}
        assert not any(name.startswith("web-") for _, name in seen)

        # No apps at all: nothing is listed or watched, and the view empties.
        shard.clear()
        restart.set()
        await until(changed, lambda: len(lists) == 3, "the empty shard")
        assert view == {}
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        kube.close()


async def test_a_workspace_watch_sees_nothing_of_another_workspace(
    hub_crds: Hub, hub_namespace: str
) -> None:
    """A replica once followed every namespace's Clusters: when another workspace was deleted,
    each of its Clusters' DELETED events queued a sync of every app the replica owned."""
    kube = hub_crds.kube(timeout=30)

    def cluster(name: str, namespace: str) -> dict[str, Any]:
        return {
            "apiVersion": res.API_VERSION,
            "kind": "Cluster",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"kind": "imported", "mode": "pull"},
        }

    seen: list[tuple[str, str, str]] = []
    lists: list[list[str]] = []
    changed = asyncio.Event()

    def handle(event: str, obj: dict[str, Any]) -> None:
        seen.append((event, obj["metadata"]["namespace"], obj["metadata"]["name"]))
        changed.set()

    def listed(found: list[dict[str, Any]]) -> None:
        lists.append(sorted(o["metadata"]["namespace"] for o in found))
        changed.set()

    with fresh_namespace(hub_crds.kube(), prefix="h") as other:
        await kube.create(cluster("far", other))
        await kube.create(cluster("near", hub_namespace))
        stop = asyncio.Event()
        task = asyncio.create_task(
            follow(kube, "Cluster", handle, stop, namespace=hub_namespace, listed=listed)
        )
        try:
            await until(
                changed, lambda: ("ADDED", hub_namespace, "near") in seen, "its own Cluster"
            )
            assert lists == [[hub_namespace]]
            # Events come in the order of their writes: the other workspace's deletion is
            # written first, so a watch that carried it would deliver it before this change.
            await kube.delete(res.API_VERSION, "Cluster", "far", other)
            await kube.patch(
                res.API_VERSION,
                "Cluster",
                "near",
                hub_namespace,
                {"metadata": {"labels": {"a": "b"}}},
            )
            await until(
                changed, lambda: ("MODIFIED", hub_namespace, "near") in seen, "its own change"
            )
            assert [ns for _, ns, _ in seen] == [hub_namespace] * len(seen)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            kube.close()

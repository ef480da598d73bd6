"""A recorder write that another writer's change overtook is written again from a fresh read,
once, on a real hub API server.

A replica's sync records its history entry and the Deployment's state in one conditional write.
When something else changed that AppFlowDeployment between the sync's read and its write (a
health check's verdict landing while a user's sync starts), the API server refuses the write
(409). The recorder reads again and writes again: the sync goes on, the other writer's change
stays, the history holds one entry per sync, and each event is created once, after the write
it reports has landed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from appflow.engine.recorder import Recorder
from appflow.engine.stages.types import SyncResult
from appflow.errors import ConflictError, WriteConflict
from appflow.hub.store import HubStore
from appflow.kube.client import Connection, KubeCluster
from appflow.model import resources as res
from appflow.model.health import Health, HealthStatus
from appflow.model.hub import API_VERSION, cluster_namespace
from appflow.model.inventory import Inventory
from appflow.model.plan import Plan
from appflow.model.records import AppRecord, ClusterRecord
from tests.integration.hub.conftest import Hub

pytestmark = pytest.mark.cluster


class OvertakenKube(KubeCluster):
    """The hub, where another writer changes an AppFlowDeployment's status right before each
    of this client's next conditional writes of it, as often as told; the 409s it got."""

    overtake: Callable[[str, str], None] | None = None
    times = 0
    conflicts = 0

    def patch_sync(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        patch: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        conditional = bool((patch.get("metadata") or {}).get("resourceVersion"))
        if kind == "AppFlowDeployment" and conditional and self.times and self.overtake:
            self.times -= 1
            self.overtake(name, namespace)
        try:
            return super().patch_sync(
                api_version, kind, name, namespace, patch, subresource=subresource
            )
        except ConflictError:
            self.conflicts += 1
            raise


async def test_a_sync_whose_deployment_changed_under_it_is_recorded_once(
    hub_crds: Hub, hub_namespace: str
) -> None:
    kube = OvertakenKube(Connection(name=hub_crds.name, kubeconfig=hub_crds.kubeconfig, timeout=30))
    other = hub_crds.kube(timeout=30)
    store = HubStore(kube, workspace=hub_namespace, writer="replica")
    recorder = Recorder(store)
    await asyncio.to_thread(store.put_cluster, ClusterRecord(name="site-1", kind="imported"))
    await asyncio.to_thread(store.put_app, AppRecord(name="web", source="git", repo="r"))
    await recorder.deployment_state("web", "site-1", "NotReady", "1 of 2 pods ready")
    checks = iter(range(1, 100))

    def health_check(name: str, namespace: str) -> None:
        # What a health check of another task writes while the sync runs.
        other.patch_sync(
            API_VERSION,
            "AppFlowDeployment",
            name,
            namespace,
            {"status": {"message": f"health check {next(checks)}: 2 of 2 pods ready"}},
            subresource="status",
        )

    def deployment() -> dict[str, Any]:
        found = other.get_sync(
            API_VERSION,
            "AppFlowDeployment",
            res.deployment_name("web"),
            cluster_namespace(hub_namespace, "site-1"),
        )
        assert found is not None
        return found

    kube.overtake = health_check
    try:
        # Overtaken once before the sync's first write, once before its last.
        kube.times = 1
        sync = await recorder.sync_started(
            "web", "site-1", revision=None, trigger="user", ahead=Inventory("web", ())
        )
        assert kube.conflicts == 1
        history = deployment()["status"].get("history") or []
        assert [e["outcome"] for e in history] == ["running"], history
        kube.times = 1
        result = SyncResult(
            app="web",
            cluster="site-1",
            revision="r",
            plan=Plan(()),
            state="Ready",
            health=Health(HealthStatus.HEALTHY, "all ready"),
            inventory=Inventory("web", ()),
            fingerprints={"web_web_apps_Deployment": "d:m:u"},
        )
        await recorder.sync_finished(sync, result, revision=None, source_ref=None)
        assert kube.conflicts == 2

        status = deployment()["status"]
        assert status["state"] == "Ready", status
        history = status.get("history") or []
        assert [(e["outcome"], e["trigger"]) for e in history] == [("succeeded", "user")], history
        events = [e for e in await asyncio.to_thread(store.list_events, app="web")]
        assert [e.kind for e in events].count("sync") == 1, events

        # Overtaken on every try: after its last one the write fails, and says why.
        kube.times = 99
        with pytest.raises(WriteConflict, match="changed while it was being written"):
            await recorder.deployment_state("web", "site-1", "NotReady", "a pod restarted")
    finally:
        kube.close()
        other.close()

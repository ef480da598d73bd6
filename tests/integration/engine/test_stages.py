"""The sync stages on their own: a KubeCluster and plain inputs, no store, no engine.

This is how the pull agent will run them on its own cluster: prepare (reads only),
then apply, prune, the final inventory and health, each callable by itself or together
through execute.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from appflow.engine.stages.apply import apply
from appflow.engine.stages.execute import execute, final_inventory
from appflow.engine.stages.health import assess_health
from appflow.engine.stages.inventory import delete_inventory, read_inventory
from appflow.engine.stages.prepare import prepare
from appflow.engine.stages.prune import prune
from appflow.engine.stages.types import DesiredState, SyncOptions, SyncResult
from appflow.kube.client import KubeCluster
from appflow.model.health import HealthStatus
from appflow.model.objects import Manifest
from appflow.model.plan import Action
from tests.helpers import Sandbox
from tests.integration.engine.support import configmap


@pytest.fixture
def kube(sandbox: Sandbox, namespace: str) -> Iterator[KubeCluster]:
    client = sandbox.kube(0)
    try:
        yield client
    finally:
        client.close()


def desired(app: str, objects: list[Manifest]) -> DesiredState:
    return DesiredState(
        app=app, cluster="test-1", objects=tuple(objects), revision=str(len(objects))
    )


async def sync(
    kube: KubeCluster, state: DesiredState, last: SyncResult | None, options: SyncOptions
) -> SyncResult:
    prepared = await prepare(
        kube,
        state,
        previous_inventory=last.inventory if last else None,
        fingerprints=dict(last.fingerprints) if last else {},
        options=options,
    )
    return await execute(kube, prepared, options=options)


def test_prepare_then_apply_prune_and_health_one_by_one(kube: KubeCluster, namespace: str) -> None:
    app = f"stages-{secrets.token_hex(3)}"
    objects = [configmap(f"cm-{i}", namespace, {"i": str(i)}) for i in range(3)]

    async def run() -> None:
        try:
            first = await prepare(
                kube,
                desired(app, objects),
                previous_inventory=None,
                fingerprints={},
                options=SyncOptions(),
            )
            assert [c.action for c in first.plan.changes] == [Action.CREATE] * 3
            assert await read_inventory(kube, app) is None  # prepare wrote nothing

            applied = await apply(kube, first, options=SyncOptions())
            assert not applied.errors
            assert applied.count == 3
            assert applied.stored_inventory is not None
            assert len(applied.stored_inventory) == 3

            health, failing, counts = await assess_health(kube, app, first.objects)
            assert health.status is HealthStatus.HEALTHY
            assert not failing
            assert counts.ready == 3

            second = await prepare(
                kube,
                desired(app, objects[:2]),
                previous_inventory=applied.stored_inventory,
                fingerprints=applied.fingerprints,
                options=SyncOptions(),
            )
            assert [c.action for c in second.plan.changes].count(Action.PRUNE) == 1
            pruned = await prune(kube, second, options=SyncOptions(), apply_failed=False)
            assert [str(r) for r in pruned.deleted] == [f"ConfigMap/{namespace}/cm-2"]
            assert len(final_inventory(second, pruned, failed=False)) == 2
            assert await kube.get("v1", "ConfigMap", "cm-2", namespace) is None
        finally:
            await delete_inventory(kube, app)

    asyncio.run(run())


def test_prune_off_keeps_objects_as_orphans_and_an_app_with_nothing_left_is_orphaned(
    kube: KubeCluster, namespace: str
) -> None:
    app = f"orphans-{secrets.token_hex(3)}"
    objects = [configmap(f"cm-{i}", namespace, {"i": str(i)}) for i in range(2)]
    keep = SyncOptions(prune=False)

    async def run() -> None:
        try:
            first = await sync(kube, desired(app, objects), None, keep)
            assert first.state == "Ready"

            fewer = await sync(kube, desired(app, objects[:1]), first, keep)
            assert fewer.state == "Ready"
            assert fewer.resource_counts.orphaned == 1
            assert len(fewer.inventory) == 2  # still owned: a later sync with prune deletes it
            assert await kube.get("v1", "ConfigMap", "cm-1", namespace) is not None

            none = await sync(kube, desired(app, []), fewer, keep)
            assert none.state == "Orphaned"
            assert none.resource_counts.orphaned == 2

            gone = await sync(kube, desired(app, []), none, SyncOptions(prune=True))
            assert gone.ok
            assert not gone.inventory.entries
            assert sorted(str(r) for r in gone.pruned) == [
                f"ConfigMap/{namespace}/cm-0",
                f"ConfigMap/{namespace}/cm-1",
            ]
        finally:
            await delete_inventory(kube, app)

    asyncio.run(run())

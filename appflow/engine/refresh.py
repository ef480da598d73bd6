"""Re-assess a Deployment's health from what it applied, and record what changed.

The daemon does this for Deployments that are not Ready yet, so that status follows the
cluster; dependency checks do it for the apps they wait for. Nothing is applied: the
objects of the applied revision are read back and checked.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from appflow.engine.parts import EngineParts
from appflow.engine.stages.health import assess_health, assess_objects
from appflow.errors import ClusterError, NotFoundError
from appflow.model.hooks import main_objects
from appflow.model.objects import Manifest
from appflow.model.records import ClusterRecord, DeploymentRecord
from appflow.model.status import deployment_state
from appflow.store import Store


def _read(
    store: Store, app: str, cluster: str
) -> tuple[DeploymentRecord | None, ClusterRecord | None, list[Manifest]]:
    try:
        record = store.get_deployment(app, cluster)
    except NotFoundError:
        return None, None, []
    if record.applied_revision is None or record.state in (
        "ErrApplied",
        "WaitApplied",
        "OutOfSync",
    ):
        return record, None, []
    rendered = store.get_revision(app, record.applied_revision).rendered.get(cluster, [])
    # Hooks are not part of an app's health (they ran, or will, at their moments).
    return record, store.get_cluster(cluster), list(main_objects(rendered))


async def refresh_health(parts: EngineParts, *, app: str, cluster: str) -> DeploymentRecord | None:
    """The Deployment of APP on CLUSTER with its health assessed now (None: not deployed).

    A Deployment whose last sync failed or that waits for something keeps its state:
    health says nothing about objects that were not applied.
    """
    record, where, objects = await asyncio.to_thread(_read, parts.store, app, cluster)
    if record is None or where is None:
        return record
    kube = parts.connections.kube(where)
    try:
        if record.release is not None:
            health, failing, counts = await assess_objects(kube, objects)
        else:
            health, failing, counts = await assess_health(kube, app, objects)
    except ClusterError as err:
        return replace(record, state="Unknown", message=str(err))
    state = deployment_state(health.status)
    if state == record.state and failing == record.failing:
        return record
    return await parts.recorder.deployment(
        replace(
            record, state=state, message=health.message, failing=failing, resource_counts=counts
        )
    )

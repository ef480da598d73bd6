"""Uninstall: remove an app from every cluster it is deployed to.

Objects appflow applied are pruned from the inventory (and the inventory ConfigMap
removed once empty), between the PreDelete and PostDelete hooks of the revision each
cluster has (``stages.hooks.delete_with_hooks``); Helm releases are uninstalled with
helm, which runs a chart's delete hooks itself. An app whose definition says
keepResources (Fleet's field) leaves its objects, and its Helm releases, where they
are, and runs no delete hook (nothing is deleted): only its inventories go, and the
report says what was kept. The kept objects still carry the app's label, so adding
the app again adopts them, and any other app needs an explicit take-ownership to
have them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping

from appflow.engine.fanout import run_on_clusters, validated
from appflow.engine.parts import EngineParts
from appflow.engine.report import AppSyncReport
from appflow.engine.stages import release
from appflow.engine.stages.execute import execute
from appflow.engine.stages.hooks import delete_with_hooks
from appflow.engine.stages.inventory import delete_inventory
from appflow.engine.stages.types import DesiredState, Progress, SyncOptions, SyncResult
from appflow.engine.state import deployed_objects, read_app_state
from appflow.errors import AppflowError
from appflow.model.hooks import Hook, split_hooks
from appflow.model.records import DeploymentRecord
from appflow.store import Store


async def uninstall_app(parts: EngineParts, name: str, *, progress: Progress) -> AppSyncReport:
    """Remove app NAME from every cluster it is deployed to (the app stays registered)."""
    state = await asyncio.to_thread(read_app_state, parts.store, name)
    clusters = state.fleet.clusters
    deployed = {c: d for c, d in state.deployments.items() if c in clusters}
    report = AppSyncReport(app=name)
    keep = KEPT if state.app.policy.keep_resources else ""
    for cluster, deployment in deployed.items():
        if deployment.release is None:
            continue
        if keep:
            report.warnings.append(
                f"{cluster}: kept Helm release {deployment.release.namespace}/"
                f"{deployment.release.name} ({KEPT})"
            )
            continue
        try:
            await release.uninstall(
                parts.connections.kube(clusters[cluster]), app=name, release=deployment.release
            )
        except AppflowError as err:
            report.cluster_failed(cluster, err)
    pruned = [c for c, d in deployed.items() if d.release is None]
    hooks = (
        {}
        if keep
        else await asyncio.to_thread(_hooks, parts.store, {c: deployed[c] for c in pruned})
    )
    desired = {c: DesiredState(app=name, cluster=c, objects=(), revision="") for c in pruned}
    delivery = await validated(
        parts,
        report,
        desired,
        clusters={c: clusters[c] for c in pruned},
        source_ref=None,
        trigger="user",
        options=SyncOptions(prune=True, keep=keep),
        progress=progress,
    )
    if delivery is not None:
        found = delivery

        def remove(cluster: str) -> Awaitable[SyncResult]:
            kube = parts.connections.kube(clusters[cluster])
            prepared = found.prepared[cluster]
            return delete_with_hooks(
                kube,
                prepared,
                hooks.get(cluster, ()),
                options=found.options,
                progress=progress,
                execute=lambda: execute(kube, prepared, options=found.options, progress=progress),
            )

        await run_on_clusters(
            parts,
            report,
            list(delivery.prepared),
            revision=None,
            trigger=delivery.trigger,
            source_ref=None,
            action=remove,
        )
    for result in report.results:
        if result.ok and (keep or not result.inventory.entries):
            await delete_inventory(parts.connections.kube(clusters[result.cluster]), name)
    return report


def _hooks(
    store: Store, deployments: Mapping[str, DeploymentRecord]
) -> dict[str, tuple[Hook, ...]]:
    """Per cluster, the hooks of the revision it has."""
    return {c: split_hooks(deployed_objects(store, d)).hooks for c, d in deployments.items()}


KEPT = "keepResources: the app's objects stay when it is deleted"

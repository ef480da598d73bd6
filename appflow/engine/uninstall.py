"""Uninstall: remove an app from every cluster it is deployed to.

Objects appflow applied are pruned from the inventory (and the inventory ConfigMap
removed once empty); Helm releases are uninstalled with helm.
"""

from __future__ import annotations

import asyncio

from appflow.engine.fanout import deliver, validated
from appflow.engine.parts import EngineParts
from appflow.engine.report import AppSyncReport
from appflow.engine.stages import release
from appflow.engine.stages.inventory import delete_inventory
from appflow.engine.stages.types import DesiredState, Progress, SyncOptions
from appflow.engine.state import read_app_state
from appflow.errors import AppflowError


async def uninstall_app(parts: EngineParts, name: str, *, progress: Progress) -> AppSyncReport:
    """Remove app NAME from every cluster it is deployed to (the app stays registered)."""
    state = await asyncio.to_thread(read_app_state, parts.store, name)
    clusters = state.fleet.clusters
    deployed = {c: d for c, d in state.deployments.items() if c in clusters}
    report = AppSyncReport(app=name)
    for cluster, deployment in deployed.items():
        if deployment.release is None:
            continue
        try:
            await release.uninstall(
                parts.connections.kube(clusters[cluster]), app=name, release=deployment.release
            )
        except AppflowError as err:
            report.cluster_failed(cluster, err)
    pruned = [c for c, d in deployed.items() if d.release is None]
    desired = {c: DesiredState(app=name, cluster=c, objects=(), revision="") for c in pruned}
    delivery = await validated(
        parts,
        report,
        desired,
        clusters={c: clusters[c] for c in pruned},
        deployments=deployed,
        source_ref=None,
        trigger="user",
        options=SyncOptions(prune=True),
        progress=progress,
    )
    if delivery is not None:
        await deliver(parts, delivery, report, list(delivery.prepared))
    for result in report.results:
        if result.ok and not result.inventory.entries:
            await delete_inventory(parts.connections.kube(clusters[result.cluster]), name)
    return report

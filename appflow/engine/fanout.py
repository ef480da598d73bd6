"""One revision of one app onto many clusters: validate on every target, then deliver.

    prepared = await prepare_all(...)      # every target, reads only; any refusal blocks all
    delivery = await validated(...)        # the revision recorded, ready to deliver
    await deliver(parts, delivery, report, clusters)   # execute on those clusters (bounded)

Syncs, rollbacks, uninstalls and the rollout runner all deliver this way; each cluster's
finished sync is recorded as it finishes (see ``Recorder.sync_finished``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from appflow.engine.parts import EngineParts
from appflow.engine.policies import enforce_guard_rails, load_policies
from appflow.engine.report import AppSyncReport
from appflow.engine.stages.execute import execute
from appflow.engine.stages.prepare import prepare
from appflow.engine.stages.types import (
    DesiredState,
    Prepared,
    Progress,
    SyncBlocked,
    SyncOptions,
    SyncResult,
)
from appflow.errors import AppflowError, ClusterError
from appflow.model.inventory import Inventory
from appflow.model.records import (
    ClusterRecord,
    DeploymentRecord,
    RevisionRecord,
    SourceRef,
    SyncTrigger,
)

Action = Callable[[str], Awaitable[SyncResult]]
"""What to do on one cluster (by name), e.g. execute its prepared sync."""


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One validated revision of one app, ready to go to its clusters."""

    app: str
    prepared: Mapping[str, Prepared]
    clusters: Mapping[str, ClusterRecord]
    revision: RevisionRecord | None
    source_ref: SourceRef | None
    trigger: SyncTrigger
    options: SyncOptions
    progress: Progress


async def prepare_all(
    parts: EngineParts,
    report: AppSyncReport,
    desired: Mapping[str, DesiredState],
    *,
    clusters: Mapping[str, ClusterRecord],
    deployments: Mapping[str, DeploymentRecord],
    options: SyncOptions,
) -> dict[str, Prepared]:
    """Prepare DESIRED on every cluster (bounded); refusals go to REPORT.blocked."""
    limit = asyncio.Semaphore(parts.options.cluster_concurrency)
    prepared: dict[str, Prepared] = {}
    policies = await load_policies(
        parts.store, app=report.app, clusters=[clusters[n] for n in desired]
    )

    async def one(name: str) -> None:
        app = desired[name].app
        previous = deployments.get(name)
        async with limit:
            try:
                # The operator's guard rails, before any dry run (see engine.policies).
                await enforce_guard_rails(
                    parts.connections.kube(clusters[name]), desired[name], policies[name]
                )
                prepared[name] = await prepare(
                    parts.connections.kube(clusters[name]),
                    desired[name],
                    previous_inventory=Inventory(app, previous.inventory) if previous else None,
                    fingerprints=dict(previous.applied) if previous else {},
                    options=options,
                )
            except ClusterError as err:
                await unreachable(parts, report, name, err.located(app=app, cluster=name))
            except SyncBlocked as err:
                report.blocked.extend(err.errors)
            except AppflowError as err:
                report.blocked.append(err.located(app=app, cluster=name))

    await asyncio.gather(*(one(n) for n in desired))
    return prepared


async def unreachable(
    parts: EngineParts, report: AppSyncReport, cluster: str, err: AppflowError
) -> None:
    """CLUSTER failed before a sync started there: report and record it."""
    report.cluster_failed(cluster, err)
    await parts.recorder.cluster_failed(report.app, cluster, err)


async def validated(
    parts: EngineParts,
    report: AppSyncReport,
    desired: Mapping[str, DesiredState],
    *,
    clusters: Mapping[str, ClusterRecord],
    deployments: Mapping[str, DeploymentRecord],
    source_ref: SourceRef | None,
    trigger: SyncTrigger,
    options: SyncOptions,
    progress: Progress,
    revision: RevisionRecord | None = None,
) -> Delivery | None:
    """DESIRED prepared on every target and its revision recorded; None when refused."""
    prepared: dict[str, Prepared] = {}
    if not report.blocked:
        progress(f"{report.app}: validating on {len(desired)} cluster(s) (server-side dry run)")
        prepared = await prepare_all(
            parts, report, desired, clusters=clusters, deployments=deployments, options=options
        )
    if report.blocked:
        await parts.recorder.blocked(
            report.app, report.blocked, clusters=list(desired), trigger=trigger
        )
        return None
    if revision is None and source_ref is not None and any(d.objects for d in desired.values()):
        revision = await parts.recorder.revision(report.app, desired, source_ref=source_ref)
    report.revision = revision
    return Delivery(
        app=report.app,
        prepared=prepared,
        clusters=clusters,
        revision=revision,
        source_ref=source_ref,
        trigger=trigger,
        options=options,
        progress=progress,
    )


async def deliver(
    parts: EngineParts,
    delivery: Delivery,
    report: AppSyncReport,
    clusters: Sequence[str],
    *,
    options: SyncOptions | None = None,
) -> None:
    """Execute DELIVERY's prepared syncs on CLUSTERS (with OPTIONS instead of its own)."""
    chosen = options or delivery.options

    def action(cluster: str) -> Awaitable[SyncResult]:
        return execute(
            parts.connections.kube(delivery.clusters[cluster]),
            delivery.prepared[cluster],
            options=chosen,
            progress=delivery.progress,
        )

    await run_on_clusters(
        parts,
        report,
        [c for c in clusters if c in delivery.prepared],
        revision=delivery.revision,
        trigger=delivery.trigger,
        source_ref=delivery.source_ref,
        action=action,
    )


async def run_on_clusters(
    parts: EngineParts,
    report: AppSyncReport,
    clusters: Sequence[str],
    *,
    revision: RevisionRecord | None,
    trigger: SyncTrigger,
    source_ref: SourceRef | None,
    action: Action,
) -> None:
    """Run ACTION on each of CLUSTERS (bounded), recording each one's history and Deployment."""
    limit = asyncio.Semaphore(parts.options.cluster_concurrency)
    recorder = parts.recorder

    async def one(cluster: str) -> None:
        async with limit:
            sync = await recorder.sync_started(
                report.app, cluster, revision=revision, trigger=trigger
            )
            try:
                result = await action(cluster)
            except AppflowError as err:
                located = err.located(app=report.app, cluster=cluster)
                report.cluster_failed(cluster, located)
                await recorder.sync_failed(sync, located, source_ref=source_ref)
                return
            if result.served_kinds_changed:
                parts.connections.served_kinds_changed(cluster)
            report.results.append(result)
            await recorder.sync_finished(sync, result, revision=revision, source_ref=source_ref)

    await asyncio.gather(*(one(c) for c in clusters))
    report.results.sort(key=lambda r: r.cluster)

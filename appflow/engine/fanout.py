"""One revision of one app onto many clusters: validate on every target, then deliver.

    prepared = await prepare_all(...)      # every target, reads only; any refusal blocks all
    delivery = await validated(...)        # the revision recorded, ready to deliver
    await deliver(parts, delivery, report, clusters)   # execute on those clusters (bounded)

Syncs, rollbacks, uninstalls and the rollout runner all deliver this way; each cluster's
finished sync is recorded as it finishes (see ``Recorder.sync_finished``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from appflow.engine.parts import EngineParts
from appflow.engine.policies import enforce_guard_rails, load_policies
from appflow.engine.report import AppSyncReport
from appflow.engine.stages.apply import inventory_ahead
from appflow.engine.stages.execute import execute
from appflow.engine.stages.failures import Blame
from appflow.engine.stages.prepare import prepare
from appflow.engine.stages.types import (
    DesiredState,
    Prepared,
    Progress,
    SyncBlocked,
    SyncOptions,
    SyncResult,
)
from appflow.errors import (
    AppflowError,
    ClusterError,
    StoreError,
    SyncInProgressError,
    SyncNotRecordedError,
    Where,
)
from appflow.model.inventory import Inventory
from appflow.model.records import (
    ClusterRecord,
    RevisionRecord,
    SourceRef,
    SyncTrigger,
)

Action = Callable[[str], Awaitable[SyncResult]]
"""What to do on one cluster (by name), e.g. execute its prepared sync."""


class RemoteTargets(Protocol):
    """An app's targets that the engine does not write itself (a hub's pull clusters, whose
    agents apply what the hub releases), delivered in the same partition order as its own.

    The engine validates its targets, then asks ``validate`` (nothing is written anywhere
    until every remote target validated too: one fleet-wide dry run), then delivers partition
    by partition: its own clusters with its stages, the remote ones with ``deliver``, one gate
    on both (``engine.rollout``).
    """

    labels: Mapping[str, Mapping[str, str]]
    """Per remote target, its labels (rollout partitions select by them)."""
    previous: Mapping[str, int | None]
    """Per remote target, the revision it ran before (where autoRollback returns it)."""

    async def validate(self, revision: RevisionRecord) -> dict[str, str]:
        """Offer REVISION to every remote target and wait for their verdicts: the rejections,
        by cluster (empty: every online target validated it)."""
        ...

    async def deliver(
        self, clusters: Sequence[str], *, revision: int, wait: float | None
    ) -> dict[str, tuple[str, str]]:
        """Release REVISION to CLUSTERS; with WAIT (the health timeout), wait until each is
        Ready at it or failed, and return (state, why) per cluster that settled (an Offline
        cluster has none: it converges when it is back)."""
        ...

    async def roll_back(self, clusters: Mapping[str, int]) -> dict[str, int]:
        """Release to each of CLUSTERS the earlier revision given; what was released."""
        ...


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
    actor: str = ""
    """Who asked for the sync (SyncRecord.actor)."""


async def prepare_all(
    parts: EngineParts,
    report: AppSyncReport,
    desired: Mapping[str, DesiredState],
    *,
    clusters: Mapping[str, ClusterRecord],
    options: SyncOptions,
) -> dict[str, Prepared]:
    """Prepare DESIRED on every cluster (bounded), each under its sync lock; refusals go
    to REPORT.blocked, clusters another writer holds to REPORT.busy."""
    limit = asyncio.Semaphore(parts.options.cluster_concurrency)
    prepared: dict[str, Prepared] = {}
    policies = await load_policies(
        parts.store, app=report.app, clusters=[clusters[n] for n in desired]
    )

    async def one(name: str) -> None:
        app = desired[name].app
        async with limit:
            try:
                # The operator's guard rails, before any dry run (see engine.policies).
                await enforce_guard_rails(
                    parts.connections.kube(clusters[name]), desired[name], policies[name]
                )
                # Held from before live state is read until the result is recorded: a
                # second writer would otherwise plan from the same inventory.
                await parts.locks.acquire(app, name, timeout=options.lock_timeout)
                # What the store knows now, not when the sync began: a writer this one
                # waited for has recorded since.
                previous = await parts.recorder.deployment_of(app, name)
                prepared[name] = await prepare(
                    parts.connections.kube(clusters[name]),
                    desired[name],
                    previous_inventory=Inventory(app, previous.inventory) if previous else None,
                    fingerprints=dict(previous.applied) if previous else {},
                    hook_record=previous.hooks if previous else None,
                    options=options,
                    memo=parts.connections.plans,
                )
            except SyncInProgressError as err:
                report.busy[name] = err
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
    """CLUSTER failed before a sync started there: report and record it.

    Whether the cluster is Offline is its health probe's to say, not one request's:
    when the probe answers, the failure is the Deployment's (ErrApplied).
    """
    report.cluster_failed(cluster, err)
    offline = await _offline(parts, report.app, cluster, err)
    await parts.recorder.cluster_failed(report.app, cluster, err, offline=offline)


async def _offline(parts: EngineParts, app: str, cluster: str, err: AppflowError) -> bool:
    if not isinstance(err, ClusterError):
        return False
    try:
        record = await asyncio.to_thread(parts.store.get_cluster, cluster)
    except AppflowError:
        return True
    return not await Blame(parts.connections.kube(record)).cluster_answers()


async def validated(
    parts: EngineParts,
    report: AppSyncReport,
    desired: Mapping[str, DesiredState],
    *,
    clusters: Mapping[str, ClusterRecord],
    source_ref: SourceRef | None,
    trigger: SyncTrigger,
    options: SyncOptions,
    progress: Progress,
    revision: RevisionRecord | None = None,
    actor: str = "",
) -> Delivery | None:
    """DESIRED prepared on every target and its revision recorded; None when refused."""
    prepared: dict[str, Prepared] = {}
    if not report.blocked:
        progress(f"{report.app}: validating on {len(desired)} cluster(s) (server-side dry run)")
        prepared = await prepare_all(parts, report, desired, clusters=clusters, options=options)
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
        actor=actor,
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
        actor=delivery.actor,
        source_ref=delivery.source_ref,
        action=action,
        ahead={c: inventory_ahead(p, options=chosen) for c, p in delivery.prepared.items()},
        lock_timeout=chosen.lock_timeout,
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
    ahead: Mapping[str, Inventory | None] | None = None,
    lock_timeout: float = 0.0,
    actor: str = "",
) -> None:
    """Run ACTION on each of CLUSTERS (bounded), recording each one's history and Deployment.

    AHEAD is, per cluster, what the app's inventory must name before ACTION writes
    anything (None: it writes nothing): the store's mirror is written ahead with it,
    and the Deployment says WaitApplied at REVISION until the result is recorded, so
    a crash or a store that refuses the last write never leaves it saying Ready.
    """
    limit = asyncio.Semaphore(parts.options.cluster_concurrency)

    async def one(cluster: str) -> None:
        async with limit:
            try:
                await parts.locks.acquire(report.app, cluster, timeout=lock_timeout)
            except SyncInProgressError as err:
                report.busy[cluster] = err
                return
            await _run_one(
                parts,
                report,
                cluster,
                revision=revision,
                trigger=trigger,
                actor=actor,
                source_ref=source_ref,
                action=action,
                ahead=(ahead or {}).get(cluster),
            )

    await asyncio.gather(*(one(c) for c in clusters))
    report.results.sort(key=lambda r: r.cluster)


async def _run_one(
    parts: EngineParts,
    report: AppSyncReport,
    cluster: str,
    *,
    revision: RevisionRecord | None,
    trigger: SyncTrigger,
    actor: str,
    source_ref: SourceRef | None,
    action: Action,
    ahead: Inventory | None,
) -> None:
    recorder = parts.recorder
    app = report.app
    try:
        sync = await recorder.sync_started(
            app, cluster, revision=revision, trigger=trigger, actor=actor, ahead=ahead
        )
    except StoreError as err:
        report.cluster_failed(
            cluster,
            err.located(app=app, cluster=cluster).noted("nothing was changed on the cluster"),
        )
        return
    try:
        result = await action(cluster)
    except AppflowError as err:
        located = err.located(app=app, cluster=cluster)
        if ahead is not None:
            number = f"revision {revision.number}" if revision else "the revision"
            located = located.noted(
                f"the cluster may already have changed: {number} was being applied; "
                "the next sync finishes it"
            )
        report.cluster_failed(cluster, located)
        offline = await _offline(parts, app, cluster, located)
        with contextlib.suppress(StoreError):
            await recorder.sync_failed(sync, located, source_ref=source_ref, offline=offline)
        return
    if result.served_kinds_changed:
        parts.connections.served_kinds_changed(cluster)
    report.results.append(result)
    try:
        await recorder.sync_finished(sync, result, revision=revision, source_ref=source_ref)
    except StoreError as err:
        report.cluster_failed(cluster, _not_recorded(err, app, cluster, revision, result, ahead))


def _not_recorded(
    err: StoreError,
    app: str,
    cluster: str,
    revision: RevisionRecord | None,
    result: SyncResult,
    ahead: Inventory | None,
) -> AppflowError:
    """The error for a sync whose result the store refused to record."""
    where = Where(app=app, cluster=cluster)
    if ahead is None:
        return err.placed(where).noted("the sync changed nothing on the cluster")
    number = f"revision {revision.number}" if revision else "the change"
    changed = "applied to" if result.ok else "partly applied to"
    return SyncNotRecordedError(
        f"{number} was {changed} the cluster, but the store refused to record it "
        f"({err.message}): the cluster already changed; until a sync completes, "
        f"the Deployment shows WaitApplied at {number}",
        where=where,
        hint="run the sync again: it finds the objects as they are and records them",
    )

"""Rollback: re-apply an earlier revision exactly as it was rendered, and pin the app there.

Objects appflow applied are re-applied from the revision's stored renders (nothing is
fetched or rendered) and what came later is pruned; release-mode apps are rolled back
with `helm rollback` to the Helm revision that appflow revision became on each cluster.
The app is pinned to that revision afterwards (Argo CD pauses auto-sync for the same
reason: the next sync would undo the rollback): no automatic sync moves it, a manual
sync is refused saying how to unpin, and ``resume_app`` unpins it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from appflow.engine.fanout import deliver, run_on_clusters, validated
from appflow.engine.parts import EngineParts
from appflow.engine.report import AppSyncReport
from appflow.engine.restore import restore_revision
from appflow.engine.stages import release
from appflow.engine.stages.types import DesiredState, Progress, SyncOptions
from appflow.engine.state import AppState, read_app_state
from appflow.errors import AppflowError, NotFoundError, Where
from appflow.model.records import AppRecord, ClusterRecord, HelmReleaseRef, RevisionRecord


async def rollback_app(
    parts: EngineParts, name: str, *, to: int, options: SyncOptions, progress: Progress
) -> AppSyncReport:
    """Re-apply revision TO of app NAME on the clusters it was rendered for."""
    # Its hooks run as Helm's rollback hooks (pre-rollback, post-rollback), not upgrade ones.
    options = replace(options, rollback=True)
    state, revision = await asyncio.to_thread(_read, parts, name, to)
    clusters = state.fleet.clusters
    desired = {
        cluster: DesiredState(
            app=name, cluster=cluster, objects=tuple(objects), revision=revision.digest
        )
        for cluster, objects in revision.rendered.items()
        if cluster in clusters
    }
    report = AppSyncReport(app=name)
    missing = sorted(set(revision.rendered) - set(clusters))
    if missing:
        report.warnings.append(
            f"revision {to} also targeted clusters no longer registered: {', '.join(missing)}"
        )
    try:
        desired = await restore_revision(parts, name, revision, desired)
    except AppflowError as err:
        report.blocked.append(err.located(app=name))
        return report
    releases = _helm_revisions(state, desired, to, report)
    if report.blocked:
        return report
    await _roll_back_releases(parts, report, releases, desired, clusters, revision, options)
    delivery = await validated(
        parts,
        report,
        desired,
        clusters={c: clusters[c] for c in desired},
        source_ref=revision.source_ref,
        trigger="rollback",
        options=options,
        progress=progress,
        revision=revision,
    )
    if delivery is not None:
        await deliver(parts, delivery, report, list(delivery.prepared))
    await parts.recorder.app(replace(state.app, pinned_revision=to))
    return report


async def resume_app(parts: EngineParts, name: str) -> AppRecord:
    """Unpin app NAME: syncs follow its source again (the caller syncs it)."""
    app = await asyncio.to_thread(parts.store.get_app, name)
    if app.pinned_revision is None:
        return app
    return await parts.recorder.app(replace(app, pinned_revision=None))


def _read(parts: EngineParts, name: str, to: int) -> tuple[AppState, RevisionRecord]:
    return read_app_state(parts.store, name), parts.store.get_revision(name, to)


def _helm_revisions(
    state: AppState, desired: dict[str, DesiredState], to: int, report: AppSyncReport
) -> dict[str, tuple[HelmReleaseRef, int]]:
    """Release-mode clusters: their release and the Helm revision appflow revision TO became."""
    found: dict[str, tuple[HelmReleaseRef, int]] = {}
    for cluster in desired:
        previous = state.deployments.get(cluster)
        if previous is None or previous.release is None:
            continue
        number = previous.release.helm_revision_of(to)
        if number is None:
            report.blocked.append(
                NotFoundError(
                    f"no successful sync of revision {to} recorded a Helm release revision",
                    where=Where(app=state.app.name, cluster=cluster),
                )
            )
            continue
        found[cluster] = (previous.release, number)
    return found


async def _roll_back_releases(
    parts: EngineParts,
    report: AppSyncReport,
    releases: dict[str, tuple[HelmReleaseRef, int]],
    desired: dict[str, DesiredState],
    clusters: dict[str, ClusterRecord],
    revision: RevisionRecord,
    options: SyncOptions,
) -> None:
    for_helm = {c: desired.pop(c) for c in releases}
    await run_on_clusters(
        parts,
        report,
        list(for_helm),
        revision=revision,
        trigger="rollback",
        source_ref=revision.source_ref,
        action=lambda c: release.rollback(
            parts.connections.kube(clusters[c]),
            for_helm[c],
            release=releases[c][0],
            helm_revision=releases[c][1],
            options=options,
        ),
    )

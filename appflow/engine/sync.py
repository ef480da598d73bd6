"""Sync: one AppFlow onto its target Clusters, from source to recorded status.

    source (resolved once) -> app definition -> targets (dependsOn may hold some back)
    -> per cluster: render -> prepare (read live state, dry-run)   [every target first]
    -> revision -> deliver (execute: apply, prune, health)          [only when all validated]
       all at once, or partition by partition (a rollout)

A revision that fails to render or validate on any target touches no cluster.
A cluster that cannot be reached is reported and skipped; it does not hold
back the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from appflow.engine.desired import options_for, render_desired
from appflow.engine.fanout import (
    RemoteTargets,
    deliver,
    run_on_clusters,
    unreachable,
    validated,
)
from appflow.engine.parts import EngineParts
from appflow.engine.policies import check_release_allowed, enforce_guard_rails, load_policies
from appflow.engine.report import AppSyncReport
from appflow.engine.sources import Source
from appflow.engine.stages import release
from appflow.engine.stages.types import DesiredState, Progress, SyncBlocked, SyncOptions
from appflow.engine.state import AppState, load_app_state
from appflow.errors import AppflowError, AppPinnedError, ClusterError, Where
from appflow.model.appdef import AppDefinition, SyncPolicy
from appflow.model.records import ClusterRecord, GitCommit, SyncTrigger
from appflow.model.rollout import is_progressive, plan_rollout
from appflow.model.targeting import ClusterInfo
from appflow.render.types import RenderRequest

OptionsFromPolicy = Callable[[SyncPolicy], SyncOptions]


@dataclass(frozen=True, kw_only=True)
class SyncRequest:
    """What a caller asks of one sync."""

    app: str
    clusters: Sequence[str] = ()
    """Only these clusters among the app's targets (no rollout, nothing pruned elsewhere)."""
    trigger: SyncTrigger = "user"
    actor: str = ""
    """Who asked: an API token's name, "cli"; empty for the daemon's own triggers."""
    options: SyncOptions | None = None
    options_from_policy: OptionsFromPolicy | None = None
    """Options from the app's syncPolicy plus the caller's flags (when OPTIONS is None)."""
    commit: str | None = None
    """The commit a git app syncs from, already resolved (the poller's, a webhook's)."""
    lock_timeout: float | None = None
    """Overrides the options' lock_timeout (the daemon: 0, it retries with backoff)."""
    remote: RemoteTargets | None = None
    """The app's targets someone else writes (a hub's pull clusters): validated with the
    engine's before any write, delivered in the same partition order."""


@dataclass(kw_only=True)
class _Run:
    """One sync under way: what it read, decided and found so far."""

    state: AppState
    definition: AppDefinition
    source: Source
    options: SyncOptions
    report: AppSyncReport
    targets: dict[str, ClusterRecord]
    progress: Progress


async def sync_app(
    parts: EngineParts, request: SyncRequest, *, progress: Progress
) -> AppSyncReport:
    """Render, validate and apply REQUEST.app on its targets; see the module docstring."""
    state = await load_app_state(parts.store, request.app)
    if state.app.pinned_revision is not None:
        raise pinned(request.app, state.app.pinned_revision)
    resolver = parts.resolvers.of(state.app)
    source = await resolver.fetch(state.app, state.repo, commit=request.commit, store=parts.store)
    if (
        state.repo is not None
        and isinstance(source.ref, GitCommit)
        and source.ref.commit != state.repo.last_commit
    ):
        # What `repo list` shows: the commit the repository was last fetched at.
        await parts.recorder.repo_fetched(state.repo.name, source.ref.commit)
    definition = await resolver.definition(state.app, source)
    await parts.recorder.definition_read(state.app, definition)
    policy = definition.sync_policy
    options = request.options
    if options is None and request.options_from_policy is not None:
        options = request.options_from_policy(policy)
    options = options or SyncOptions(prune=policy.prune, force_conflicts=policy.force_conflicts)
    if request.lock_timeout is not None:
        options = replace(options, lock_timeout=request.lock_timeout)
    run = _Run(
        state=state,
        definition=definition,
        source=source,
        options=options_for(definition, options),
        report=AppSyncReport(app=request.app, warnings=list(definition.warnings)),
        targets={c.name: c for c in state.fleet.targets(definition, request.clusters)},
        progress=progress,
    )
    for target in state.fleet.unmatched(definition):
        run.report.warnings.append(
            f"app {request.app}: target {target!r} matches no registered cluster"
        )
    await _hold_for_dependencies(parts, run)
    if definition.helm is not None and definition.helm.mode == "release":
        return await _sync_release(parts, run, request)
    if not run.targets and not run.report.waiting:
        run.report.warnings.append(
            f"app {request.app}: its targets match no registered cluster; nothing to sync"
        )
    desired = await _render_all(parts, run)
    if not request.clusters:
        _add_clusters_left(run, desired)
    await _deliver(parts, run, desired, request)
    return run.report


def pinned(app: str, revision: int) -> AppPinnedError:
    """Why a sync of APP, pinned to REVISION by a rollback, does not run (and what to do)."""
    return AppPinnedError(
        f"app {app} is pinned to revision {revision} by `appflow app rollback`; "
        "a sync would replace it with the source's revision",
        where=Where(app=app),
        hint=f"`appflow app resume {app}` unpins it and syncs the source's revision",
    )


async def _hold_for_dependencies(parts: EngineParts, run: _Run) -> None:
    """Clusters where a dependency is not Ready yet wait (WaitApplied); they are still
    targets, so what the app has there stays."""
    if not run.definition.depends_on:
        return
    # Imported here, like the rollout runner below: most apps need neither.
    from appflow.engine.dependencies import dependencies_of, waiting_for

    dependencies = await dependencies_of(parts, run.definition)
    timeout = run.options.wait_timeout if run.options.wait else 0.0
    for cluster in list(run.targets):
        waiting = await waiting_for(parts, run.report.app, dependencies, cluster, timeout=timeout)
        if waiting:
            run.report.waiting[cluster] = waiting
            await parts.recorder.deployment_state(run.report.app, cluster, "WaitApplied", waiting)
            del run.targets[cluster]


async def _render_all(parts: EngineParts, run: _Run) -> dict[str, DesiredState]:
    run.progress(f"{run.report.app}: rendering for {len(run.targets)} cluster(s)")
    rendered = await _render_each(parts, run)
    return {c: d for c, (_, d) in rendered.items()}


async def _render_each(
    parts: EngineParts, run: _Run, *, release: bool = False
) -> dict[str, tuple[RenderRequest, DesiredState]]:
    out: dict[str, tuple[RenderRequest, DesiredState]] = {}
    policies = await load_policies(parts.store, app=run.report.app, clusters=run.targets.values())

    async def one(cluster: ClusterRecord) -> None:
        try:
            if release:
                check_release_allowed(
                    policies[cluster.name], app=run.report.app, cluster=cluster.name
                )
            request, state = await render_desired(
                run.definition,
                run.source,
                cluster,
                groups=run.state.fleet.groups,
                connections=parts.connections,
                cache=parts.render_cache,
                secrets=parts.secrets,
                policies=policies[cluster.name],
                release=release,
            )
            if release:
                # Helm installs what it renders itself: the guard rails judge it here,
                # on every target before any install (a sync's are in prepare_all).
                kube = parts.connections.kube(cluster)
                await enforce_guard_rails(kube, state, policies[cluster.name])
            out[cluster.name] = request, state
        except SyncBlocked as err:
            run.report.blocked.extend(err.errors)
        except ClusterError as err:
            located = err.located(app=run.report.app, cluster=cluster.name)
            await unreachable(parts, run.report, cluster.name, located)
        except AppflowError as err:
            run.report.blocked.append(err.located(app=run.report.app, cluster=cluster.name))

    await asyncio.gather(*(one(c) for c in run.targets.values()))
    return out


def _add_clusters_left(run: _Run, desired: dict[str, DesiredState]) -> None:
    """Clusters the app left (no longer targeted): everything it owns there is pruned.
    A cluster waiting for a dependency is still a target: what the app has there stays."""
    for cluster in run.state.deployments:
        if cluster in run.report.waiting or cluster in run.targets:
            continue
        record = run.state.fleet.clusters.get(cluster)
        if record is not None:
            desired[cluster] = DesiredState(
                app=run.report.app, cluster=cluster, objects=(), revision=""
            )
            run.targets[cluster] = record


async def _deliver(
    parts: EngineParts, run: _Run, desired: dict[str, DesiredState], request: SyncRequest
) -> None:
    delivery = await validated(
        parts,
        run.report,
        desired,
        clusters=run.targets,
        source_ref=run.source.ref,
        trigger=request.trigger,
        options=run.options,
        progress=run.progress,
        actor=request.actor,
    )
    if delivery is None:
        return
    remote = None if request.clusters else request.remote
    if remote is not None and delivery.revision is not None:
        rejected = await remote.validate(delivery.revision)
        if rejected:
            # One fleet-wide dry run: a refusal on any target, pushed or pulled, writes nowhere.
            run.report.blocked.extend(
                AppflowError(
                    f"the dry run of revision {delivery.revision.number} was refused: {why}",
                    where=Where(app=run.report.app, cluster=cluster),
                )
                for cluster, why in sorted(rejected.items())
            )
            await parts.recorder.blocked(
                run.report.app, run.report.blocked, clusters=list(desired), trigger=request.trigger
            )
            return
    rollout = run.definition.rollout
    if not is_progressive(rollout) or request.clusters:
        await deliver(parts, delivery, run.report, list(delivery.prepared))
        if remote is not None and delivery.revision is not None:
            await remote.deliver(list(remote.labels), revision=delivery.revision.number, wait=None)
        return
    from appflow.engine.rollout import RolloutRunner

    leaving = [c for c in delivery.prepared if not desired[c].objects]
    await deliver(parts, delivery, run.report, leaving)
    members = [
        ClusterInfo(name=c, labels=run.targets[c].labels) for c in desired if desired[c].objects
    ]
    if remote is not None:
        members.extend(ClusterInfo(name=c, labels=dict(v)) for c, v in remote.labels.items())
    partitions = plan_rollout(rollout, members, run.state.fleet.groups)
    runner = RolloutRunner(
        parts,
        delivery,
        run.report,
        spec=rollout,
        partitions=partitions,
        recorded=run.state.rollout,
        previous_revisions={
            **(remote.previous if remote is not None else {}),
            **{c: d.applied_revision for c, d in run.state.deployments.items()},
        },
        remote=remote,
    )
    await runner.run()


async def _sync_release(parts: EngineParts, run: _Run, request: SyncRequest) -> AppSyncReport:
    """Helm release mode: template every target first, then helm upgrade --install each."""
    report, trigger = run.report, request.trigger
    run.progress(f"{report.app}: rendering the chart for {len(run.targets)} cluster(s)")
    rendered = await _render_each(parts, run, release=True)
    desired = {c: d for c, (_, d) in rendered.items()}
    if report.blocked:
        await parts.recorder.blocked(
            report.app, report.blocked, clusters=list(desired), trigger=trigger
        )
        return report
    revision = (
        await parts.recorder.revision(report.app, desired, source_ref=run.source.ref)
        if desired
        else None
    )
    report.revision = revision
    run.progress(f"{report.app}: helm upgrade --install on {len(desired)} cluster(s)")
    await run_on_clusters(
        parts,
        report,
        list(desired),
        revision=revision,
        trigger=trigger,
        actor=request.actor,
        source_ref=run.source.ref,
        action=lambda c: release.install_or_upgrade(
            parts.connections.kube(run.targets[c]), rendered[c][0], desired[c], options=run.options
        ),
    )
    return report

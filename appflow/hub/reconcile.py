"""What an AppFlow's owner does with it: sync, run requests, publish, aggregate.

One reconcile of one app, level-triggered (it reads the resources, never an event's payload):

1. an unfinished ``spec.syncRequest`` (``appflow sync``, ``rollback``, ``app delete`` on a hub)
   runs once, and its outcome (the engine's whole report, as content) goes to the AppFlow's
   ``status.syncRequest``, where the CLI that asked waits for it;
2. otherwise an app that syncs by itself (``syncPolicy.auto``, not paused) is synced when its
   definition, source or targets changed, and every resync;
3. its status is aggregated from its Deployments.

A sync is the engine's, over a view of the hub that holds the push-mode clusters
(``HubStore(push_only=True)``): the engine renders, validates every target, applies with its
stages through the replica's fenced connections, and records through the ``Store`` protocol.
Pull-mode targets are rendered first with the same render cache, and their renders join the
same revision (``HubRecorder``); they are staged, and released once every agent validated.
A render that fails for any target, push or pull, refuses the revision everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from appflow.engine.desired import paths_resolved_once
from appflow.engine.engine import Engine
from appflow.engine.recorder import Recorder
from appflow.engine.report import AppSyncReport
from appflow.engine.stages.types import DesiredState, SyncOptions
from appflow.engine.state import FleetState
from appflow.engine.sync import pinned
from appflow.errors import AppflowError, FencedError, NotFoundError
from appflow.hub import publish
from appflow.hub import rollback as hub_rollback
from appflow.hub.mixed import PullTargets
from appflow.hub.reports import report_data
from appflow.hub.store import HubStore
from appflow.kube.client import KubeCluster
from appflow.model import resources as res
from appflow.model.appdef import OfflinePolicy, SyncPolicy
from appflow.model.deps import held_by_dependencies, resolve_dependency_states
from appflow.model.hubstatus import app_status
from appflow.model.objects import Manifest
from appflow.model.records import (
    AppRecord,
    GitCommit,
    RevisionRecord,
    SourceRef,
    SyncTrigger,
    utc_now,
)
from appflow.model.targeting import ClusterGroup, parse_selector

log = logging.getLogger("appflow.controller")


class HubRecorder(Recorder):
    """The engine's recorder, whose revisions also hold the renders of pull-mode targets."""

    def __init__(self, store: HubStore) -> None:
        super().__init__(store)
        self.pull: dict[str, tuple[SourceRef, Mapping[str, DesiredState]]] = {}
        """Per app being synced, the source and the pull targets' renders of this sync."""

    async def revision(
        self, app: str, desired: Mapping[str, DesiredState], *, source_ref: SourceRef
    ) -> RevisionRecord:
        extra = self.pull.get(app)
        if extra is not None and extra[0] == source_ref:
            desired = {**extra[1], **desired}
        return await super().revision(app, desired, source_ref=source_ref)


def may_release(seen: Sequence[Manifest], offline: Set[str], *, policy: OfflinePolicy) -> bool:
    """Whether a fresh list of an app's Deployments could release or reject anything, judged
    from SEEN, the replica's watch of them.

    Nothing is released without a verdict (an agent's Validated or Rejected for what its
    Deployment has staged), unless Offline clusters are released or skipped without one. A
    verdict the watch has not shown yet arrives as an event that asks for a release again.
    So, when SEEN holds no verdict and no Deployment on an Offline cluster (or the policy
    waits for them), the list (a read of every Deployment of the workspace from etcd, per
    app: quadratic over a fleet) can be skipped."""
    for d in seen:
        spec, status = d.get("spec") or {}, d.get("status") or {}
        staged = spec.get("staged") or {}
        if not staged or (spec.get("released") or {}) == staged:
            continue
        if policy != "wait" and str(spec.get("cluster")) in offline:
            return True
        verdict = status.get("staged") or {}
        if verdict.get("result") in ("Validated", "Rejected") and verdict.get(
            "revision"
        ) == staged.get("revision"):
            return True
    return False


@dataclass(kw_only=True)
class Outcome:
    """What one reconcile found, for the status it writes."""

    stalled: str = ""
    reconciling: bool = False
    report: AppSyncReport | None = None


@dataclass(kw_only=True)
class Reconciler:
    """The per-app work of one controller replica."""

    engine: Engine
    """Over ``HubStore(push_only=True)``, with fenced connections and a ``HubRecorder``."""
    store: HubStore
    """The whole hub (push and pull clusters)."""
    kube: KubeCluster
    """The hub, fenced: every write of this replica goes through it."""
    identity: str
    last_commits: dict[str, str] = field(default_factory=dict)
    """Per app, the commit its last sync from a poll used (a new one makes it due)."""
    stalled: dict[str, str] = field(default_factory=dict)
    """Per app, why its last reconcile could not go on."""
    on_report: Callable[[AppSyncReport], None] | None = None
    seen: Callable[[str], list[Manifest]] | None = None
    """An app's AppFlowDeployments as the replica's watch last saw them (None: listed)."""
    seen_clusters: Callable[[], list[Manifest]] | None = None
    """The Clusters as the replica's watch last saw them (None: listed)."""
    seen_groups: Callable[[], list[Manifest] | None] | None = None
    """The ClusterGroups as the replica's watch last saw them (None, or None from it: listed)."""
    staged: dict[str, int] = field(default_factory=dict)
    """Per app being reconciled, the Deployments its sync wrote (their watch events each queue
    a status aggregate: the reconcile need not write one from a view that lacks them yet)."""

    async def release(self, app: str) -> publish.Released:
        """The release rule for APP (``publish.release``), decided on a fresh list: a watch
        that lags could hide a target that has not validated yet. The list is skipped when the
        watch shows nothing it could release or reject (``may_release``) and no rollout of the
        app is in progress (its gate moves with applies and health, not verdicts). A rollback
        on a hub stages the earlier revision and calls this."""
        record = await asyncio.to_thread(self.store.get_app, app)
        try:
            recorded = await asyncio.to_thread(self.store.get_rollout, app)
        except NotFoundError:
            recorded = None
        clusters = await self._cluster_objects()
        offline = publish.offline_clusters(clusters)
        policy = record.rollout.offline_targets
        if (
            self.seen is not None
            and not may_release(self.seen(app), offline, policy=policy)
            and (recorded is None or recorded.state != "Progressing")
        ):
            return publish.Released()
        listed = await asyncio.to_thread(
            self.store.deployment_objects, app=app, with_unreported=True
        )
        dependencies, states = await self._dependency_states(app)
        released = await publish.release(
            self.store,
            self.kube,
            app=app,
            deployments=listed,
            clusters=clusters,
            groups=await self._groups(),
            rollout=record.rollout,
            recorded=recorded,
            dependencies=dependencies,
            dependency_states=states,
        )
        return released

    async def _dependency_states(
        self, app: str
    ) -> tuple[dict[str, frozenset[str]], dict[str, dict[str, str | None]]]:
        """APP's dependencies (dependsOn, resolved over the apps' records) and, per cluster,
        each one's Deployment state there as reported (pull) or recorded (push)."""
        records = await asyncio.to_thread(self.store.list_apps)
        dependencies = resolve_dependency_states(records).get(app, {})
        states: dict[str, dict[str, str | None]] = {}
        for dep in dependencies:
            # Listed: the dependency may be another replica's app, outside this one's watch.
            listed = await asyncio.to_thread(
                self.store.deployment_objects, app=dep, with_unreported=True
            )
            for obj in listed:
                cluster = str((obj.get("spec") or {}).get("cluster"))
                state = (obj.get("status") or {}).get("state")
                states.setdefault(cluster, {})[dep] = str(state) if state else None
        return dict(dependencies), states

    def _held(self, app: str) -> Callable[[Collection[str]], Awaitable[Mapping[str, str]]]:
        """Which of some clusters dependsOn holds for APP now (``model.deps``)."""

        async def held(clusters: Collection[str]) -> Mapping[str, str]:
            dependencies, states = await self._dependency_states(app)
            return held_by_dependencies(clusters, dependencies, states)

        return held

    async def deployments(self, app: str) -> list[Manifest]:
        """APP's AppFlowDeployments, from the watch when there is one (no LIST per call)."""
        if self.seen is not None:
            return self.seen(app)
        return await asyncio.to_thread(self.store.deployment_objects, app=app, with_unreported=True)

    @property
    def recorder(self) -> HubRecorder:
        recorder = self.engine.recorder
        assert isinstance(recorder, HubRecorder)
        return recorder

    async def reconcile(
        self, app: str, trigger: SyncTrigger, *, clusters: Sequence[str] = ()
    ) -> bool:
        """Reconcile APP (a sync on CLUSTERS only: a self-heal); False when it should be tried
        again after a backoff."""
        self.staged.pop(app, None)
        try:
            obj = await asyncio.to_thread(self.store.app_object, app)
        except NotFoundError:
            self.stalled.pop(app, None)
            return True
        ok = True
        outcome = Outcome()
        try:
            request = res.pending_request(obj)
            if request is not None:
                outcome = await self._run_request(obj, request)
            else:
                record = await asyncio.to_thread(self.store.app_of, obj)
                if self._syncs(record, trigger):
                    report = await self._sync(record, trigger=trigger, clusters=clusters)
                    outcome = self._outcome(report)
                    ok = not report.retry
                else:
                    outcome.stalled = self.stalled.get(app, "")
        except FencedError:
            raise
        except AppflowError as err:
            log.warning("%s: %s", app, err)
            outcome.stalled = str(err)
            ok = not err.retryable
        self.stalled[app] = outcome.stalled
        if self.staged.pop(app, 0) and self.seen is not None:
            # The Deployments just written reach the watch a moment later, and each event
            # queues an aggregate (with this outcome): one written now, from a view without
            # them, would be written again a second later.
            return ok
        await self.aggregate(app, stalled=outcome.stalled)
        return ok

    def _syncs(self, record: AppRecord, trigger: SyncTrigger) -> bool:
        if record.paused:
            return False
        # A self-heal re-applies what drifted whatever syncPolicy.auto says, as standalone's.
        return record.policy.auto or trigger in ("user", "selfHeal")

    def _outcome(self, report: AppSyncReport) -> Outcome:
        stalled = "; ".join(str(e) for e in report.blocked)
        if report.rollout_failed:
            stalled = stalled or f"rollout failed: {report.rollout_failed}"
        if self.on_report is not None:
            self.on_report(report)
        return Outcome(stalled=stalled, report=report)

    # -- syncs ------------------------------------------------------------------------------

    async def _cluster_objects(self, *, listed: bool = False) -> list[Manifest]:
        """The hub's Clusters, as the watch saw them (LISTED, or without a watch: from the
        API server)."""
        if self.seen_clusters is not None and not listed:
            return list(self.seen_clusters())
        return await asyncio.to_thread(self.store.cluster_objects)

    async def _pull_fleet(self, *, listed: bool = False) -> FleetState | None:
        """The pull-mode clusters (None: the hub has none), their capabilities noted.

        LISTED: read the Clusters and ClusterGroups from the API server, not from the watches.
        A request's targets are what its requester wrote before asking (a ClusterGroup added a
        second before ``sync --wait``), and the watch of one kind may not have shown that when
        the watch of another brought the request; the other syncs follow the watches, whose
        events queue them again."""
        clusters = await self._cluster_objects(listed=listed)
        pull = [o for o in clusters if res.cluster_mode(o) == "pull"]
        if not pull:
            return None
        connections = self.engine.parts.connections
        if isinstance(connections, publish.HubConnections):
            for obj in pull:
                found = publish.capabilities_of(obj)
                if found is not None:
                    connections.reported[res.name_of(obj)] = found
        records = [res.cluster_record(o) for o in pull]
        groups = await self._groups(listed=listed)
        return FleetState(clusters={c.name: c for c in records}, groups=groups)

    async def _groups(self, *, listed: bool = False) -> dict[str, ClusterGroup]:
        """The workspace's ClusterGroups, as the watch saw them (LISTED, or without a watch:
        from the API server)."""
        watched = self.seen_groups() if self.seen_groups is not None and not listed else None
        if watched is not None:
            records = [res.group_record(o) for o in watched]
        else:
            records = await asyncio.to_thread(self.store.list_groups)
        return {
            g.name: ClusterGroup(name=g.name, selector=parse_selector(g.selector)) for g in records
        }

    async def _sync(
        self,
        record: AppRecord,
        *,
        trigger: SyncTrigger,
        clusters: Sequence[str] = (),
        options: SyncOptions | None = None,
        force_conflicts: bool = False,
        commit: str | None = None,
        actor: str = "",
        requested: bool = False,
    ) -> AppSyncReport:
        """Sync RECORD on its push targets (the engine) and publish it to its pull targets.
        ACTOR: who asked (the request's ``requestedBy``), kept in the sync's history.
        REQUESTED: a sync request runs it (its pull targets are listed, see ``_pull_fleet``)."""
        if record.pinned_revision is not None:
            # The engine refuses it for push clusters; a fleet of pull clusters only is not
            # the engine's, and must not get the source's revision staged over a rollback.
            raise pinned(record.name, record.pinned_revision)
        repo = (
            await asyncio.to_thread(self.store.get_repo, record.repo)
            if record.source == "git" and record.repo
            else None
        )
        if commit is None and repo is not None and trigger != "user":
            commit = repo.last_commit  # what the repository's poller found
        pull_fleet = None if clusters else await self._pull_fleet(listed=requested)
        plan = None
        if pull_fleet is not None:
            with paths_resolved_once():
                plan = await publish.render_pull(
                    self.engine.parts, record, repo, fleet=pull_fleet, commit=commit
                )
        if plan is not None and plan.blocked:
            report = AppSyncReport(app=record.name, blocked=list(plan.blocked))
            await self.recorder.blocked(
                record.name, plan.blocked, clusters=list(plan.clusters), trigger=trigger
            )
            return report
        if plan is not None:
            if isinstance(plan.source.ref, GitCommit):
                commit = plan.source.ref.commit
            self.recorder.pull[record.name] = (plan.source.ref, plan.desired)

        def from_policy(policy: SyncPolicy) -> SyncOptions:
            base = options or SyncOptions()
            return SyncOptions(
                prune=policy.prune,
                force_conflicts=force_conflicts or policy.force_conflicts,
                wait=base.wait,
                wait_timeout=base.wait_timeout,
            )

        try:
            if (
                plan is not None
                and not clusters
                and not any(res.cluster_mode(o) == "push" for o in await self._cluster_objects())
            ):
                # A fleet of pull clusters only: nothing for the engine to validate or apply
                # (and nothing of its state to read); the revision and the definition's
                # decisions are recorded as its sync would.
                report = AppSyncReport(app=record.name, warnings=list(plan.definition.warnings))
                await self.recorder.definition_read(record, plan.definition)
            else:
                report = await self.engine.sync(
                    record.name,
                    clusters=clusters,
                    trigger=trigger,
                    options_from_policy=from_policy,
                    commit=commit,
                    actor=actor,
                    # Push and pull targets: one validation, one partition order.
                    remote=None
                    if plan is None or not plan.desired or clusters
                    else await PullTargets.of(
                        store=self.store,
                        kube=self.kube,
                        plan=plan,
                        deployments=lambda: self.deployments(record.name),
                        clusters=self._cluster_objects,
                        held=self._held(record.name) if plan.definition.depends_on else None,
                    ),
                )
            if plan is not None and plan.desired and not report.blocked:
                revision = report.revision or await self.recorder.revision(
                    record.name, plan.desired, source_ref=plan.source.ref
                )
                report.revision = revision
                written = await publish.stage(
                    self.store,
                    self.kube,
                    app=record.name,
                    revision=revision,
                    plan=plan,
                    deployments=await self.deployments(record.name),
                )
                self.staged[record.name] = written
                log.info(
                    "%s: revision %d staged on %d pull cluster(s)",
                    record.name,
                    revision.number,
                    written,
                )
                released = await self.release(record.name)
                report.blocked.extend(
                    AppflowError(
                        f"{c}: the agent's dry run refused revision {revision.number}: {m}"
                    )
                    for c, m in sorted(released.rejected.items())
                )
                report.waiting.update(released.waiting)
        finally:
            self.recorder.pull.pop(record.name, None)
        return report

    async def _rollback(self, app: str, *, to: int, options: SyncOptions) -> AppSyncReport:
        """Roll APP back to revision TO: the engine on the push clusters (which pins the app),
        then TO's renders staged again for the pull clusters' agents and released by the one
        release rule."""
        pull = {
            res.name_of(o) for o in await self._cluster_objects() if res.cluster_mode(o) == "pull"
        }
        report = await self.engine.rollback(app, to=to, options=options)
        hub_rollback.only_unregistered(report, pull)
        if report.blocked or not pull:
            return report
        staged = await hub_rollback.republish(
            self.store,
            self.kube,
            app=app,
            to=to,
            pull=pull,
            deployments=await self.deployments(app),
            force_conflicts=options.force_conflicts,
        )
        if staged:
            log.info("%s: revision %d staged again on %s", app, to, ", ".join(staged))
            rejected = (await self.release(app)).rejected
            report.blocked.extend(
                AppflowError(f"{c}: the agent's dry run refused revision {to}: {m}")
                for c, m in sorted(rejected.items())
            )
        return report

    # -- requests ---------------------------------------------------------------------------

    async def _request_status(self, app: str, status: Mapping[str, Any]) -> None:
        obj = await asyncio.to_thread(self.store.app_object, app)
        await asyncio.to_thread(
            self.store.patch_status, obj, {"syncRequest": dict(status)}, conditional=False
        )

    async def acknowledge(self, app: str, request_id: str) -> None:
        """Mark APP's request REQUEST_ID Pending: it arrived while a sync of APP runs, and
        runs once that one ends. Nothing is written once the request was picked up."""
        obj = await asyncio.to_thread(self.store.app_object, app)
        if res.sync_request(obj).get("id") != request_id:
            return  # replaced meanwhile
        if res.sync_request_status(obj).get("id") == request_id:
            return  # already running or done
        await self._request_status(
            app,
            {
                "id": request_id,
                "phase": "Pending",
                "writer": self.identity,
                "message": "queued behind the sync in progress; it runs when that one ends",
            },
        )

    async def _run_request(self, obj: Mapping[str, Any], request: Mapping[str, Any]) -> Outcome:
        """Run the AppFlow's syncRequest once; its outcome goes to status.syncRequest."""
        app = res.name_of(obj)
        request_id = str(request["id"])
        await self._request_status(
            app, {"id": request_id, "phase": "Running", "writer": self.identity}
        )
        wait = bool(request.get("wait"))
        options = SyncOptions(
            force_conflicts=bool(request.get("forceConflicts")),
            wait=wait,
            wait_timeout=float(request.get("timeoutSeconds") or 300),
        )
        try:
            if request.get("uninstall"):
                report = await self.engine.uninstall(app)
            elif request.get("rollbackTo"):
                report = await self._rollback(app, to=int(request["rollbackTo"]), options=options)
            else:
                record = await asyncio.to_thread(self.store.app_of, dict(obj))
                report = await self._sync(
                    record,
                    trigger=request.get("trigger") or "user",
                    clusters=tuple(request.get("clusters") or ()),
                    options=options,
                    force_conflicts=options.force_conflicts,
                    commit=request.get("commit"),
                    actor=str(request.get("requestedBy") or ""),
                    requested=True,
                )
        except FencedError:
            raise
        except AppflowError as err:
            report = AppSyncReport(app=app, blocked=[err.located(app=app)])
        outcome = self._outcome(report)
        succeeded = report.ok and (report.ready or not wait)
        digest = await asyncio.to_thread(self.store.put_objects, [report_data(report)])
        problems = [str(e) for e in report.blocked] + [
            f"{c}: {e}" for c, e in sorted({**report.unreachable, **report.failed}.items())
        ]
        status: dict[str, Any] = {
            "id": request_id,
            "phase": "Succeeded" if succeeded else "Failed",
            "message": "; ".join(problems)[:2000]
            if problems
            else ("done" if succeeded else "not Ready"),
            "report": digest,
            "writer": self.identity,
            "finishedAt": res.stamp(utc_now()),
        }
        if report.revision is not None:
            status["revision"] = report.revision.number
        await self._request_status(app, status)
        return outcome

    # -- status -----------------------------------------------------------------------------

    async def aggregate(
        self, app: str, *, stalled: str | None = None, reconciling: bool = False
    ) -> None:
        """Write APP's aggregated status from its Deployments."""
        with contextlib.suppress(NotFoundError):
            obj = await asyncio.to_thread(self.store.app_object, app)
            deployments = await self.deployments(app)
            before = obj.get("status") or {}
            patch = app_status(
                deployments,
                before=before,
                generation=(obj.get("metadata") or {}).get("generation"),
                reconciling=reconciling,
                stalled=self.stalled.get(app, "") if stalled is None else stalled,
                now=utc_now(),
            )
            if all(before.get(k) == v for k, v in patch.items() if k != "conditions") and [
                {k: v for k, v in c.items() if k != "lastTransitionTime"}
                for c in patch["conditions"]
            ] == [
                {k: v for k, v in c.items() if k != "lastTransitionTime"}
                for c in before.get("conditions") or []
            ]:
                return
            await asyncio.to_thread(self.store.patch_status, obj, patch, conditional=False)

    async def refresh_health(self, app: str) -> None:
        """Re-assess the push Deployments of APP that are not Ready yet."""
        deployments = await asyncio.to_thread(
            self.engine.store.list_deployment_summaries, apps=[app]
        )
        for d in deployments:
            if d.state in ("NotReady", "Missing") and d.applied_revision is not None:
                try:
                    await self.engine.refresh_health(app=d.app, cluster=d.cluster)
                except FencedError:
                    raise
                except AppflowError as err:
                    log.debug("health of %s on %s: %s", d.app, d.cluster, err)

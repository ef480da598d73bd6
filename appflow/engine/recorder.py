"""The recorder: every write the engine, the daemon and the catalog make to the store.

Writes run in a worker thread (``asyncio.to_thread``): each commit waits for the disk
(``synchronous=FULL``), and a fleet sync makes hundreds of them while other clusters'
requests are in flight; on the event loop every one of them would pause every cluster's
I/O. What one cluster's finished sync records (its history entry, its Deployment, the
cluster seen Online, an event) is one transaction: one wait for the disk, not four, and
never half of it after a crash.

The sync stages never see the store: they return results, and this module turns those
into records. A different store (the hub's custom resources) gets the same records
through the same ``Store`` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import ParamSpec, TypeVar

from appflow.engine.stages.types import DesiredState, SyncResult
from appflow.errors import AppflowError, ApplyError, NotFoundError, WriteConflict
from appflow.model.appdef import AppDefinition
from appflow.model.inventory import Inventory, union
from appflow.model.objects import Manifest
from appflow.model.ownership import digest
from appflow.model.plan import Action
from appflow.model.records import (
    AppRecord,
    ClusterRecord,
    DeploymentRecord,
    DeploymentState,
    FailingObject,
    RepoRecord,
    RevisionRecord,
    RolloutRecord,
    SourceRef,
    SyncRecord,
    SyncTrigger,
    utc_now,
)
from appflow.store import Store

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("appflow.recorder")

CONFLICT_ATTEMPTS = 3
"""Tries of one recorder write whose objects other writers keep changing under it."""


class Recorder:
    """Writes records for the engine; every method runs its writes off the event loop."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def _run(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(func, *args, **kwargs)

    async def _rerun(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``_run`` for a FUNC that reads what it writes: when another writer changed an object
        between its read and its write (a hub's conditional write; a health check's verdict
        landing during a sync), it is run again from fresh reads. A record computed before
        the call (``deployment``) is not: its conflict stands, and what computed it decides
        again from what is there now."""
        attempt = 1
        while True:
            try:
                return await self._run(func, *args, **kwargs)
            except WriteConflict as err:
                if attempt == CONFLICT_ATTEMPTS:
                    raise
                attempt += 1
                log.info("%s; written again from a fresh read", err.message)

    # -- one cluster's sync -------------------------------------------------------------

    async def sync_started(
        self,
        app: str,
        cluster: str,
        *,
        revision: RevisionRecord | None,
        trigger: SyncTrigger,
        actor: str = "",
        ahead: Inventory | None = None,
    ) -> SyncRecord:
        """The sync's history entry and, when it is about to write (AHEAD: what the
        inventory must name first), the Deployment written ahead: WaitApplied at the
        revision, its mirrored inventory covering everything the sync may create. One
        transaction, before the first write to the cluster. ACTOR: who asked (SyncRecord)."""
        return await self._rerun(self._sync_started, app, cluster, revision, trigger, actor, ahead)

    def _sync_started(
        self,
        app: str,
        cluster: str,
        revision: RevisionRecord | None,
        trigger: SyncTrigger,
        actor: str,
        ahead: Inventory | None,
    ) -> SyncRecord:
        number = revision.number if revision else None
        with self.store.transaction():
            sync = self.store.start_sync(
                app, cluster, revision=number, trigger=trigger, actor=actor
            )
            if ahead is None:
                return sync
            base = self._previous(app, cluster) or DeploymentRecord(app=app, cluster=cluster)
            what = f"revision {number}" if number is not None else "the app's removal"
            since = sync.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            self.store.put_deployment(
                replace(
                    base,
                    state="WaitApplied",
                    desired_revision=number,
                    message=f"applying {what} (sync {sync.id}, since {since}); until it "
                    "completes the cluster may hold part of it",
                    inventory=union(Inventory(app, base.inventory), ahead, app=app).entries,
                )
            )
            return sync

    async def deployment_of(self, app: str, cluster: str) -> DeploymentRecord | None:
        """APP's Deployment on CLUSTER as the store has it now, or None."""
        return await self._run(self._previous, app, cluster)

    async def sync_finished(
        self,
        sync: SyncRecord,
        result: SyncResult,
        *,
        revision: RevisionRecord | None,
        source_ref: SourceRef | None,
    ) -> None:
        """History, Deployment, the cluster seen Online and an event: one transaction."""
        await self._rerun(self._sync_finished, sync, result, revision, source_ref)

    def _sync_finished(
        self,
        sync: SyncRecord,
        result: SyncResult,
        revision: RevisionRecord | None,
        source_ref: SourceRef | None,
    ) -> None:
        counts = {a.value: n for a, n in result.plan.counts().items()}
        message = _message(result) or (
            result.plan.summary() if result.plan.changes else result.health.message
        )
        with self.store.transaction():
            self._online(result.cluster)
            self.store.finish_sync(
                sync.id,
                outcome="succeeded" if result.ok else "failed",
                counts=counts,
                message=message,
                objects={c.ref.encode(): c.action.value for c in result.plan.changes},
            )
            self._deployment(result, revision)
            self._handed_over(result)
            self.store.add_event(
                kind="sync" if result.ok else "failure",
                app=result.app,
                cluster=result.cluster,
                trigger=sync.trigger,
                commit=_text(source_ref),
                outcome=result.state,
                message=message,
            )

    async def sync_failed(
        self,
        sync: SyncRecord,
        err: AppflowError,
        *,
        source_ref: SourceRef | None,
        offline: bool = False,
    ) -> None:
        """A sync that ended in an error before it had a result: one transaction.
        OFFLINE: the cluster's health probe failed too."""
        await self._rerun(self._sync_failed, sync, err, source_ref, offline)

    def _sync_failed(
        self, sync: SyncRecord, err: AppflowError, source_ref: SourceRef | None, offline: bool
    ) -> None:
        with self.store.transaction():
            self.store.finish_sync(sync.id, outcome="failed", message=str(err))
            self.store.add_event(
                kind="failure",
                app=sync.app,
                cluster=sync.cluster,
                trigger=sync.trigger,
                message=str(err),
                outcome="failed",
                commit=_text(source_ref),
            )
            self._cluster_failed(sync.app, sync.cluster, err, offline=offline)

    async def cluster_failed(
        self, app: str, cluster: str, err: AppflowError, *, offline: bool = False
    ) -> None:
        """ERR stopped APP on CLUSTER before a sync started there (reading, rendering);
        OFFLINE: the cluster's health probe failed too. With an event."""

        def write() -> None:
            with self.store.transaction():
                self._cluster_failed(app, cluster, err, offline=offline)
                self.store.add_event(
                    kind="failure",
                    app=app,
                    cluster=cluster,
                    outcome="unreachable" if offline else "failed",
                    message=str(err),
                )

        await self._rerun(write)

    def _cluster_failed(
        self, app: str, cluster: str, err: AppflowError, *, offline: bool = False
    ) -> None:
        # Only the cluster's own health probe makes it Offline (its Deployments
        # Unknown); any other error is the Deployment's: ErrApplied. A Deployment
        # written ahead as WaitApplied keeps saying so: part of a revision may be on
        # the cluster, and only a completed sync ends that.
        if offline:
            record = self.store.get_cluster(cluster)
            if record.state != "Offline" or record.state_reason != err.message:
                self.store.put_cluster(replace(record, state="Offline", state_reason=err.message))
        previous = self._previous(app, cluster)
        base = previous or DeploymentRecord(app=app, cluster=cluster)
        state: DeploymentState = "Unknown" if offline else "ErrApplied"
        if base.state == "WaitApplied":
            state = "WaitApplied"
        with contextlib.suppress(NotFoundError):
            self.store.put_deployment(replace(base, state=state, message=str(err)))

    def _previous(self, app: str, cluster: str) -> DeploymentRecord | None:
        try:
            return self.store.get_deployment(app, cluster)
        except NotFoundError:
            return None

    def _online(self, cluster: str) -> None:
        record = self.store.get_cluster(cluster)
        if record.state != "Online":
            self.store.put_cluster(
                replace(record, state="Online", state_reason="", last_seen=utc_now())
            )

    def _handed_over(self, result: SyncResult) -> None:
        """The apps RESULT's sync took objects from no longer own them on its cluster:
        their Deployments' inventory mirrors and fingerprints lose them, in the same
        transaction as the new owner's Deployment."""
        for owner, refs in result.taken_from.items():
            previous = self._previous(owner, result.cluster)
            if previous is None:
                continue
            gone = set(refs)
            encoded = {r.encode() for r in refs}
            self.store.put_deployment(
                replace(
                    previous,
                    inventory=tuple(e for e in previous.inventory if e.ref not in gone),
                    applied={k: v for k, v in previous.applied.items() if k not in encoded},
                )
            )
            self.store.add_event(
                kind="ownership",
                app=owner,
                cluster=result.cluster,
                outcome="taken",
                message=f"app {result.app} took over " + ", ".join(str(r) for r in sorted(refs)),
            )

    def _deployment(self, result: SyncResult, revision: RevisionRecord | None) -> None:
        # Prunes and kept objects are what left the desired state; anything else is desired.
        left = (Action.PRUNE, Action.KEEP, Action.SKIP)
        desired = any(c.action not in left for c in result.plan.changes)
        # An app of hooks alone owns no object, but must remember that its hooks ran.
        owned = bool(
            result.inventory.entries or result.fingerprints or result.release or result.hook_record
        )
        if result.ok and not owned and not desired:
            # Nothing owned and nothing desired: the app left this cluster.
            with contextlib.suppress(NotFoundError):
                self.store.delete_deployment(result.app, result.cluster)
            return
        release = result.release
        if release is not None and result.ok:
            previous = self._previous(result.app, result.cluster)
            known = previous.release if previous and previous.release else release
            release = known.recorded(
                revision=revision.number if revision else None, helm_revision=release.revision
            )
        self.store.put_deployment(
            DeploymentRecord(
                app=result.app,
                cluster=result.cluster,
                desired_revision=revision.number if revision else None,
                applied_revision=revision.number if revision and result.ok else None,
                state=result.state,
                message=_message(result) or result.health.message,
                inventory=result.inventory.entries,
                applied=result.fingerprints,
                release=release,
                hooks=result.hook_record,
                resource_counts=result.resource_counts,
                failing=result.failing,
            )
        )

    # -- around syncs -----------------------------------------------------------------------

    async def blocked(
        self,
        app: str,
        errors: Sequence[AppflowError],
        *,
        clusters: Sequence[str],
        trigger: SyncTrigger,
    ) -> None:
        """A sync refused before any write: one failure event per cluster concerned."""
        message = "; ".join(str(e) for e in errors)
        # A render that failed leaves no desired state: the errors still name their
        # clusters, so `appflow events --cluster` finds them.
        named = sorted({e.where.cluster for e in errors if e.where.cluster})
        targets: list[str | None] = [*clusters] or [*named] or [None]

        def write() -> None:
            with self.store.transaction():
                for cluster in targets:
                    self.store.add_event(
                        kind="failure",
                        app=app,
                        cluster=cluster,
                        trigger=trigger,
                        outcome="blocked",
                        message=message,
                    )
                self._refused(app, errors)

        await self._rerun(write)

    def _refused(self, app: str, errors: Sequence[AppflowError]) -> None:
        """Objects the API server refused make their Deployment ErrApplied, with the
        reason per object; what the cluster holds is unchanged (nothing was written)."""
        by_cluster: dict[str, list[AppflowError]] = {}
        for err in errors:
            if isinstance(err, ApplyError) and err.where.cluster and err.where.object:
                by_cluster.setdefault(err.where.cluster, []).append(err)
        for cluster, refused in by_cluster.items():
            base = self._previous(app, cluster) or DeploymentRecord(app=app, cluster=cluster)
            failing = tuple(
                FailingObject(object=str(e.where.object), message=e.message) for e in refused
            )
            with contextlib.suppress(NotFoundError):
                self.store.put_deployment(
                    replace(
                        base,
                        state="ErrApplied",
                        message="; ".join(str(e) for e in refused),
                        failing=failing,
                    )
                )

    async def deployment_state(
        self, app: str, cluster: str, state: DeploymentState, message: str
    ) -> None:
        """Set the state of APP on CLUSTER (created when the app is not deployed there yet)."""

        def write() -> None:
            previous = self._previous(app, cluster)
            base = previous or DeploymentRecord(app=app, cluster=cluster)
            if (base.state, base.message) != (state, message):
                self.store.put_deployment(replace(base, state=state, message=message))

        await self._rerun(write)

    async def deployment(self, record: DeploymentRecord) -> DeploymentRecord:
        return await self._run(self.store.put_deployment, record)

    async def revision(
        self, app: str, desired: Mapping[str, DesiredState], *, source_ref: SourceRef
    ) -> RevisionRecord:
        """The revision DESIRED belongs to: new, or the latest when nothing changed.

        Its digest covers the distinct rendered contents, not which clusters got
        them, so syncing a subset of clusters to the same content is not a new
        revision; the renders of clusters not synced now are carried over.
        """
        return await self._rerun(self._revision, app, desired, source_ref)

    def _revision(
        self, app: str, desired: Mapping[str, DesiredState], source_ref: SourceRef
    ) -> RevisionRecord:
        contents = sorted({d.revision for d in desired.values() if d.objects})
        wanted = digest([str(source_ref), contents])
        latest = self.store.latest_revision(app, with_rendered=False)
        if latest is not None and latest.digest == wanted:
            # The common case of a re-sync: nothing new, and the stored renders
            # (hundreds of objects to decompress and parse) are not read.
            return latest
        rendered: dict[str, list[Manifest]] = {}
        if latest is not None and latest.source_ref == source_ref:
            rendered.update(self.store.get_revision(app, latest.number).rendered)
        # What the store keeps: secret values redacted (see engine.secrets).
        rendered.update({c: list(d.recorded) for c, d in desired.items() if d.objects})
        return self.store.add_revision(app, digest=wanted, source_ref=source_ref, rendered=rendered)

    async def definition_read(self, app: AppRecord, definition: AppDefinition) -> AppRecord:
        """Keep what the definition says that decisions without its source need: the
        daemon reads the policy, dependency checks the labels and dependsOn."""
        wanted = replace(
            app,
            policy=definition.sync_policy,
            labels=dict(definition.labels),
            depends_on=definition.depends_on,
            rollout=definition.rollout,
        )
        if wanted == app:
            return app
        return await self._run(self.store.put_app, wanted)

    async def app(self, record: AppRecord) -> AppRecord:
        return await self._run(self.store.put_app, record)

    async def forget_app(self, name: str) -> None:
        def write() -> None:
            with contextlib.suppress(NotFoundError):
                self.store.delete_app(name, with_deployments=True)

        await self._run(write)

    async def rollout(self, record: RolloutRecord) -> RolloutRecord:
        """Record RECORD; when the stored rollout was paused meanwhile, it stays Paused
        (a user's `rollout pause` is never overwritten by a running sync)."""
        return await self._rerun(self._rollout, record)

    def _rollout(self, record: RolloutRecord) -> RolloutRecord:
        with self.store.transaction():
            try:
                stored = self.store.get_rollout(record.app)
            except NotFoundError:
                stored = None
            if stored is not None and stored.state == "Paused" and record.state == "Progressing":
                # Where the rollout got to is recorded; that it is paused stays.
                record = replace(record, state="Paused", message=stored.message)
            return self.store.put_rollout(record)

    # -- blocking, for callers that are never on an event loop ---------------------------
    # The CLI's commands and the API's synchronous routes (run in worker threads) change
    # a record a user acted on; they call these directly.

    def change_rollout(
        self, app: str, change: Callable[[RolloutRecord], RolloutRecord]
    ) -> RolloutRecord:
        """APP's rollout as CHANGE makes it from the stored one, read and written in one
        transaction (a user's pause or resume: a running sync's write cannot slip between)."""
        with self.store.transaction():
            return self.store.put_rollout(change(self.store.get_rollout(app)))

    def cluster_removed(self, name: str, *, with_deployments: bool) -> None:
        """Cluster NAME is no longer registered (with its Deployments, when told)."""
        self.store.delete_cluster(name, with_deployments=with_deployments)

    async def repo_registered(self, repo: RepoRecord, apps: Sequence[AppRecord]) -> None:
        """REPO and the apps found in it, together (an app from git names its repository)."""

        def write() -> None:
            with self.store.transaction():
                self.store.put_repo(repo)
                for app in apps:
                    self.store.put_app(app)

        await self._run(write)

    async def repo_fetched(self, repo: str, commit: str) -> None:
        """Repository REPO was just fetched at COMMIT (what `repo list` shows)."""
        await self._run(self.store.record_fetch, repo, commit=commit)

    async def recover_interrupted(self) -> list[SyncRecord]:
        """Mark syncs a dead process left running as interrupted (with an event each)."""
        return await self._run(self.store.recover_interrupted)

    async def cluster(self, record: ClusterRecord) -> ClusterRecord:
        return await self._run(self.store.put_cluster, record)

    async def event(
        self,
        *,
        kind: str,
        message: str,
        app: str | None = None,
        cluster: str | None = None,
        trigger: str | None = None,
        commit: str | None = None,
        outcome: str | None = None,
    ) -> None:
        await self._run(
            self.store.add_event,
            kind=kind,
            message=message,
            app=app,
            cluster=cluster,
            trigger=trigger,
            commit=commit,
            outcome=outcome,
        )


def _message(result: SyncResult) -> str:
    """A failed sync's errors, and what it had written before (the cluster changed)."""
    text = "; ".join(str(e) for e in result.errors)
    if text and result.partial:
        text += f" ({result.partial})"
    return text


def _text(source_ref: SourceRef | None) -> str | None:
    return None if source_ref is None else str(source_ref)

"""The engine: one AppFlow onto its target Clusters, from source to recorded status.

    source (git checkout or local folder) -> app definition -> per cluster:
    render -> prepare (read live state, dry-run)    [every target, before any write]
           -> execute (apply, prune, health)        [only when every target validated]
    -> revision, deployment records, sync history and events in the store.

A revision that fails to render or validate on any target touches no cluster.
A cluster that cannot be reached is reported and skipped; it does not hold
back the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from appflow.engine import release
from appflow.engine.deployment import (
    DesiredState,
    Prepared,
    SyncBlocked,
    SyncOptions,
    SyncResult,
    assess_health,
    assess_objects,
    delete_inventory,
    execute,
    prepare,
)
from appflow.engine.desired import (
    options_for,
    read_values_from,
    render_request,
    values_from_refs,
)
from appflow.engine.release import HELM_REVISION
from appflow.engine.secrets import SecretsStage, restore_revision
from appflow.errors import AppflowError, ClusterError, ConfigError, NotFoundError, Where
from appflow.kube.client import Connection, KubeCluster
from appflow.model.appdef import AppDefinition, RolloutSpec, SyncPolicy
from appflow.model.capabilities import Capabilities
from appflow.model.deps import resolve_dependency_states
from appflow.model.health import HealthStatus
from appflow.model.inventory import Inventory
from appflow.model.objects import ANNOTATION_PRUNE, Manifest
from appflow.model.ownership import digest
from appflow.model.plan import Action, Plan
from appflow.model.records import (
    AppRecord,
    ClusterRecord,
    DeploymentRecord,
    DeploymentState,
    RevisionRecord,
    RolloutPartitionRecord,
    RolloutRecord,
    RolloutState,
    SyncTrigger,
    utc_now,
)
from appflow.model.rollout import (
    Partition,
    is_progressive,
    partitions_allowed_to_fail,
    plan_rollout,
)
from appflow.model.targeting import (
    ClusterGroup,
    ClusterInfo,
    parse_selector,
    select_clusters,
    unmatched_targets,
)
from appflow.render import render
from appflow.render.cache import RenderCache
from appflow.render.types import RenderRequest
from appflow.sources.appdef import load_app_definitions
from appflow.sources.folders import folder_digest
from appflow.store import Store

if TYPE_CHECKING:
    from appflow.sources import git

# Git sources (pygit2) and the catalog (jsonschema, httpx, helm) are imported
# where an app needs them: a fresh `appflow sync` of a folder of YAML would
# otherwise spend a third of its time importing what it never uses.

Progress = Callable[[str], None]
_NOT_DISCOVERED = Capabilities(kube_version="")
"""Stands in for the capabilities of renders that do not use them."""


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    cluster_concurrency: int = 8
    """Clusters worked on at once."""
    request_timeout: float = 10.0
    """Seconds one API request may take before its cluster counts as unreachable."""
    requests_per_cluster: int = 16
    """Parallel API requests to one cluster."""


@dataclass(frozen=True, kw_only=True)
class Source:
    """An app's source as a local folder, and what identifies its content."""

    root: Path
    digest: str
    ref: str
    """The commit, or 'local:<digest>' for a folder that is not from git."""


@dataclass(kw_only=True)
class AppSyncReport:
    """What one sync of an app across its targets did."""

    app: str
    revision: RevisionRecord | None = None
    """The revision synced (its ``rendered`` may be left empty when it is not new)."""
    results: list[SyncResult] = field(default_factory=list, repr=False)
    """Left out of repr: asyncio.run's SIGINT handling formats the finished task's
    result, and thousands of planned changes took a no-op sync 20 ms to print."""
    unreachable: dict[str, AppflowError] = field(default_factory=dict)
    blocked: list[AppflowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    """Clusters skipped because a dependency is not Ready there, and why."""
    rollout_failed: str = ""
    rolled_back: list[SyncResult] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return (
            not self.blocked
            and not self.unreachable
            and not self.rollout_failed
            and all(r.ok for r in self.results)
        )

    @property
    def ready(self) -> bool:
        return self.ok and not self.waiting and all(r.state == "Ready" for r in self.results)


class Engine:
    """Syncs AppFlows to Clusters, using the store for what it knows and remembers."""

    def __init__(
        self,
        store: Store,
        *,
        options: EngineOptions | None = None,
        render_cache: RenderCache | None = None,
    ) -> None:
        self.store = store
        self.options = options or EngineOptions()
        self.render_cache = render_cache or RenderCache()
        self.secrets = SecretsStage()
        self._kubes: dict[str, KubeCluster] = {}
        self._capabilities: dict[str, Capabilities] = {}
        # repo -> the commit refresh_repo last worked out due apps for. Kept here, not in
        # the store: a sync records the commit it fetched too, and must not hide a push's
        # other apps from the next poll.
        self._polled_commits: dict[str, str] = {}

    def kube(self, cluster: ClusterRecord) -> KubeCluster:
        current = self._kubes.get(cluster.name)
        if current is None or str(current.connection.kubeconfig) != cluster.kubeconfig_path:
            if not cluster.kubeconfig_path:
                raise ConfigError(
                    "has no kubeconfig",
                    where=Where(cluster=cluster.name),
                    hint="appflow cluster add",
                )
            current = KubeCluster(
                Connection(
                    name=cluster.name,
                    kubeconfig=Path(cluster.kubeconfig_path),
                    context=cluster.context,
                    timeout=self.options.request_timeout,
                    concurrency=self.options.requests_per_cluster,
                )
            )
            self._kubes[cluster.name] = current
        return current

    def close(self) -> None:
        for kube in self._kubes.values():
            kube.close()
        self._kubes.clear()

    # -- sources and definitions -------------------------------------------

    async def source(self, app: AppRecord) -> Source:
        if app.source == "local":
            if not app.local_path:
                raise ConfigError("a local app needs a folder", where=Where(app=app.name))
            root = Path(app.local_path)
            if not root.is_dir():
                raise ConfigError(
                    f"the folder {root} does not exist",
                    where=Where(app=app.name),
                    hint="appflow app add NAME --local DIR",
                )
            app_dir = root / app.path if app.path else root
            content = await asyncio.to_thread(folder_digest, app_dir)
            return Source(
                root=root, digest=f"local:{app.path}:{content}", ref=f"local:{content[:12]}"
            )
        if app.source == "git":
            if not app.repo:
                raise ConfigError("a git app needs a repository", where=Where(app=app.name))
            from appflow.sources import git

            repo = self.store.get_repo(app.repo)
            spec = git.GitSource(url=repo.url, ref=_ref_spec(repo.ref))
            fetched = await git.fetch(spec)
            if fetched.commit != repo.last_commit:
                await asyncio.to_thread(self.store.record_fetch, repo.name, commit=fetched.commit)
            root = await git.checkout(spec, fetched.commit)
            return Source(root=root, digest=f"git:{fetched.commit}:{app.path}", ref=fetched.commit)
        if app.source == "catalog":
            from appflow.engine import catalog

            root, content, ref = await catalog.catalog_source(app)
            return Source(root=root, digest=content, ref=ref)
        raise ConfigError(
            f"source kind {app.source!r} is not supported here", where=Where(app=app.name)
        )

    async def definition(self, app: AppRecord, source: Source) -> AppDefinition:
        if app.source == "catalog":
            from appflow.engine import catalog

            return catalog.catalog_definition(app)
        try:
            found = await asyncio.to_thread(
                load_app_definitions, source.root, paths=(app.path or "",)
            )
        except AppflowError as err:
            # A broken appflow.yaml is the app's problem: say which app.
            err.located(app=app.name)
            raise
        for definition in found:
            if definition.path == (app.path or "").strip("/"):
                # The registered name wins over the folder's default name.
                return _renamed(definition, app.name)
        raise ConfigError(
            f"no app definition found in folder {app.path or '.'!r} of {source.root}",
            where=Where(app=app.name),
            hint="the folder needs an appflow.yaml, a fleet.yaml, a Chart.yaml, a kustomization.yaml or manifests",
        )

    def _remember_policy(self, app: AppRecord, definition: AppDefinition) -> None:
        """Keep the app's sync policy in the store: the daemon reads it to decide self-heal."""
        policy = definition.sync_policy
        wanted = {
            "syncPolicy": {
                "auto": policy.auto,
                "prune": policy.prune,
                "selfHeal": policy.self_heal,
                "forceConflicts": policy.force_conflicts,
            },
            "namespace": definition.namespace,
            "kind": definition.kind,
        }
        if "catalog" in app.definition:
            # A catalog install's record is its definition: keep it.
            wanted["catalog"] = app.definition["catalog"]
        if app.definition != wanted:
            self.store.put_app(replace(app, definition=wanted))

    async def refresh_repo(self, name: str) -> list[str]:
        """Look at repository NAME's remote ref; return the apps a new commit touches.

        No fetch happens when the ref has not moved since the last call. Apps are due when their
        folder changed between the commit they were last synced from and the
        new one (or when they were never synced).
        """
        from appflow.sources import git

        repo = self.store.get_repo(name)
        spec = git.GitSource(url=repo.url, ref=_ref_spec(repo.ref))
        resolved = await git.resolve(spec)
        if resolved.commit == self._polled_commits.get(name):
            return []
        fetched = await git.fetch(spec)
        commit = fetched.commit
        due: list[str] = []
        for app in self.store.list_apps():
            if app.repo != name or app.source != "git":
                continue
            latest = self.store.latest_revision(app.name)
            old = latest.source_ref if latest is not None else None
            if old is None or len(old) not in (40, 64):
                due.append(app.name)
                continue
            if old == commit:
                continue
            changed = await git.changed_paths(repo.url, old, commit)
            prefix = (app.path.strip("/") + "/") if app.path else ""
            if any(p.startswith(prefix) for p in changed):
                due.append(app.name)
        self.store.record_fetch(name, commit=commit)
        self._polled_commits[name] = commit
        return due

    # -- targets --------------------------------------------------------------

    def groups(self) -> dict[str, ClusterGroup]:
        return {
            g.name: ClusterGroup(name=g.name, selector=parse_selector(g.selector))
            for g in self.store.list_groups()
        }

    def targets(self, definition: AppDefinition, only: Sequence[str] = ()) -> list[ClusterRecord]:
        records = {c.name: c for c in self.store.list_clusters()}
        for name in only:
            if name not in records:
                raise NotFoundError(f"no cluster named {name!r}", hint="see `appflow cluster list`")
        infos = [ClusterInfo(name=c.name, labels=c.labels) for c in records.values()]
        chosen = select_clusters(definition, infos, self.groups())
        names = [c.name for c in chosen if not only or c.name in only]
        return [records[n] for n in names]

    async def capabilities(self, cluster: ClusterRecord) -> Capabilities:
        known = self._capabilities.get(cluster.name)
        if known is None:
            known = await self.kube(cluster).capabilities()
            self._capabilities[cluster.name] = known
        return known

    async def request_for(
        self, definition: AppDefinition, source: Source, cluster: ClusterRecord
    ) -> RenderRequest:
        # Only helm renders use the cluster's capabilities (.Capabilities, and the
        # render cache's key); plain YAML and kustomize do not wait for discovery.
        capabilities = (
            await self.capabilities(cluster) if definition.kind == "helm" else _NOT_DISCOVERED
        )
        info = ClusterInfo(name=cluster.name, labels=cluster.labels)
        groups = self.groups()
        refs, namespace = values_from_refs(definition, info, groups)
        return render_request(
            definition,
            repo_root=source.root,
            source_digest=source.digest,
            cluster=info,
            groups=groups,
            capabilities=capabilities,
            kubeconfig=Path(cluster.kubeconfig_path) if cluster.kubeconfig_path else None,
            values_from=await read_values_from(
                self.kube(cluster),
                refs,
                namespace=namespace,
                app=definition.name,
                cluster=cluster.name,
                file=definition.definition_file,
            )
            if refs
            else (),
        )

    async def desired(
        self, definition: AppDefinition, source: Source, cluster: ClusterRecord
    ) -> DesiredState:
        request = await self.request_for(definition, source, cluster)
        # Secret inputs decrypted for this cluster (engine.secrets); renders of plaintext skip the cache.
        opened = await self.secrets.open(definition, request, cluster=cluster, groups=self.groups())
        rendered = await render(
            opened.request, cache=self.render_cache if opened.cacheable else None
        )
        revealed = await self.secrets.reveal(opened, rendered.objects, definition=definition)
        objects = with_app_namespace(
            revealed,
            request.namespace,
            labels=definition.namespace_labels,
            annotations=definition.namespace_annotations,
        )
        revision = (
            rendered.revision
            if objects == rendered.objects
            else digest([rendered.revision, request.namespace])
        )
        return DesiredState(
            app=definition.name,
            cluster=cluster.name,
            objects=objects,
            revision=opened.revision(objects, revision),
            redactor=opened.redactor,
        )

    # -- sync -------------------------------------------------------------------

    def _previous(self, app: str, cluster: str) -> DeploymentRecord | None:
        try:
            return self.store.get_deployment(app, cluster)
        except NotFoundError:
            return None

    async def _prepare_all(
        self,
        desired: dict[str, DesiredState],
        clusters: dict[str, ClusterRecord],
        options: SyncOptions,
        report: AppSyncReport,
    ) -> dict[str, Prepared]:
        limit = asyncio.Semaphore(self.options.cluster_concurrency)
        prepared: dict[str, Prepared] = {}

        async def one(name: str) -> None:
            async with limit:
                previous = self._previous(desired[name].app, name)
                try:
                    prepared[name] = await prepare(
                        self.kube(clusters[name]),
                        desired[name],
                        previous_inventory=Inventory.from_lines(
                            desired[name].app, previous.inventory
                        )
                        if previous
                        else None,
                        fingerprints=dict(previous.applied) if previous else {},
                        options=options,
                    )
                except ClusterError as err:
                    report.unreachable[name] = err.located(app=desired[name].app, cluster=name)
                except SyncBlocked as err:
                    report.blocked.extend(err.errors)
                except AppflowError as err:
                    report.blocked.append(err.located(app=desired[name].app, cluster=name))

        await asyncio.gather(*(one(n) for n in desired))
        return prepared

    async def sync(
        self,
        name: str,
        *,
        clusters: Sequence[str] = (),
        trigger: SyncTrigger = "user",
        options: SyncOptions | None = None,
        options_from_policy: Callable[[SyncPolicy], SyncOptions] | None = None,
        progress: Progress = lambda _: None,
    ) -> AppSyncReport:
        """Render, validate and apply app NAME on its targets (or the named CLUSTERS among them).

        Without OPTIONS, the app's syncPolicy decides them, through
        OPTIONS_FROM_POLICY when given (for flags that add to the policy: the
        caller need not load the app's definition a second time to read it).
        """
        app = self.store.get_app(name)
        source = await self.source(app)
        definition = await self.definition(app, source)
        policy = definition.sync_policy
        self._remember_policy(app, definition)
        if options is None and options_from_policy is not None:
            options = options_from_policy(policy)
        options = options or SyncOptions(prune=policy.prune, force_conflicts=policy.force_conflicts)
        options = options_for(definition, options)
        report = AppSyncReport(app=name, warnings=list(definition.warnings))
        targets = {c.name: c for c in self.targets(definition, clusters)}
        infos = [ClusterInfo(name=c.name, labels=c.labels) for c in self.store.list_clusters()]
        for target in unmatched_targets(definition, infos, self.groups()):
            report.warnings.append(f"app {name}: target {target!r} matches no registered cluster")
        if definition.depends_on:
            dependencies = await self._dependencies(definition)
            for cluster in list(targets):
                waiting = await self._wait_for_dependencies(name, dependencies, cluster, options)
                if waiting:
                    report.waiting[cluster] = waiting
                    self._record_waiting(name, cluster, waiting)
                    del targets[cluster]
        if definition.helm is not None and definition.helm.mode == "release":
            return await self._sync_release(
                report, definition, source, targets, trigger, options, progress
            )
        if not targets and not report.waiting:
            report.warnings.append(
                f"app {name}: its targets match no registered cluster; nothing to sync"
            )
        progress(f"{name}: rendering for {len(targets)} cluster(s)")
        desired: dict[str, DesiredState] = {}

        async def render_one(cluster: ClusterRecord) -> None:
            try:
                desired[cluster.name] = await self.desired(definition, source, cluster)
            except ClusterError as err:
                report.unreachable[cluster.name] = err.located(app=name, cluster=cluster.name)
            except AppflowError as err:
                report.blocked.append(err.located(app=name, cluster=cluster.name))

        await asyncio.gather(*(render_one(c) for c in targets.values()))
        # Clusters the app left (no longer targeted): everything it owns there is pruned.
        # A cluster waiting for a dependency is still a target: what the app has there stays.
        if not clusters:
            for record in self.store.list_deployments(app=name):
                if record.cluster in report.waiting:
                    continue
                if record.cluster not in targets and record.cluster in {
                    c.name for c in self.store.list_clusters()
                }:
                    desired[record.cluster] = DesiredState(
                        app=name, cluster=record.cluster, objects=(), revision=""
                    )
                    targets[record.cluster] = self.store.get_cluster(record.cluster)
        partitions = None
        if is_progressive(definition.rollout) and not clusters:
            partitions = plan_rollout(
                definition.rollout,
                [
                    ClusterInfo(name=c, labels=targets[c].labels)
                    for c in desired
                    if desired[c].objects
                ],
                self.groups(),
            )
        return await self._apply(
            report,
            desired,
            targets,
            source.ref,
            trigger,
            options,
            progress,
            rollout=(definition.rollout, partitions) if partitions else None,
        )

    async def _apply(
        self,
        report: AppSyncReport,
        desired: dict[str, DesiredState],
        targets: dict[str, ClusterRecord],
        source_ref: str,
        trigger: SyncTrigger,
        options: SyncOptions,
        progress: Progress,
        revision: RevisionRecord | None = None,
        rollout: tuple[RolloutSpec, list[Partition]] | None = None,
    ) -> AppSyncReport:
        name = report.app
        prepared: dict[str, Prepared] = {}
        if not report.blocked:
            progress(f"{name}: validating on {len(desired)} cluster(s) (server-side dry run)")
            prepared = await self._prepare_all(desired, targets, options, report)
        if report.blocked:
            self._record_blocked(report, desired, trigger)
            return report
        if revision is None and any(d.objects for d in desired.values()):
            revision = await asyncio.to_thread(self._revision, name, desired, source_ref)
        report.revision = revision
        previous_revisions = {
            c: (p.applied_revision if (p := self._previous(name, c)) else None) for c in prepared
        }
        if rollout is None:
            await self._run_on_clusters(
                report,
                list(prepared),
                revision=revision,
                trigger=trigger,
                source_ref=source_ref,
                action=lambda c: execute(
                    self.kube(targets[c]), prepared[c], options=options, progress=progress
                ),
            )
        else:
            spec, partitions = rollout
            empty = [c for c in prepared if not desired[c].objects]
            await self._run_on_clusters(
                report,
                empty,
                revision=revision,
                trigger=trigger,
                source_ref=source_ref,
                action=lambda c: execute(
                    self.kube(targets[c]), prepared[c], options=options, progress=progress
                ),
            )
            await self._roll_out(
                report,
                spec,
                partitions,
                prepared,
                targets,
                revision=revision,
                trigger=trigger,
                source_ref=source_ref,
                options=options,
                progress=progress,
                previous_revisions=previous_revisions,
            )
        for cluster, err in report.unreachable.items():
            self._record_unreachable(name, cluster, err)
        report.results.sort(key=lambda r: r.cluster)
        return report

    async def _roll_out(
        self,
        report: AppSyncReport,
        spec: RolloutSpec,
        partitions: list[Partition],
        prepared: dict[str, Prepared],
        targets: dict[str, ClusterRecord],
        *,
        revision: RevisionRecord | None,
        trigger: SyncTrigger,
        source_ref: str,
        options: SyncOptions,
        progress: Progress,
        previous_revisions: dict[str, int | None],
        start: int = 0,
    ) -> None:
        """Deliver partition after partition, each batch gated on health.

        A batch whose clusters do not all become Ready within the health timeout
        fails the rollout: later clusters keep their revision, and with
        autoRollback the failed clusters return to their last Ready revision.
        Unreachable clusters do not fail the gate: they keep their revision and
        converge when they come back.
        """
        name = report.app
        gate = replace(
            options,
            wait=True,
            wait_timeout=float(spec.health_timeout_seconds or options.wait_timeout),
        )
        records = [
            RolloutPartitionRecord(
                name=p.name, clusters=p.clusters, max_unavailable=p.max_unavailable
            )
            for p in partitions
        ]
        state = RolloutRecord(
            app=name,
            revision=revision.number if revision else None,
            state="Progressing",
            partitions=tuple(records),
            current=start,
        )
        self.store.put_rollout(state)
        allowed = partitions_allowed_to_fail(spec, len(partitions))
        tolerated: list[str] = []
        for index in range(start, len(partitions)):
            partition = partitions[index]
            records[index] = replace(records[index], state="Progressing")
            state = self.store.put_rollout(replace(state, partitions=tuple(records), current=index))
            for batch in partition.batches():
                if self.store.get_rollout(name).state == "Paused":
                    report.warnings.append(
                        f"rollout of {name} is paused before partition {partition.name!r}"
                    )
                    return
                batch = tuple(c for c in batch if c in prepared)
                progress(f"{name}: rolling out to {', '.join(batch)} (partition {partition.name})")
                await self._run_on_clusters(
                    report,
                    batch,
                    revision=revision,
                    trigger=trigger,
                    source_ref=source_ref,
                    action=lambda c: execute(
                        self.kube(targets[c]), prepared[c], options=gate, progress=progress
                    ),
                )
                failed = {
                    r.cluster: r.failing[0].message if r.failing else r.state
                    for r in report.results
                    if r.cluster in batch and r.state != "Ready"
                }
                if failed and len(tolerated) < allowed:
                    # maxUnavailablePartitions: this partition stops, the rollout goes on.
                    detail = "; ".join(f"{c}: {why}" for c, why in sorted(failed.items()))
                    records[index] = replace(records[index], state="Failed", message=detail)
                    tolerated.append(f"partition {partition.name!r} did not become Ready: {detail}")
                    report.warnings.append(
                        f"{tolerated[-1]}; the rollout goes on "
                        f"(maxUnavailablePartitions allows {allowed})"
                    )
                    break
                if failed:
                    detail = "; ".join(f"{c}: {why}" for c, why in sorted(failed.items()))
                    records[index] = replace(records[index], state="Failed", message=detail)
                    message = f"partition {partition.name!r} did not become Ready: {detail}"
                    report.rollout_failed = message
                    final: RolloutState = "Failed"
                    if spec.auto_rollback:
                        await self._roll_back_clusters(
                            report,
                            sorted(failed),
                            previous_revisions,
                            progress,
                            timeout=gate.wait_timeout,
                        )
                        final = "RolledBack"
                    self.store.put_rollout(
                        replace(
                            state,
                            state=final,
                            partitions=tuple(records),
                            current=index,
                            message=message,
                        )
                    )
                    self.store.add_event(
                        kind="rollout",
                        app=name,
                        trigger=trigger,
                        outcome=final,
                        message=message,
                        commit=source_ref,
                    )
                    return
            else:
                records[index] = replace(records[index], state="Ready")
                self.store.add_event(
                    kind="rollout",
                    app=name,
                    trigger=trigger,
                    outcome="Ready",
                    commit=source_ref,
                    message=f"partition {partition.name!r} ({', '.join(partition.clusters)}) is Ready",
                )
        self.store.put_rollout(
            replace(
                state,
                state="Complete",
                partitions=tuple(records),
                current=len(partitions),
                message="; ".join(tolerated),
            )
        )

    async def _roll_back_clusters(
        self,
        report: AppSyncReport,
        clusters: list[str],
        previous_revisions: dict[str, int | None],
        progress: Progress,
        *,
        timeout: float,
    ) -> None:
        """Return CLUSTERS to the revision each had applied before this rollout."""
        name = report.app
        for cluster in clusters:
            number = previous_revisions.get(cluster)
            if number is None:
                report.warnings.append(f"{cluster}: no earlier revision to roll back to")
                continue
            progress(f"{name}: rolling {cluster} back to revision {number}")
            old = self.store.get_revision(name, number)
            back = AppSyncReport(app=name)
            recorded = DesiredState(
                app=name,
                cluster=cluster,
                objects=tuple(old.rendered.get(cluster, ())),
                revision=old.digest,
            )
            try:
                restored = await restore_revision(self, name, old, {cluster: recorded})
            except AppflowError as err:
                report.warnings.append(f"{cluster}: cannot roll back: {err}")
                continue
            await self._apply(
                back,
                restored,
                {cluster: self.store.get_cluster(cluster)},
                old.source_ref,
                "rollback",
                SyncOptions(wait=True, wait_timeout=timeout),
                progress,
                revision=old,
            )
            report.rolled_back.extend(back.results)

    async def _dependencies(self, definition: AppDefinition) -> dict[str, frozenset[str]]:
        """The apps DEFINITION depends on, each with the states that meet it (all registered
        apps are read for selectors and cycles)."""
        definitions = [definition]
        for other in self.store.list_apps():
            if other.name == definition.name:
                continue
            try:
                definitions.append(await self.definition(other, await self.source(other)))
            except AppflowError as err:
                raise ConfigError(
                    f"cannot check dependencies: app {other.name} does not load: {err.message}",
                    where=Where(app=definition.name),
                ) from err
        return resolve_dependency_states(definitions)[definition.name]

    async def _wait_for_dependencies(
        self,
        name: str,
        dependencies: Mapping[str, frozenset[str]],
        cluster: str,
        options: SyncOptions,
    ) -> str:
        """'' when every dependency is in an accepted state on CLUSTER, else what is awaited."""
        deadline = asyncio.get_running_loop().time() + (options.wait_timeout if options.wait else 0)
        only_ready = all(accepted == {"Ready"} for accepted in dependencies.values())
        while True:
            pending = []
            for dep, accepted in dependencies.items():
                record = await self.refresh_health(dep, cluster)
                wanted = "" if only_ready else f"; accepted: {', '.join(sorted(accepted))}"
                if record is None:
                    pending.append(f"{dep} (not deployed on {cluster}{wanted})")
                elif record.state not in accepted:
                    pending.append(f"{dep} ({record.state}{wanted})")
            if not pending:
                return ""
            if asyncio.get_running_loop().time() >= deadline:
                goal = "Ready" if only_ready else "in an accepted state"
                return f"waiting for {', '.join(pending)} to be {goal} on {cluster}"
            await asyncio.sleep(1.0)

    async def refresh_health(self, app: str, cluster: str) -> DeploymentRecord | None:
        """Re-assess the health of APP's applied revision on CLUSTER and record it."""
        record = self._previous(app, cluster)
        if (
            record is None
            or record.applied_revision is None
            or record.state in ("ErrApplied", "WaitApplied")
        ):
            return record
        objects = self.store.get_revision(app, record.applied_revision).rendered.get(cluster, [])
        kube = self.kube(self.store.get_cluster(cluster))
        try:
            if release.release_of(record.applied):
                health, failing, counts = await assess_objects(kube, objects)
            else:
                health, failing, counts = await assess_health(kube, app, objects)
        except ClusterError as err:
            return replace(record, state="Unknown", message=str(err))
        state: DeploymentState = (
            "Ready"
            if health.status is HealthStatus.HEALTHY
            else "Missing"
            if health.status is HealthStatus.MISSING
            else "NotReady"
        )
        if state != record.state or failing != record.failing:
            record = self.store.put_deployment(
                replace(
                    record,
                    state=state,
                    message=health.message,
                    failing=failing,
                    resource_counts=counts,
                )
            )
        return record

    def _mark_online(self, cluster: str) -> None:
        record = self.store.get_cluster(cluster)
        if record.state != "Online":
            self.store.put_cluster(
                replace(record, state="Online", state_reason="", last_seen=utc_now())
            )

    def _record_waiting(self, app: str, cluster: str, message: str) -> None:
        previous = self._previous(app, cluster)
        base = previous or DeploymentRecord(app=app, cluster=cluster)
        self.store.put_deployment(replace(base, state="WaitApplied", message=message))

    async def _run_on_clusters(
        self,
        report: AppSyncReport,
        clusters: Sequence[str],
        *,
        revision: RevisionRecord | None,
        trigger: SyncTrigger,
        source_ref: str,
        action: Callable[[str], Awaitable[SyncResult]],
    ) -> None:
        """Run ACTION on each cluster (bounded), recording history, deployment and events."""
        name = report.app
        limit = asyncio.Semaphore(self.options.cluster_concurrency)

        # Store writes run in a worker thread: each commit waits for the disk
        # (synchronous=FULL), and a fleet sync makes hundreds of them while
        # other clusters' requests are in flight. What one cluster's finished
        # sync records is written as one transaction: one wait, not four.

        def failed(record_id: int, cluster: str, err: AppflowError) -> None:
            with self.store.transaction():
                self.store.finish_sync(record_id, outcome="failed", message=str(err))
                self.store.add_event(
                    kind="failure",
                    app=name,
                    cluster=cluster,
                    trigger=trigger,
                    message=str(err),
                    outcome="failed",
                    commit=source_ref,
                )

        def finished(record_id: int, result: SyncResult) -> None:
            counts = {a.value: n for a, n in result.plan.counts().items()}
            if HELM_REVISION in result.resource_counts:
                counts[HELM_REVISION] = result.resource_counts[HELM_REVISION]
            message = "; ".join(str(e) for e in result.errors) or (
                result.plan.summary() if result.plan.changes else result.health.message
            )
            with self.store.transaction():
                self._mark_online(result.cluster)
                self.store.finish_sync(
                    record_id,
                    outcome="succeeded" if result.ok else "failed",
                    counts=counts,
                    message=message,
                    objects={c.ref.encode(): c.action.value for c in result.plan.changes},
                )
                self._record_deployment(result, revision)
                self.store.add_event(
                    kind="sync" if result.ok else "failure",
                    app=name,
                    cluster=result.cluster,
                    trigger=trigger,
                    commit=source_ref,
                    outcome=result.state,
                    message=message,
                )

        async def one(cluster: str) -> None:
            async with limit:
                record = await asyncio.to_thread(
                    self.store.start_sync,
                    name,
                    cluster,
                    revision=revision.number if revision else None,
                    trigger=trigger,
                )
                try:
                    result = await action(cluster)
                except AppflowError as err:
                    err = err.located(app=name, cluster=cluster)
                    await asyncio.to_thread(failed, record.id, cluster, err)
                    report.unreachable[cluster] = err
                    return
                report.results.append(result)
                await asyncio.to_thread(finished, record.id, result)

        await asyncio.gather(*(one(c) for c in clusters))

    def _revision(
        self, name: str, desired: dict[str, DesiredState], source_ref: str
    ) -> RevisionRecord:
        """The revision these renders belong to: new, or the latest when nothing changed.

        Its digest covers the distinct rendered contents, not which clusters got
        them, so syncing a subset of clusters to the same content is not a new
        revision; the renders of clusters not synced now are carried over.
        """
        contents = sorted({d.revision for d in desired.values() if d.objects})
        wanted = digest([source_ref, contents])
        latest = self.store.latest_revision(name, with_rendered=False)
        if latest is not None and latest.digest == wanted:
            # The common case of a re-sync: nothing new, and the stored renders
            # (hundreds of objects to decompress and parse) are not read.
            # The record comes without them, as store.list_revisions gives it.
            return latest
        rendered: dict[str, list[Manifest]] = {}
        if latest is not None and latest.source_ref == source_ref:
            rendered.update(self.store.get_revision(name, latest.number).rendered)
        rendered.update({c: list(d.recorded) for c, d in desired.items() if d.objects})
        return self.store.add_revision(
            name, digest=wanted, source_ref=source_ref, rendered=rendered
        )

    def _record_deployment(self, result: SyncResult, revision: RevisionRecord | None) -> None:
        # Prunes and kept objects are what left the desired state; anything else is desired.
        desired = any(c.action not in (Action.PRUNE, Action.SKIP) for c in result.plan.changes)
        if result.ok and not result.inventory.entries and not desired and not result.fingerprints:
            # Nothing owned and nothing desired: the app left this cluster.
            with contextlib.suppress(NotFoundError):
                self.store.delete_deployment(result.app, result.cluster)
            return
        self.store.put_deployment(
            DeploymentRecord(
                app=result.app,
                cluster=result.cluster,
                desired_revision=revision.number if revision else None,
                applied_revision=revision.number if revision and result.ok else None,
                state=result.state,
                message="; ".join(str(e) for e in result.errors) or result.health.message,
                inventory=result.inventory.to_lines(),
                applied=result.fingerprints,
                resource_counts=result.resource_counts,
                failing=result.failing,
            )
        )

    def _record_blocked(
        self, report: AppSyncReport, desired: dict[str, DesiredState], trigger: SyncTrigger
    ) -> None:
        message = "; ".join(str(e) for e in report.blocked)
        # A render that failed leaves no desired state: the errors still name their clusters,
        # so `appflow events --cluster` finds them.
        named = sorted({e.where.cluster for e in report.blocked if e.where.cluster})
        clusters: list[str | None] = [*desired] or [*named] or [None]
        for cluster in clusters:
            self.store.add_event(
                kind="failure",
                app=report.app,
                cluster=cluster,
                trigger=trigger,
                outcome="blocked",
                message=message,
            )

    def _record_unreachable(self, app: str, cluster: str, err: AppflowError) -> None:
        if err.retryable:
            record = self.store.get_cluster(cluster)
            if record.state != "Offline" or record.state_reason != err.message:
                self.store.put_cluster(replace(record, state="Offline", state_reason=err.message))
        previous = self._previous(app, cluster)
        if previous is None:
            with contextlib.suppress(AppflowError):
                self.store.put_deployment(
                    DeploymentRecord(app=app, cluster=cluster, state="Unknown", message=str(err))
                )
            return
        self.store.put_deployment(
            DeploymentRecord(
                app=app,
                cluster=cluster,
                desired_revision=previous.desired_revision,
                applied_revision=previous.applied_revision,
                state="Unknown",
                message=str(err),
                inventory=previous.inventory,
                applied=previous.applied,
                resource_counts=previous.resource_counts,
                failing=previous.failing,
            )
        )

    async def _sync_release(
        self,
        report: AppSyncReport,
        definition: AppDefinition,
        source: Source,
        targets: dict[str, ClusterRecord],
        trigger: SyncTrigger,
        options: SyncOptions,
        progress: Progress,
    ) -> AppSyncReport:
        """Helm release mode: template every target first, then helm upgrade --install each."""
        requests: dict[str, RenderRequest] = {}
        desired: dict[str, DesiredState] = {}

        async def render_one(cluster: ClusterRecord) -> None:
            try:
                request = await self.request_for(definition, source, cluster)
                opened = await self.secrets.open(
                    definition, request, cluster=cluster, groups=self.groups()
                )
                request = opened.request
                rendered = await render(
                    request, cache=self.render_cache if opened.cacheable else None
                )
            except ClusterError as err:
                report.unreachable[cluster.name] = err.located(app=report.app, cluster=cluster.name)
                return
            except AppflowError as err:
                report.blocked.append(err.located(app=report.app, cluster=cluster.name))
                return
            requests[cluster.name] = request
            desired[cluster.name] = DesiredState(
                app=report.app,
                cluster=cluster.name,
                objects=rendered.objects,
                revision=opened.revision(rendered.objects, rendered.revision),
                redactor=opened.redactor,
            )

        progress(f"{report.app}: rendering the chart for {len(targets)} cluster(s)")
        await asyncio.gather(*(render_one(c) for c in targets.values()))
        if report.blocked:
            self._record_blocked(report, desired, trigger)
            return report
        revision = self._revision(report.app, desired, source.ref) if desired else None
        report.revision = revision
        progress(f"{report.app}: helm upgrade --install on {len(desired)} cluster(s)")
        await self._run_on_clusters(
            report,
            list(desired),
            revision=revision,
            trigger=trigger,
            source_ref=source.ref,
            action=lambda c: release.install_or_upgrade(
                self.kube(targets[c]), targets[c], requests[c], desired[c], options=options
            ),
        )
        for cluster, err in report.unreachable.items():
            self._record_unreachable(report.app, cluster, err)
        report.results.sort(key=lambda r: r.cluster)
        return report

    async def uninstall(self, name: str, *, progress: Progress = lambda _: None) -> AppSyncReport:
        """Remove app NAME from every cluster it is deployed to.

        Objects appflow applied are pruned from its inventory; Helm releases are
        uninstalled with helm.
        """
        clusters = {c.name: c for c in self.store.list_clusters()}
        deployed = [d for d in self.store.list_deployments(app=name) if d.cluster in clusters]
        releases = {d.cluster: release.release_of(d.applied) for d in deployed}
        report = AppSyncReport(app=name)
        for cluster, found in releases.items():
            if found is not None:
                namespace, release_name = found
                try:
                    await release.uninstall(
                        clusters[cluster], app=name, release=release_name, namespace=namespace
                    )
                except AppflowError as err:
                    report.unreachable[cluster] = err
        pruned = [d.cluster for d in deployed if releases[d.cluster] is None]
        desired = {c: DesiredState(app=name, cluster=c, objects=(), revision="") for c in pruned}
        report = await self._apply(
            report,
            desired,
            {c: clusters[c] for c in pruned},
            "uninstall",
            "user",
            SyncOptions(prune=True),
            progress,
        )
        for result in report.results:
            if result.ok and not result.inventory.entries:
                await delete_inventory(self.kube(clusters[result.cluster]), name)
        return report

    def _helm_revision_of(self, app: str, cluster: str, revision: int) -> int | None:
        for sync in self.store.list_syncs(app, cluster=cluster, limit=500):
            if (
                sync.revision == revision
                and sync.outcome == "succeeded"
                and HELM_REVISION in sync.counts
            ):
                return sync.counts[HELM_REVISION]
        return None

    # -- diff and rollback --------------------------------------------------------

    async def diff(self, name: str, *, clusters: Sequence[str] = ()) -> dict[str, Plan]:
        """The plan, with diffs, of syncing app NAME now; changes nothing."""
        app = self.store.get_app(name)
        source = await self.source(app)
        definition = await self.definition(app, source)
        targets = self.targets(definition, clusters)
        desired = [(c, await self.desired(definition, source, c)) for c in targets]
        return await self._plans(name, desired, prune=definition.sync_policy.prune)

    async def diff_revision(self, name: str, *, to: int) -> dict[str, Plan]:
        """The plan, with diffs, of rolling app NAME back to revision TO; changes nothing."""
        revision = self.store.get_revision(name, to)
        clusters = {c.name: c for c in self.store.list_clusters()}
        desired = [
            (
                clusters[cluster],
                DesiredState(
                    app=name, cluster=cluster, objects=tuple(objects), revision=revision.digest
                ),
            )
            for cluster, objects in sorted(revision.rendered.items())
            if cluster in clusters
        ]
        # A rollback prunes what came later, as `rollback` does.
        return await self._plans(name, desired, prune=True)

    async def _plans(
        self, name: str, desired: Sequence[tuple[ClusterRecord, DesiredState]], *, prune: bool
    ) -> dict[str, Plan]:
        options = SyncOptions(with_diffs=True, prune=prune)
        plans: dict[str, Plan] = {}
        errors: list[AppflowError] = []
        for cluster, state in desired:
            previous = self._previous(name, cluster.name)
            try:
                prepared = await prepare(
                    self.kube(cluster),
                    state,
                    previous_inventory=Inventory.from_lines(name, previous.inventory)
                    if previous
                    else None,
                    # A diff compares with the live objects, never trusts fingerprints.
                    fingerprints={},
                    options=options,
                )
            except SyncBlocked as err:
                errors.extend(err.errors)
                continue
            plans[cluster.name] = prepared.plan
        if errors:
            raise SyncBlocked(
                errors, app=name, cluster=", ".join(sorted({str(e.where.cluster) for e in errors}))
            )
        return plans

    async def rollback(
        self,
        name: str,
        *,
        to: int,
        options: SyncOptions | None = None,
        progress: Progress = lambda _: None,
    ) -> AppSyncReport:
        """Re-apply revision TO of app NAME exactly as it was rendered, and pause auto-sync."""
        app = self.store.get_app(name)
        revision = self.store.get_revision(name, to)
        clusters = {c.name: c for c in self.store.list_clusters()}
        desired: dict[str, DesiredState] = {}
        for cluster, objects in revision.rendered.items():
            if cluster in clusters:
                desired[cluster] = DesiredState(
                    app=name, cluster=cluster, objects=tuple(objects), revision=revision.digest
                )
        report = AppSyncReport(app=name)
        try:
            desired = await restore_revision(self, name, revision, desired)
        except AppflowError as err:
            report.blocked.append(err.located(app=name))
            return report
        missing = sorted(set(revision.rendered) - set(clusters))
        if missing:
            report.warnings.append(
                f"revision {to} also targeted clusters no longer registered: {', '.join(missing)}"
            )
        options = options or SyncOptions()
        helm_revisions: dict[str, tuple[str, str, int]] = {}
        for cluster in list(desired):
            previous = self._previous(name, cluster)
            found = release.release_of(previous.applied) if previous else None
            if found is None:
                continue
            number = self._helm_revision_of(name, cluster, to)
            if number is None:
                report.blocked.append(
                    NotFoundError(
                        f"no successful sync of revision {to} recorded a Helm release revision",
                        where=Where(app=name, cluster=cluster),
                    )
                )
                continue
            helm_revisions[cluster] = (*found, number)
        if report.blocked:
            return report
        for_helm = {c: desired.pop(c) for c in helm_revisions}
        await self._run_on_clusters(
            report,
            list(for_helm),
            revision=revision,
            trigger="rollback",
            source_ref=revision.source_ref,
            action=lambda c: release.rollback(
                self.kube(clusters[c]),
                clusters[c],
                for_helm[c],
                namespace=helm_revisions[c][0],
                release=helm_revisions[c][1],
                helm_revision=helm_revisions[c][2],
                options=options,
            ),
        )
        report = await self._apply(
            report,
            desired,
            {c: clusters[c] for c in desired},
            revision.source_ref,
            "rollback",
            options,
            progress,
            revision=revision,
        )
        # As Argo CD does: a rollback would be undone by the next automatic sync.
        self.store.put_app(_paused(app))
        return report


def with_app_namespace(
    objects: tuple[Manifest, ...],
    namespace: str | None,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> tuple[Manifest, ...]:
    """OBJECTS plus the app's namespace, when they use it and do not define it.

    As Fleet does with defaultNamespace, the namespace is created for the app;
    it is marked to be kept on prune, because deleting a namespace deletes
    everything in it, including objects appflow does not own. fleet.yaml's
    namespaceLabels and namespaceAnnotations are set on it (then it is created
    even where Kubernetes made it, as Fleet labels the namespace it deploys to).
    """
    marked = bool(labels or annotations)
    if not namespace or (namespace in ("default", "kube-system") and not marked):
        return objects
    defined = any(
        m.get("kind") == "Namespace" and (m.get("metadata") or {}).get("name") == namespace
        for m in objects
    )
    used = any((m.get("metadata") or {}).get("namespace") == namespace for m in objects)
    if defined or not (used or marked):
        return objects
    metadata: dict[str, object] = {
        "name": namespace,
        "annotations": {**(annotations or {}), ANNOTATION_PRUNE: "false"},
    }
    if labels:
        metadata["labels"] = dict(labels)
    created: Manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
    return (created, *objects)


def _ref_spec(ref: str) -> git.RefSpec:
    from appflow.sources import git

    if not ref or ref == "HEAD":
        return git.RefSpec.head()
    if ref.startswith("refs/tags/") or ref.startswith("tag:"):
        return git.RefSpec.tag(ref.removeprefix("tag:"))
    if ref.startswith("semver:"):
        return git.RefSpec.semver(ref.removeprefix("semver:"))
    if ref.startswith("commit:"):
        return git.RefSpec.commit(ref.removeprefix("commit:"))
    return git.RefSpec.branch(ref)


def _renamed(definition: AppDefinition, name: str) -> AppDefinition:
    return definition if definition.name == name else replace(definition, name=name)


def _paused(app: AppRecord) -> AppRecord:
    return replace(app, paused=True)

"""The Engine: appflow's sync engine behind one small facade.

Each verb lives in its own module and works on ``EngineParts`` (the store, its
recorder, cluster connections, the render cache, the source resolvers):

    sync       sync.py       one app onto its targets (rollouts: rollout.py)
    diff       diff.py       what a sync would change
    rollback   rollback.py   an earlier revision, exactly as rendered (pinned there; resume)
    uninstall  uninstall.py  everything an app owns, from every cluster
    run_tests  testing.py    the app's tests (test hooks, helm test) on its clusters
    refresh_repo  repos.py   one look at a repository: which apps a new commit touches
    refresh_health refresh.py a Deployment's health and drift, read again
    observe    refresh.py    what `appflow status` shows: every Deployment, read again

The sync stages themselves (prepare, apply, prune, inventory, health) are in
``appflow.engine.stages`` and know nothing of the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from appflow.engine.connections import Connections
from appflow.engine.fanout import RemoteTargets
from appflow.engine.locks import SyncLocks
from appflow.engine.options import EngineOptions
from appflow.engine.parts import EngineParts
from appflow.engine.recorder import Recorder
from appflow.engine.report import AppSyncReport
from appflow.engine.secrets import SecretsStage
from appflow.engine.sources import RESOLVERS, Resolvers
from appflow.engine.stages.types import Progress, SyncOptions, quiet
from appflow.engine.state import read_fleet
from appflow.engine.sync import OptionsFromPolicy, SyncRequest, sync_app
from appflow.errors import ConfigError
from appflow.kube.client import KubeCluster
from appflow.model.appdef import AppDefinition, SyncPolicy
from appflow.model.plan import Plan
from appflow.model.records import CLI_ACTOR, ClusterRecord, DeploymentRecord, SyncTrigger
from appflow.model.summary import SyncAsk
from appflow.model.targeting import ClusterGroup
from appflow.render.cache import RenderCache
from appflow.store import Store

if TYPE_CHECKING:
    from appflow.engine.batch import Batch, BatchResult
    from appflow.engine.refresh import Observation
    from appflow.engine.repos import RepoRefresh
    from appflow.engine.testing import AppTestReport

__all__ = ["AppSyncReport", "Engine", "EngineOptions", "Progress"]

# The verbs other than sync are imported when called: a fresh `appflow sync`
# does not pay for what it does not run.


class Engine:
    """Syncs AppFlows to Clusters, using the store for what it knows and remembers."""

    def __init__(
        self,
        store: Store,
        *,
        options: EngineOptions | None = None,
        render_cache: RenderCache | None = None,
        resolvers: Resolvers = RESOLVERS,
    ) -> None:
        chosen = options or EngineOptions()
        self._polled: dict[str, str] = {}
        """Per repository, the commit refresh_repo last worked out due apps for."""
        self.parts = EngineParts(
            store=store,
            recorder=Recorder(store),
            connections=Connections(chosen),
            render_cache=render_cache or RenderCache(),
            resolvers=resolvers,
            secrets=SecretsStage(),
            options=chosen,
            locks=SyncLocks(store),
        )

    @property
    def store(self) -> Store:
        return self.parts.store

    @property
    def recorder(self) -> Recorder:
        return self.parts.recorder

    @property
    def secrets(self) -> SecretsStage:
        """Decrypts apps' SOPS inputs per cluster (decrypted files are kept in memory)."""
        return self.parts.secrets

    def groups(self) -> dict[str, ClusterGroup]:
        """The registered cluster groups, by name."""
        return read_fleet(self.store).groups

    def kube(self, cluster: ClusterRecord) -> KubeCluster:
        """The client for CLUSTER (kept between syncs)."""
        return self.parts.connections.kube(cluster)

    def targets(
        self, definition: AppDefinition, *, only: Sequence[str] = ()
    ) -> list[ClusterRecord]:
        """The registered clusters DEFINITION targets (among ONLY, when given)."""
        return read_fleet(self.store).targets(definition, only)

    def close(self) -> None:
        self.parts.connections.close()

    async def sync(
        self,
        name: str,
        *,
        clusters: Sequence[str] = (),
        trigger: SyncTrigger = "user",
        options: SyncOptions | None = None,
        options_from_policy: OptionsFromPolicy | None = None,
        commit: str | None = None,
        lock_timeout: float | None = None,
        actor: str = "",
        progress: Progress = quiet,
        remote: RemoteTargets | None = None,
    ) -> AppSyncReport:
        """Render, validate and apply app NAME on its targets (or the named CLUSTERS among them).

        Without OPTIONS, the app's syncPolicy decides them, through
        OPTIONS_FROM_POLICY when given (for flags that add to the policy: the
        caller need not load the app's definition a second time to read it).
        COMMIT, for a git app, is the commit to sync when the caller resolved it
        already (the poller, a webhook): the remote is not asked again. LOCK_TIMEOUT:
        how long to wait for another writer of the app on a cluster (default: the
        options' lock_timeout); 0 fails at once, naming it. ACTOR: who asked (an API
        token's name, "cli"), kept in the sync's history. REMOTE: targets someone else
        writes (a hub's pull clusters), in the same validation and partition order.
        """
        request = SyncRequest(
            app=name,
            clusters=tuple(clusters),
            trigger=trigger,
            actor=actor,
            options=options,
            options_from_policy=options_from_policy,
            commit=commit,
            lock_timeout=lock_timeout,
            remote=remote,
        )
        async with self.parts.locks.session():
            return await sync_app(self.parts, request, progress=progress)

    async def every_app(self) -> Batch:
        """Every registered app, each after the apps it depends on (for `sync --all`)."""
        from appflow.engine.batch import every_app

        return await every_app(self.parts)

    async def sync_batch(
        self,
        batch: Batch,
        *,
        clusters: Sequence[str] = (),
        trigger: SyncTrigger = "user",
        options_from_policy: OptionsFromPolicy | None = None,
        actor: str = "",
        progress: Progress = quiet,
    ) -> BatchResult:
        """Sync BATCH's apps concurrently, each after the apps it waits for (see
        ``appflow.engine.batch``); the options are those of ``sync``."""
        from appflow.engine.batch import sync_apps

        def request(name: str) -> SyncRequest:
            return SyncRequest(
                app=name,
                clusters=tuple(clusters),
                trigger=trigger,
                actor=actor,
                options_from_policy=options_from_policy,
            )

        return await sync_apps(self.parts, batch, request=request, progress=progress)

    async def sync_asked(self, ask: SyncAsk, *, progress: Progress = quiet) -> BatchResult:
        """What `appflow sync` asks, wherever it runs (in the CLI, or in `appflow serve` for a
        CLI that handed it over): one app, the named apps one after another, or every app,
        concurrently in dependency order. One app's error is raised, as a single sync's is;
        in a batch it is kept with the others' reports."""
        from appflow.engine.batch import Batch, BatchResult

        def options(policy: SyncPolicy) -> SyncOptions:
            return SyncOptions(
                prune=policy.prune,
                force_conflicts=ask.force_conflicts or policy.force_conflicts,
                take_ownership=ask.take_ownership,
                wait=ask.wait,
                wait_timeout=ask.timeout,
                lock_timeout=ask.lock_timeout,
            )

        if not ask.all_apps and len(ask.names) == 1:
            report = await self.sync(
                ask.names[0],
                clusters=ask.clusters,
                options_from_policy=options,
                actor=CLI_ACTOR,
                progress=progress,
            )
            return BatchResult(reports=(report,), errors=())
        if ask.all_apps:
            batch = await self.every_app()
        elif ask.names:
            batch = Batch.one_after_another(ask.names)
        else:
            raise ConfigError("name an app, or use --all")
        return await self.sync_batch(
            batch,
            clusters=ask.clusters,
            options_from_policy=options,
            actor=CLI_ACTOR,
            progress=progress,
        )

    async def diff(self, name: str, *, clusters: Sequence[str] = ()) -> dict[str, Plan]:
        """The plan, with diffs, of syncing app NAME now; changes nothing."""
        from appflow.engine.diff import diff_app

        return await diff_app(self.parts, name, clusters=clusters)

    async def diff_revision(self, name: str, *, to: int) -> dict[str, Plan]:
        """The plan, with diffs, of rolling app NAME back to revision TO; changes nothing."""
        from appflow.engine.diff import diff_revision

        return await diff_revision(self.parts, name, to=to)

    async def rollback(
        self,
        name: str,
        *,
        to: int,
        options: SyncOptions | None = None,
        progress: Progress = quiet,
    ) -> AppSyncReport:
        """Re-apply revision TO of app NAME exactly as it was rendered, and pin it there."""
        from appflow.engine.rollback import rollback_app

        async with self.parts.locks.session():
            return await rollback_app(
                self.parts, name, to=to, options=options or SyncOptions(), progress=progress
            )

    async def resume(
        self,
        name: str,
        *,
        options_from_policy: OptionsFromPolicy | None = None,
        progress: Progress = quiet,
    ) -> AppSyncReport:
        """Unpin app NAME (a rollback pinned it) and sync the source's revision."""
        from appflow.engine.rollback import resume_app

        await resume_app(self.parts, name)
        return await self.sync(name, options_from_policy=options_from_policy, progress=progress)

    async def uninstall(self, name: str, *, progress: Progress = quiet) -> AppSyncReport:
        """Remove app NAME from every cluster it is deployed to."""
        from appflow.engine.uninstall import uninstall_app

        async with self.parts.locks.session():
            return await uninstall_app(self.parts, name, progress=progress)

    async def run_tests(
        self, name: str, *, clusters: Sequence[str] = (), timeout: float = 300.0
    ) -> AppTestReport:
        """Run app NAME's tests on the clusters it is deployed to (or the named CLUSTERS)."""
        from appflow.engine.testing import run_app_tests

        return await run_app_tests(self.parts, name, clusters=clusters, timeout=timeout)

    async def refresh_repo(self, name: str, *, commit: str | None = None) -> RepoRefresh:
        """Look at repository NAME (or take COMMIT as its new head); the apps it moved."""
        from appflow.engine.repos import refresh_repo

        return await refresh_repo(
            self.store, self.recorder, name, polled=self._polled, commit=commit
        )

    async def refresh_health(self, *, app: str, cluster: str) -> DeploymentRecord | None:
        """Re-assess the health of APP's applied revision on CLUSTER and record it."""
        from appflow.engine.refresh import refresh_health

        return await refresh_health(self.parts, app=app, cluster=cluster)

    async def observe(
        self, *, apps: Sequence[str] | None = None, timeout: float = 5.0
    ) -> list[Observation]:
        """Every Deployment of APPS (default: all) read again from its cluster, each
        cluster within TIMEOUT seconds; what changed is recorded."""
        from appflow.engine.refresh import observe

        return await observe(self.parts, apps=apps, timeout=timeout)

    async def status(self, *, cached: bool = False, timeout: float = 5.0) -> dict[str, Any]:
        """The apps x clusters grid of `appflow status` (``refresh.status_view``)."""
        from appflow.engine.refresh import status_view

        return await status_view(self.parts, cached=cached, timeout=timeout)

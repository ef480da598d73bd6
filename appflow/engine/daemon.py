"""`appflow serve`: one asyncio process of supervised, named tasks.

    workers        take (app, cluster) keys from the work queue and sync them
    poll:<repo>    look at each repository's remote ref at its interval (jittered)
    resync         every app, every `resync_seconds` (the fallback for missed events)
    drift          one watch per (cluster, kind) in the inventories (appflow.engine.drift);
                   a change to appflow's fields marks the Deployment Modified, or, with
                   selfHeal, queues a re-apply within seconds
    http           webhooks, API, metrics (appflow.server), when mounted

Every task is supervised: a crash is logged as an event and the task restarted
after a backoff, so one failing repository or cluster never stops the others.
SIGTERM stops taking new work, lets in-flight syncs finish (up to a grace
period), then exits. On start, syncs left running by a killed process are
marked interrupted and every app is queued: state is rebuilt from the store
and the clusters, so a restart converges and duplicates nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from appflow.engine.drift import DriftHost, DriftWatcher
from appflow.engine.engine import AppSyncReport, Engine
from appflow.engine.queue import ALL, WorkKey, WorkQueue
from appflow.errors import AppflowError, NotFoundError, StoreError
from appflow.model.records import AppRecord, DeploymentRecord, SyncTrigger

log = logging.getLogger("appflow.daemon")


@dataclass(frozen=True, kw_only=True)
class DaemonOptions:
    workers: int = 4
    resync_seconds: float = 600.0
    poll_seconds: float | None = None
    """Overrides every repository's poll interval (tests, `appflow serve --poll`)."""
    drift: bool = True
    shutdown_grace: float = 60.0
    self_heal_delay: float = 1.0
    health_seconds: float = 2.0
    """How often Deployments that are not Ready yet are re-assessed."""


SyncHook = Callable[[AppSyncReport, float], None]


class Daemon:
    """The long-running reconciler; implements appflow.server.triggers.Triggers."""

    def __init__(
        self,
        engine: Engine,
        *,
        options: DaemonOptions | None = None,
        on_sync: SyncHook | None = None,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.recorder = engine.recorder
        self.options = options or DaemonOptions()
        self.queue = WorkQueue()
        self._repo_wakeups: dict[str, asyncio.Event] = {}
        self._repo_commits: dict[str, str] = {}
        """Commits signed webhooks named, per repository, for its next poll."""
        self._app_commits: dict[str, str] = {}
        """Commits a poll resolved, per app queued for it: its sync asks the remote nothing."""
        self._stopping = asyncio.Event()
        self._ready = False
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_sync = on_sync
        self._drift = self._drift_watcher()

    # -- Triggers ----------------------------------------------------------------

    def trigger_repo(self, repo: str, *, trigger: SyncTrigger, commit: str | None = None) -> None:
        event = self._repo_wakeups.get(repo)
        if event is None:
            self._repo_wakeups[repo] = event = asyncio.Event()
            self._spawn(f"poll:{repo}", lambda: self._poll_repo(repo))
        self._last_repo_trigger[repo] = trigger
        if commit is not None:
            self._repo_commits[repo] = commit
        event.set()

    def trigger_app(
        self, app: str, *, trigger: SyncTrigger, cluster: str | None = None, actor: str = ""
    ) -> None:
        self.queue.add(WorkKey(app, cluster or ALL), trigger=trigger, actor=actor)

    def queue_depth(self) -> int:
        return len(self.queue)

    def ready(self) -> bool:
        return self._ready and not self._stopping.is_set()

    # -- lifecycle -----------------------------------------------------------------

    _last_repo_trigger: dict[str, SyncTrigger]

    async def run(self, *, extra: dict[str, Callable[[], Awaitable[None]]] | None = None) -> None:
        """Run until stop() is called; EXTRA are more supervised tasks (the HTTP server)."""
        self._last_repo_trigger = {}
        # Syncs a killed process left running are marked interrupted (with an
        # event); every app is queued below, which re-syncs them.
        await self._store_write(self.recorder.recover_interrupted)
        for app in await asyncio.to_thread(self.store.list_apps):
            if not app.paused:
                self.queue.add(WorkKey(app.name), trigger="poll")
        for index in range(self.options.workers):
            self._spawn(f"worker-{index}", self._worker)
        for repo in await asyncio.to_thread(self.store.list_repos):
            if "://" in repo.url or repo.url.startswith("git@"):
                self.trigger_repo(repo.name, trigger="poll")
        self._spawn("resync", self._resync)
        self._spawn("health", self._health)
        if self.options.drift:
            self._spawn("drift", self._drift.run)
        for name, factory in (extra or {}).items():
            self._spawn(name, factory)
        self._ready = True
        await self._store_write(
            lambda: self.recorder.event(
                kind="daemon", message="appflow serve started", outcome="started"
            )
        )
        await self._stopping.wait()
        await self._shutdown()

    async def _store_write(self, write: Callable[[], Awaitable[object]]) -> None:
        """WRITE, retried while another process keeps the store busy, until stopping.

        Another appflow process may hold the store's lock for a while (a long
        transaction, a crash under a debugger): the daemon waits it out rather than die.
        """
        delay = 0.5
        while True:
            try:
                await write()
                return
            except StoreError as err:
                if self._stopping.is_set():
                    return
                log.warning("the store is busy (%s); trying again in %.0fs", err, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                delay = min(delay * 2, 30.0)

    @property
    def stopping(self) -> asyncio.Event:
        """Set when the daemon is asked to stop: long-running extra tasks end on it."""
        return self._stopping

    def stop(self) -> None:
        self._stopping.set()
        self._drift.changed.set()

    async def _shutdown(self) -> None:
        workers = [t for n, t in self._tasks.items() if n.startswith("worker-")]
        others = [t for n, t in self._tasks.items() if not n.startswith("worker-")]
        for task in others:
            task.cancel()
        # Workers check the stop flag between items: in-flight syncs finish.
        if workers:
            _, pending = await asyncio.wait(workers, timeout=self.options.shutdown_grace)
            for task in pending:
                task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        with contextlib.suppress(StoreError):
            await self.recorder.event(
                kind="daemon", message="appflow serve stopped", outcome="stopped"
            )

    def _spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        async def supervised() -> None:
            failures = 0
            while not self._stopping.is_set():
                try:
                    await factory()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    failures += 1
                    delay = min(60.0, 2.0**failures) * random.uniform(0.5, 1.0)
                    if isinstance(err, AppflowError):
                        # Expected failures (a busy store, a cluster that went away) say
                        # what happened in one line; only a bug earns a traceback.
                        log.warning("task %s failed: %s; restarting in %.1fs", name, err, delay)
                    else:
                        log.exception("task %s failed; restarting in %.1fs", name, delay)
                    with contextlib.suppress(AppflowError):
                        await self.recorder.event(
                            kind="failure",
                            outcome="task-restarted",
                            message=f"task {name} failed: {err}; restarting",
                        )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=delay)

        self._tasks[name] = asyncio.create_task(supervised(), name=name)

    # -- workers -------------------------------------------------------------------------

    async def _worker(self) -> None:
        while not self._stopping.is_set():
            getter = asyncio.ensure_future(self.queue.get())
            stopper = asyncio.ensure_future(self._stopping.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return
            stopper.cancel()
            key, trigger = getter.result()
            ok = False
            try:
                ok = await self._work(key, trigger)
            finally:
                delay = self.queue.done(key, ok=ok)
                if not ok:
                    with contextlib.suppress(StoreError):
                        await self.recorder.event(
                            kind="backoff",
                            app=key.app,
                            cluster=None if key.cluster == ALL else key.cluster,
                            trigger=trigger,
                            message=f"retrying in {delay:.0f}s (attempt {self.queue.failures(key)})",
                        )

    async def _work(self, key: WorkKey, trigger: SyncTrigger) -> bool:
        commit = self._app_commits.pop(key.app, None) if key.cluster == ALL else None
        try:
            app = await asyncio.to_thread(self.store.get_app, key.app)
        except NotFoundError:
            return True  # deleted meanwhile: nothing to do
        if app.paused and trigger in ("poll", "webhook", "selfHeal"):
            return True
        if not app.policy.auto and trigger in ("poll", "webhook"):
            return True
        started = time.monotonic()
        try:
            report = await self.engine.sync(
                key.app,
                clusters=() if key.cluster == ALL else (key.cluster,),
                trigger=trigger,
                actor=self.queue.actor(key),
                # Another process syncing the app: back off and retry, never block a worker.
                lock_timeout=0,
                # A user's sync asks the remote; one a poll queued takes what the poll found.
                commit=None if trigger == "user" else commit,
            )
        except AppflowError as err:
            with contextlib.suppress(StoreError):
                await self.recorder.event(
                    kind="failure", app=key.app, trigger=trigger, outcome="failed", message=str(err)
                )
            # A busy store is as passing as a cluster that did not answer: try again.
            return not (err.retryable or isinstance(err, StoreError))
        if self._on_sync is not None:
            self._on_sync(report, time.monotonic() - started)
        self._drift.changed.set()
        # Clusters that did not answer are retried with backoff; a refused revision
        # or an error no retry fixes is recorded once and not retried until
        # something changes (a new commit, a user's sync).
        return not report.retry

    # -- repositories ----------------------------------------------------------------------

    async def _poll_repo(self, name: str) -> None:
        wakeup = self._repo_wakeups[name]
        failures = 0
        while not self._stopping.is_set():
            try:
                repo = await asyncio.to_thread(self.store.get_repo, name)
            except NotFoundError:
                return
            interval = self.options.poll_seconds or float(repo.poll_interval_seconds)
            trigger = self._last_repo_trigger.pop(name, "poll")
            wakeup.clear()
            # Jitter spreads the polls of many repositories over the interval.
            jitter = random.uniform(0.8, 1.2)
            try:
                found = await self.engine.refresh_repo(
                    name, commit=self._repo_commits.pop(name, None)
                )
                failures = 0
            except AppflowError as err:
                failures += 1
                interval = min(600.0, interval * (2 ** min(failures, 4)))
                await self.recorder.event(
                    kind="failure",
                    trigger=trigger,
                    outcome="fetch-failed",
                    message=f"repository {name}: {err}; next attempt in "
                    f"{interval * jitter:.0f}s (failure {failures})",
                )
            else:
                await self._moved(found.due, found.commit, trigger)
            sleep = interval * jitter
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout=sleep)

    async def _moved(self, due: Sequence[str], commit: str | None, trigger: SyncTrigger) -> None:
        """Queue the apps a new COMMIT touched; those that do not sync on their own
        (paused, or syncPolicy.auto false) are marked OutOfSync instead."""
        for name in due:
            try:
                app = await asyncio.to_thread(self.store.get_app, name)
            except NotFoundError:
                continue
            if app.paused or not app.policy.auto:
                await self._out_of_sync(app, commit)
                continue
            if commit is not None:
                self._app_commits[name] = commit
            self.queue.add(WorkKey(name), trigger=trigger)

    async def _out_of_sync(self, app: AppRecord, commit: str | None) -> None:
        if app.pinned_revision is not None:
            why = f"a rollback pinned it to revision {app.pinned_revision}"
            act = f"appflow app resume {app.name}"
        else:
            why, act = "its syncPolicy.auto is false", f"appflow sync {app.name}"
        moved = f"the source moved to {commit[:12]}" if commit else "the source moved"
        message = f"{moved}; not synced because {why} ({act})"
        deployments = await asyncio.to_thread(self.store.list_deployments, app=app.name)
        for d in deployments:
            await self.recorder.deployment_state(app.name, d.cluster, "OutOfSync", message)

    async def _resync(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.options.resync_seconds)
            if self._stopping.is_set():
                return
            for app in await asyncio.to_thread(self.store.list_apps):
                if not app.paused:
                    self.queue.add(WorkKey(app.name), trigger="poll")

    async def _health(self) -> None:
        """Re-assess Deployments that are not Ready yet, so status follows the cluster."""
        while not self._stopping.is_set():
            for d in await asyncio.to_thread(self.store.list_deployments):
                if d.state in ("NotReady", "Missing") and d.applied_revision is not None:
                    try:
                        await self.engine.refresh_health(app=d.app, cluster=d.cluster)
                    except AppflowError as err:
                        log.debug("health of %s on %s: %s", d.app, d.cluster, err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.options.health_seconds)

    # -- drift -----------------------------------------------------------------------------

    def _drift_watcher(self) -> DriftWatcher:
        async def wanted() -> list[DeploymentRecord]:
            return await asyncio.to_thread(self.store.list_deployments)

        return DriftWatcher(
            self.engine,
            DriftHost(
                wanted=wanted,
                busy=self.queue.busy,
                heal=lambda app, cluster: self.queue.add(WorkKey(app, cluster), trigger="selfHeal"),
            ),
            stop=self._stopping,
            self_heal_delay=self.options.self_heal_delay,
        )

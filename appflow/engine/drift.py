"""Drift watches: one watch per (cluster, kind) in the inventories of the Deployments looked after.

A change to the fields appflow applied (a hand edit, a deletion) is confirmed after a moment
(appflow's own applies send events too), then either marks the Deployment ``Modified`` (or
``Missing``) with Fleet's counts, or, with ``syncPolicy.selfHeal``, asks the host for a
re-apply of that app on that cluster through its normal sync path.

Two hosts run it: standalone's daemon (every Deployment of the store) and each hub controller
replica (the Deployments of the apps in its share, on push-mode clusters; a pull cluster's agent
watches its own). The host says which Deployments to look after (``wanted``), which apps are
still its own (``looks_after``), whether a sync of an app on a cluster is already due
(``busy``) and how to ask for one (``heal``). Watches of kinds no Deployment looked after uses
any more are stopped, so a replica whose share moved stops watching it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from appflow.engine.engine import Engine
from appflow.engine.stages.live import secret_content
from appflow.errors import AppflowError, FencedError, NotFoundError
from appflow.model.drift import Drift, drifted_paths
from appflow.model.objects import LABEL_APP, Manifest, ObjectRef
from appflow.model.ownership import untouched_since
from appflow.model.records import DeploymentRecord, DeploymentState

log = logging.getLogger("appflow.drift")

Watched = tuple[str, str, str]
"""(cluster, apiVersion, kind)."""


@dataclass(frozen=True, kw_only=True)
class DriftHost:
    """What the process running the watches decides for them."""

    wanted: Callable[[], Awaitable[Sequence[DeploymentRecord]]]
    """The Deployments whose objects are watched now."""
    busy: Callable[[str, str], bool]
    """Whether a sync of (app, cluster) is due or running (it settles the object)."""
    heal: Callable[[str, str], None]
    """Ask for a re-apply of (app, cluster) with trigger selfHeal."""
    looks_after: Callable[[str], bool] = lambda _app: True
    """Whether this process still looks after APP (a hub replica: whether it is in its share)."""


def inventory_kinds(deployments: Sequence[DeploymentRecord]) -> set[Watched]:
    """The (cluster, apiVersion, kind) of every object in DEPLOYMENTS' inventories."""
    return {(d.cluster, e.api_version, e.ref.kind) for d in deployments for e in d.inventory}


class DriftWatcher:
    """Keeps the watches of one process and judges what they report."""

    def __init__(
        self,
        engine: Engine,
        host: DriftHost,
        *,
        stop: asyncio.Event,
        self_heal_delay: float = 1.0,
        recheck_seconds: float = 30.0,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.recorder = engine.recorder
        self.host = host
        self.stop = stop
        self.self_heal_delay = self_heal_delay
        self.recheck_seconds = recheck_seconds
        self.changed = asyncio.Event()
        """Set it when what is wanted may have changed (a sync finished, a share moved)."""
        self.watches: dict[Watched, asyncio.Task[None]] = {}
        self._confirmations: dict[asyncio.Task[None], str] = {}
        """Checks waiting to confirm a suspect change, with their app."""

    async def run(self) -> None:
        """Keep one watch per wanted (cluster, kind) until STOP; looked at again whenever
        ``changed`` is set and every ``recheck_seconds``."""
        try:
            while not self.stop.is_set():
                self.changed.clear()
                try:
                    await self.refresh()
                except AppflowError as err:
                    # The watches running go on; what is wanted is read again soon.
                    log.warning(
                        "drift watches: %s; looking again in %.0fs", err, self.recheck_seconds
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), timeout=self.recheck_seconds)
        finally:
            await self.close()

    async def refresh(self) -> None:
        """Start the watches now wanted, stop those no longer wanted (and drop the checks of
        apps no longer looked after: their verdicts are another process's now)."""
        for task, app in list(self._confirmations.items()):
            if not self.host.looks_after(app):
                task.cancel()
        wanted = inventory_kinds(await self.host.wanted())
        for key in sorted(set(self.watches) - wanted):
            task = self.watches.pop(key)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.info("stopped watching %s/%s on %s", key[1], key[2], key[0])
        for key in sorted(wanted - set(self.watches)):
            self.watches[key] = asyncio.create_task(
                self._watch_supervised(*key), name=f"drift:{key[0]}:{key[1]}/{key[2]}"
            )

    async def close(self) -> None:
        tasks = [*self.watches.values(), *self._confirmations]
        self.watches.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch_supervised(self, cluster: str, api_version: str, kind: str) -> None:
        """Watch, again after a failure (a cluster that went away comes back)."""
        failures = 0
        while not self.stop.is_set():
            try:
                await self._watch(cluster, api_version, kind)
                return
            except FencedError:
                return
            except Exception as err:  # a watch that fails is restarted, never lost
                failures += 1
                delay = min(60.0, 2.0**failures) * random.uniform(0.5, 1.0)
                log.warning(
                    "drift watch of %s/%s on %s failed: %s; again in %.1fs",
                    api_version,
                    kind,
                    cluster,
                    err,
                    delay,
                    # Expected failures say what happened in one line; only a bug earns a traceback.
                    exc_info=not isinstance(err, AppflowError),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=delay)

    async def _watch(self, cluster: str, api_version: str, kind: str) -> None:
        try:
            record = await asyncio.to_thread(self.store.get_cluster, cluster)
        except NotFoundError:
            return
        kube = self.engine.kube(record)
        opened = False
        async for event_type, obj in kube.watch(
            api_version, kind, label_selector=LABEL_APP, stop=self.stop
        ):
            if not opened:
                # The watch lists first: its first event says it is open (tests wait for this).
                opened = True
                log.info("watching %s/%s on %s", api_version, kind, cluster)
            # After 410 Gone the watch lists the kind again and delivers what changed
            # meanwhile as MODIFIED, DELETED (or ADDED, which needs no check).
            if event_type in ("MODIFIED", "DELETED"):
                await self.check(cluster, event_type, obj)

    async def check(self, cluster: str, event_type: str, live: Manifest) -> None:
        """Judge one watch event: a suspect change is confirmed in a moment, off the watch."""
        meta = live.get("metadata") or {}
        app = (meta.get("labels") or {}).get(LABEL_APP)
        if not app or not self.host.looks_after(app):
            return
        ref = ObjectRef.of(live)
        if not await self._suspect(app, cluster, ref, None if event_type == "DELETED" else live):
            return
        task = asyncio.create_task(self._confirm(app, cluster, ref, str(live.get("apiVersion"))))
        self._confirmations[task] = app
        task.add_done_callback(self._confirmed)

    def _confirmed(self, task: asyncio.Task[None]) -> None:
        self._confirmations.pop(task, None)
        err = None if task.cancelled() else task.exception()
        if err is not None and not isinstance(err, FencedError):
            log.warning("drift check failed: %s", err)

    async def _suspect(self, app: str, cluster: str, ref: ObjectRef, live: Manifest | None) -> bool:
        """Whether LIVE (None: deleted) no longer matches what appflow last applied."""
        try:
            deployment = await asyncio.to_thread(self.store.get_deployment, app, cluster)
        except NotFoundError:
            return False
        if deployment.state == "WaitApplied":
            # A sync (of this process or another) is writing: it records the outcome.
            return False
        recorded = deployment.applied.get(ref.encode())
        if recorded is None:
            return False  # not (or no longer) applied by appflow
        # Status writes and fields of other managers leave the fingerprint alone.
        return live is None or not untouched_since(recorded, live, content=secret_content(live))

    async def _confirm(self, app: str, cluster: str, ref: ObjectRef, api_version: str) -> None:
        """Look again after a moment: appflow's own apply also sends events, and its
        fingerprint reaches the store only when the sync records it."""
        await asyncio.sleep(self.self_heal_delay)
        if self.host.busy(app, cluster) or not self.host.looks_after(app):
            return  # a sync of this app is due or running: it settles the object
        kube = self.engine.kube(await asyncio.to_thread(self.store.get_cluster, cluster))
        try:
            before = await asyncio.to_thread(self.store.get_deployment, app, cluster)
        except NotFoundError:
            return
        live = await kube.get(api_version, ref.kind, ref.name, ref.namespace)
        if not await self._suspect(app, cluster, ref, live):
            return
        if live is None:
            what, state = f"{ref} was deleted", "Missing"
        else:
            paths = await asyncio.to_thread(self._drifted_paths, app, cluster, ref, live)
            what, state = Drift(ref, paths).describe(), "Modified"
        if await asyncio.to_thread(self._self_heals, app):
            await self.recorder.event(
                kind="drift",
                app=app,
                cluster=cluster,
                trigger="selfHeal",
                outcome=state,
                message=f"{what}; self-healing",
            )
            self.host.heal(app, cluster)
            return
        deployment = await asyncio.to_thread(self.store.get_deployment, app, cluster)
        if self.host.busy(app, cluster) or deployment.applied != before.applied:
            # A sync started or completed since LIVE was read (on a busy machine the
            # reads above can outlast a whole sync): its record is newer than this verdict.
            return
        if deployment.state != state or deployment.message != what:
            counts = deployment.resource_counts
            if state == "Modified":
                counts = replace(counts, modified=counts.modified + 1)
            else:
                counts = replace(counts, missing=counts.missing + 1)
            await self.recorder.deployment(
                replace(
                    deployment,
                    state=cast(DeploymentState, state),
                    message=what,
                    resource_counts=counts,
                )
            )
            await self.recorder.event(
                kind="drift", app=app, cluster=cluster, outcome=state, message=what
            )

    def _self_heals(self, app: str) -> bool:
        try:
            return self.store.get_app(app).policy.self_heal
        except NotFoundError:
            return False

    def _drifted_paths(
        self, app: str, cluster: str, ref: ObjectRef, live: Manifest
    ) -> tuple[str, ...]:
        """Field paths where LIVE differs from what appflow applied (only fields appflow sets)."""
        deployment = self.store.get_deployment(app, cluster)
        if deployment.applied_revision is None:
            return ()
        rendered = self.store.get_revision(app, deployment.applied_revision).rendered.get(
            cluster, []
        )
        for desired in rendered:
            if ObjectRef.of(desired) == ref:
                return drifted_paths(desired, live, app=app)
        return ()

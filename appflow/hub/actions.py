"""The CLI's second backend: the same commands against a hub (docs/hub.md §9).

Reads and registrations go through ``HubStore``, the same ``Store`` protocol standalone uses.
Actions do not run in the CLI's process: a hub's apps are synced by the replica that owns
them. ``HubEngine`` is the ``Engine`` the commands get on a hub; its ``sync``, ``rollback`` and
``uninstall`` write a ``syncRequest`` into the AppFlow, wait until its owner reports the
outcome in the AppFlow's status, and return the owner's report, so the commands print the
same lines and exit with the same codes as standalone. ``diff`` stays local: it renders here
and reads the push clusters with the credentials their Secrets hold, changing nothing.

An app of a local folder is uploaded again (only what changed) before each sync, as the
folder on this machine is what the user edits.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

from appflow.engine.engine import Engine
from appflow.engine.fanout import RemoteTargets
from appflow.engine.refresh import Observation
from appflow.engine.report import AppSyncReport
from appflow.engine.stages.types import Progress, SyncOptions, quiet
from appflow.engine.sync import OptionsFromPolicy
from appflow.errors import AppflowError, ConfigError, StoreError, Where
from appflow.hub.reports import report_of
from appflow.hub.store import HubStore
from appflow.model import resources as res
from appflow.model.appdef import SyncPolicy
from appflow.model.hub import ANNOTATION_WEBHOOK, API_VERSION
from appflow.model.plan import Plan
from appflow.model.records import SyncTrigger, utc_now

PICKUP_SECONDS = 60.0
"""How long a request may wait for its owner to start it before the CLI says no controller runs."""


class HubEngine(Engine):
    """An Engine whose actions are requests to the hub's controllers."""

    def __init__(self, store: HubStore, *, push_view: HubStore, requested_by: str = "cli") -> None:
        super().__init__(store)
        self.hub = store
        self.requested_by = requested_by
        # Diffs read the push clusters only: a pull cluster's state is its agent's.
        self._local = Engine(push_view)

    def close(self) -> None:
        self._local.close()
        self._local.store.close()
        super().close()
        self.hub.close()

    async def diff(self, name: str, *, clusters: Sequence[str] = ()) -> dict[str, Plan]:
        return await self._local.diff(name, clusters=clusters)

    async def observe(
        self, *, apps: Sequence[str] | None = None, timeout: float = 5.0
    ) -> list[Observation]:
        # Push clusters are read live; a pull cluster's Deployments are what its agent reported
        # (the hub holds no credential to read it).
        return await self._local.observe(apps=apps, timeout=timeout)

    async def diff_revision(self, name: str, *, to: int) -> dict[str, Plan]:
        return await self._local.diff_revision(name, to=to)

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
        # LOCK_TIMEOUT is standalone's wait for another process's sync: on a hub the app's
        # owning replica is its only writer and queues the request itself. REMOTE is the
        # owner's too: it knows the pull clusters and is given none here.
        chosen = options or (
            options_from_policy(SyncPolicy()) if options_from_policy else SyncOptions()
        )
        app = await asyncio.to_thread(self.hub.get_app, name)
        for cluster in clusters:
            await asyncio.to_thread(self.hub.get_cluster, cluster)
        spec: dict[str, Any] = {}
        if app.source == "local":
            # The folder here is what the user edits: the hub renders what it holds now. The
            # new files and the request are one write, so the owner runs one sync, this one.
            progress(f"{name}: uploading {app.local_path}")
            spec["local"] = await asyncio.to_thread(self.hub.local_spec, app)
        asked: dict[str, Any] = {
            "clusters": list(clusters) or None,
            "forceConflicts": chosen.force_conflicts or None,
            "wait": chosen.wait or None,
            "timeoutSeconds": int(chosen.wait_timeout) if chosen.wait else None,
            "trigger": trigger,
            "commit": commit,
        }
        if actor:
            asked["requestedBy"] = actor
        return await self.request(
            name,
            asked,
            wait_for=chosen.wait_timeout if chosen.wait else 0.0,
            progress=progress,
            spec=spec,
        )

    async def rollback(
        self,
        name: str,
        *,
        to: int,
        options: SyncOptions | None = None,
        progress: Progress = quiet,
    ) -> AppSyncReport:
        chosen = options or SyncOptions()
        await asyncio.to_thread(self.hub.get_revision, name, to)
        return await self.request(
            name,
            {
                "rollbackTo": to,
                "forceConflicts": chosen.force_conflicts or None,
                "wait": chosen.wait or None,
                "timeoutSeconds": int(chosen.wait_timeout) if chosen.wait else None,
                "trigger": "rollback",
            },
            wait_for=chosen.wait_timeout if chosen.wait else 0.0,
            progress=progress,
        )

    async def uninstall(self, name: str, *, progress: Progress = quiet) -> AppSyncReport:
        return await self.request(name, {"uninstall": True}, wait_for=0.0, progress=progress)

    async def request(
        self,
        name: str,
        asked: dict[str, Any],
        *,
        wait_for: float,
        progress: Progress = quiet,
        timeout: float = 600.0,
        spec: dict[str, Any] | None = None,
    ) -> AppSyncReport:
        """Ask APP NAME's owner to run ASKED (with SPEC changed in the same write); its report
        once it finished."""
        request_id = await self.submit(name, asked, spec=spec)
        progress(f"{name}: asked the hub's controllers (request {request_id})")
        return await self._outcome(name, request_id, deadline=timeout + wait_for, progress=progress)

    async def submit(
        self, name: str, asked: dict[str, Any], *, spec: dict[str, Any] | None = None
    ) -> str:
        """Write ASKED as APP NAME's syncRequest (replacing any earlier one); its id."""
        request_id = f"{int(time.time())}-{secrets.token_hex(6)}"
        body = {
            "id": request_id,
            "clusters": None,
            "forceConflicts": None,
            "rollbackTo": None,
            "uninstall": None,
            "wait": None,
            "timeoutSeconds": None,
            "trigger": None,
            "commit": None,
            "requestedBy": self.requested_by,
            **asked,
            "requestedAt": res.stamp(utc_now()),
        }
        await asyncio.to_thread(
            self.hub.patch_app, name, {"spec": {**(spec or {}), "syncRequest": body}}
        )
        return request_id

    async def _outcome(
        self, name: str, request_id: str, *, deadline: float, progress: Progress
    ) -> AppSyncReport:
        started = time.monotonic()
        told = ""  # the phase the requester was last told of
        while True:
            obj = await asyncio.to_thread(self.hub.app_object, name)
            status = res.sync_request_status(obj)
            if status.get("id") == request_id:
                phase = status.get("phase")
                writer = status.get("writer") or "a controller"
                if phase in ("Pending", "Running") and phase != told:
                    told = str(phase)
                    progress(
                        f"{name}: {writer} has the request: {status.get('message')}"
                        if phase == "Pending"
                        else f"{name}: {writer} runs the request"
                    )
                if phase in ("Succeeded", "Failed"):
                    return await self._report(name, status)
            elif res.sync_request(obj).get("id") != request_id:
                raise StoreError(
                    f"the sync request for {name} was replaced by another one",
                    where=Where(app=name),
                    hint="someone else asked for a sync meanwhile; see `appflow app history`",
                )
            waited = time.monotonic() - started
            if not told and waited > PICKUP_SECONDS:
                raise ConfigError(
                    f"no hub controller started the request for {name} within "
                    f"{PICKUP_SECONDS:.0f}s",
                    where=Where(app=name),
                    hint="is `appflow controller` running for this workspace? "
                    "(kubectl -n appflow-system get leases)",
                )
            if waited > deadline:
                raise ConfigError(
                    f"the request for {name} did not finish within {deadline:.0f}s",
                    where=Where(app=name),
                    hint=f"it goes on: see `appflow app show {name}`",
                )
            await asyncio.sleep(0.3)

    async def _report(self, name: str, status: dict[str, Any]) -> AppSyncReport:
        digest = status.get("report")
        if not digest:
            return AppSyncReport(
                app=name,
                blocked=[AppflowError(str(status.get("message") or "the request failed"))],
            )
        data = await asyncio.to_thread(self.hub.get_objects, str(digest))
        if not data:
            raise StoreError(f"the report of {name}'s sync is empty", where=Where(app=name))
        return report_of(dict(data[0]))


class HubTriggers:
    """``appflow.server.triggers.Triggers`` on a hub: what a webhook or the API asks for is
    written where the owning replica picks it up (``appflow serve --hub``).

    A push to a repository pokes its GitRepo (the annotation ``appflow.dev/webhook`` with the
    commit, read by the repository's owner, which polls at once); a sync asked for over the
    API becomes the app's ``syncRequest``. Nothing runs in the serving process, so any number
    of ``serve --hub`` processes answer webhooks in the same way.
    """

    def __init__(self, engine: HubEngine) -> None:
        self.engine = engine
        self._pending: set[asyncio.Task[None]] = set()

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            import logging

            logging.getLogger("appflow.server").warning("hub trigger failed: %s", task.exception())

    def trigger_repo(self, repo: str, *, trigger: SyncTrigger, commit: str | None = None) -> None:
        poke = json.dumps({"commit": commit, "at": res.stamp(utc_now()), "trigger": trigger})
        self._spawn(
            self.engine.hub.kube.patch(
                API_VERSION,
                "GitRepo",
                repo,
                self.engine.hub.workspace,
                {"metadata": {"annotations": {ANNOTATION_WEBHOOK: poke}}},
            )
        )

    def trigger_app(
        self, app: str, *, trigger: SyncTrigger, cluster: str | None = None, actor: str = ""
    ) -> None:
        asked: dict[str, Any] = {"clusters": [cluster] if cluster else None, "trigger": trigger}
        if actor:
            asked["requestedBy"] = actor  # the API token's name, in place of this replica's
        self._spawn(self.engine.submit(app, asked))

    def queue_depth(self) -> int:
        return len(self._pending)

    def ready(self) -> bool:
        return True

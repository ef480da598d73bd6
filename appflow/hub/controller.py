"""``appflow controller``: one replica of the hub controller (docs/hub.md §5, §6).

A replica holds its membership Lease (``appflow.kube.lease``) and follows its workspace with
one list+watch per kind (AppFlows, GitRepos, Clusters, AppFlowDeployments; never polling the
API). Its work keys are the AppFlows (``appflow/<ns>/<name>``), the GitRepos
(``gitrepo/<ns>/<name>``: polling and webhooks, so two replicas never poll one repository) and
the Clusters (``cluster/<ns>/<name>``: probing, and the apps on each counted); rendezvous
hashing over the live members decides whose each key is, and a replica works only on keys
the membership lets it act on:

- an AppFlow's owner reconciles it (``appflow.hub.reconcile``) when its spec or request
  changes, its repository moves, the clusters change, its Deployments report (status only),
  and every resync; a worker pool takes them from a coalescing queue, one app at a time;
- a GitRepo's owner resolves its ref at its poll interval (or when a webhook pokes it) and
  records the commit in the GitRepo's status, which every replica watches;
- a Cluster's owner probes a push-mode cluster (credentials, version, nodes), marks it with a
  condition when its Secret is missing or its credentials are refused, and counts its apps.

Every write goes through a KubeCluster fenced by the membership (the hub, and each push
cluster): a replica that cannot renew its Lease stops writing before another takes over.
When the membership takes a key away, its work is cancelled and awaited before the handover;
the next owner marks the syncs it left running as interrupted and reconciles again.
Its HTTP port answers ``/healthz`` (the process runs) and ``/readyz`` (it holds its Lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import signal
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from appflow.engine.engine import Engine
from appflow.engine.options import EngineOptions
from appflow.engine.queue import ALL, WorkKey, WorkQueue
from appflow.errors import AppflowError, ConfigError, FencedError, NotFoundError, Where
from appflow.hub import publish
from appflow.hub.drift import share_drift
from appflow.hub.heartbeats import HeartbeatMonitor
from appflow.hub.reconcile import HubRecorder, Reconciler
from appflow.hub.seen import Seen
from appflow.hub.store import HubFiles, HubStore
from appflow.kube.client import Connection, KubeCluster
from appflow.kube.lease import Membership, MembershipOptions, default_identity
from appflow.model import resources as res
from appflow.model.deps import Declares, held_there, resolve_dependency_states
from appflow.model.hub import (
    ANNOTATION_WEBHOOK,
    API_VERSION,
    DEFAULT_WORKSPACE,
    LABEL_WORKSPACE,
    SYSTEM_NAMESPACE,
    cluster_namespace,
)
from appflow.model.hubstatus import cluster_apps, condition
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.records import SyncTrigger, utc_now
from appflow.paths import data_dir

log = logging.getLogger("appflow.controller")

STATUS = "~status"
"""The queue's key for an app whose status only is to be aggregated again."""
RELEASE = "~release"
"""The queue's key for an app one of whose agents reported a validation."""
HEALTH = "~health"


@dataclass(frozen=True, kw_only=True)
class ControllerOptions:
    kubeconfig: Path | None
    """None: the pod's ServiceAccount."""
    context: str | None = None
    namespace: str = SYSTEM_NAMESPACE
    """Where the membership Leases are."""
    workspace: str = DEFAULT_WORKSPACE
    """The namespace whose AppFlows this controller serves."""
    lease_duration: int = 15
    listen: str | None = None
    """host:port for /healthz and /readyz."""
    identity: str = ""
    workers: int = 4
    """Apps reconciled at once."""
    resync_seconds: float = 600.0
    poll_seconds: float | None = None
    """Overrides every GitRepo's and CatalogRepo's poll interval (tests)."""
    probe_seconds: float = 30.0
    """How often a push-mode cluster's owner probes it."""
    health_seconds: float = 5.0
    """How often Deployments that are not Ready yet are assessed again."""
    state_dir: Path | None = None
    """Where kubeconfigs and snapshot copies go (default: the data folder's ``controller/``)."""
    revision_limit: int = 20
    history_limit: int = 10
    engine: EngineOptions = field(default_factory=EngineOptions)
    collect_seconds: float = 600.0
    """How often the collector (one replica) deletes content nothing references."""
    lease_kubeconfig: Path | None = None
    """Another way to the same hub for the Lease traffic alone (tests cut only that way)."""


def identity_from_environment() -> str:
    """The pod's name (POD_NAME, from the downward API) with a random suffix, else the host's."""
    pod = os.environ.get("POD_NAME", "").lower()
    return f"{pod[:35]}-{secrets.token_hex(3)}" if pod else default_identity()


def app_key(namespace: str, name: str) -> str:
    return f"appflow/{namespace}/{name}"


def repo_key(namespace: str, name: str) -> str:
    return f"gitrepo/{namespace}/{name}"


def cluster_key(namespace: str, name: str) -> str:
    return f"cluster/{namespace}/{name}"


def catalog_repo_key(namespace: str, name: str) -> str:
    return f"catalogrepo/{namespace}/{name}"


def collector_key(namespace: str) -> str:
    return f"gc/{namespace}"


WRITES_IN_FLIGHT = 16
"""Requests a replica sends its hub at once (what one client needs to reach the API server's
own rate: the benchmark's floor is measured with 16)."""

RESYNC_SECONDS = 300.0
"""A full list this often: a watch that had to restart from scratch does not report what was
deleted meanwhile (client-go's informers resync for the same reason)."""

Handler = Callable[[str, Manifest], None]

SEEN_KINDS = {"AppFlow": "appflow", "GitRepo": "gitrepo"}
"""The kinds a replica reads from its watches (appflow.hub.seen), and their work keys' prefix."""


Selector = str | Callable[[], str | None] | None
"""A label selector; a callable is asked at every (re)start, and None from it watches nothing."""


async def follow(
    kube: KubeCluster,
    kind: str,
    handle: Handler,
    stop: asyncio.Event,
    *,
    namespace: str = "",
    label_selector: Selector = None,
    listed: Callable[[list[Manifest]], None] | None = None,
    restart: asyncio.Event | None = None,
    failed: Callable[[], None] | None = None,
) -> None:
    """List KIND (in NAMESPACE, else in every namespace), then watch it, again every
    RESYNC_SECONDS, after errors and when RESTART is set (a selector that changed): HANDLE gets
    ("ADDED"|"MODIFIED"|"DELETED", object) for each change, every listed object as ADDED, and
    DELETED for what an earlier round had that a new list lacks (a deletion while no watch ran,
    or an object the selector now leaves out). LISTED gets each full list first; FAILED is
    called when the watch fails or ends (until the next list, what it delivered may lag
    without bound)."""
    held: dict[ObjectRef, Manifest] = {}
    try:
        while not stop.is_set():
            round_over = asyncio.Event()
            timer = asyncio.get_running_loop().call_later(RESYNC_SECONDS, round_over.set)
            relays = [asyncio.create_task(_relay(stop, round_over))]
            if restart is not None:
                restart.clear()
                relays.append(asyncio.create_task(_relay(restart, round_over)))
            try:
                selector = label_selector() if callable(label_selector) else label_selector
                if callable(label_selector) and selector is None:
                    found: list[Manifest] = []
                    version = None
                else:
                    found, version = await kube.list_versioned(
                        API_VERSION, kind, namespace=namespace, label_selector=selector
                    )
                if listed is not None:
                    listed(found)
                now = {ObjectRef.of(o): o for o in found}
                for ref, gone in list(held.items()):
                    if ref not in now:
                        handle("DELETED", gone)
                held = now
                for obj in found:
                    handle("ADDED", obj)
                if version is None:
                    await round_over.wait()
                    continue
                # From the list's version: the watch starts where the list ended (no second
                # copy of every object), and knows what was listed should it have to list again.
                async for event, obj in kube.watch(
                    API_VERSION,
                    kind,
                    namespace=namespace,
                    label_selector=selector,
                    stop=round_over,
                    since=version,
                    known=found,
                ):
                    if event == "DELETED":
                        held.pop(ObjectRef.of(obj), None)
                    else:
                        held[ObjectRef.of(obj)] = obj
                    handle(event, obj)
            except AppflowError as err:
                if failed is not None:
                    failed()
                log.warning("following %s: %s", kind, err)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)
            finally:
                timer.cancel()
                for relay in relays:
                    relay.cancel()
            if restart is not None and restart.is_set() and not stop.is_set():
                # Membership changes come in bursts (apps created one after another): one
                # new list for the burst, not one per key.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), SETTLE_SECONDS)
    finally:
        if failed is not None:
            failed()  # it no longer watches, whatever ended it


SETTLE_SECONDS = 0.5

FULL_COUNT_EVERY = 10
"""A Cluster's owner lists its Deployments at least every this many counting rounds, even
when no app's status changed."""


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


class Shard:
    """The keys this replica works on, and the work running for each."""

    def __init__(self) -> None:
        self.acting: set[str] = set()
        self.tasks: dict[str, set[asyncio.Task[Any]]] = {}

    def run(self, key: str, work: Awaitable[Any], *, name: str) -> asyncio.Task[Any]:
        """Run WORK for KEY as a task the shard cancels when KEY is taken away."""
        task = asyncio.ensure_future(work)
        task.set_name(name)
        running = self.tasks.setdefault(key, set())
        running.add(task)
        task.add_done_callback(running.discard)
        return task

    def running(self, key: str) -> bool:
        return bool(self.tasks.get(key))

    async def restrict(self, keep: Callable[[str], bool]) -> None:
        """Stop the work of every key KEEP rejects, and return once it stopped."""
        lost = [k for k in sorted(self.acting | set(self.tasks)) if not keep(k)]
        stopping = [t for k in lost for t in self.tasks.pop(k, set())]
        for task in stopping:
            task.cancel()
        if stopping:
            await asyncio.wait(stopping)
        for key in lost:
            if key in self.acting:
                self.acting.discard(key)
                log.info("released %s", key)

    def take(self, keys: frozenset[str]) -> set[str]:
        """Note KEYS as this replica's; the ones it did not have."""
        gained = set(keys - self.acting)
        for key in sorted(gained):
            self.acting.add(key)
            log.info("took %s", key)
        return gained


class Controller:
    """One replica: its membership, its view of the workspace, and the work it owns."""

    def __init__(self, options: ControllerOptions, *, stop: asyncio.Event) -> None:
        if not options.workspace:
            raise ConfigError(
                "a controller serves one workspace",
                where=Where(field="workspace"),
                hint="pass --workspace NAMESPACE",
            )
        self.options = options
        self.workspace = options.workspace
        self.stop = stop
        self.identity = options.identity or identity_from_environment()
        hub = Connection(name="hub", kubeconfig=options.kubeconfig, context=options.context)
        timeout = max(1.0, 0.3 * options.lease_duration)
        self.lease_kube = KubeCluster(
            replace(hub, timeout=timeout, kubeconfig=options.lease_kubeconfig or hub.kubeconfig)
        )
        self.read_kube = KubeCluster(hub)
        self.shard = Shard()
        self.objects: dict[str, dict[str, Manifest]] = {
            "AppFlow": {},
            "GitRepo": {},
            "Cluster": {},
            "CatalogRepo": {},
            "ClusterGroup": {},
        }
        self.membership = Membership(
            self.lease_kube,
            MembershipOptions(
                namespace=options.namespace,
                identity=self.identity,
                duration=float(options.lease_duration),
            ),
            keys=self.keys,
            restrict=self.restrict,
        )
        # At most WRITES_IN_FLIGHT requests of its own at once (the client keeps more
        # connections than that for the stores' threads): more only queue in the API server,
        # where the membership's Lease renewals then wait behind them (on a loaded hub, 3
        # replicas with 64 each were fenced again and again by their own writes).
        self.write_kube = KubeCluster(
            replace(hub, concurrency=WRITES_IN_FLIGHT), write_guard=self.membership.remaining
        )
        files = HubFiles(
            root=options.state_dir or data_dir() / "controller" / self.identity,
            local_folders="snapshot",
        )
        common: dict[str, Any] = {
            "workspace": self.workspace,
            "writer": self.identity,
            "files": files,
            "live_writers": lambda: self.membership.live,
            "revision_limit": options.revision_limit,
            "history_limit": options.history_limit,
        }
        self.seen = Seen(SEEN_KINDS)
        """The AppFlows and GitRepos as the watches and this replica's writes show them: the
        stores read them from here instead of GETting them (appflow.hub.seen)."""
        self.store = HubStore(self.write_kube, seen=self.seen, **common)
        engine_store = HubStore(self.write_kube, push_only=True, content_of=self.store, **common)
        self.push_store = engine_store
        # The catalog's source resolver registers itself when its package is imported.
        import appflow.engine.catalog  # noqa: F401

        engine = Engine(engine_store, options=options.engine)
        engine.parts = replace(
            engine.parts,
            recorder=HubRecorder(engine_store),
            connections=publish.HubConnections(
                options.engine, write_guard=self.membership.remaining, store=self.store
            ),
        )
        self.engine = engine
        self.deployments: dict[str, dict[str, Manifest]] = {}
        """Per app of this replica's shard, per cluster: its AppFlowDeployment as the watch
        last saw it (the watch selects the shard's apps only)."""
        self.viewed: frozenset[str] = frozenset()
        """The apps whose Deployments the watch has listed under its current selector: work
        on an app waits until its Deployments are in view."""
        self.selecting: frozenset[str] = frozenset()
        """The shard's apps when the Deployment watch's selector was last made."""
        self.depends: dict[str, frozenset[str]] = {}
        """Per app, the apps it depends on (dependsOn over the watched AppFlows, as far as it
        resolves): the Deployment watch follows those of the shard's apps too, and a change of
        their state wakes the apps that wait for them, on whichever replica they are."""
        self.dependents: dict[str, frozenset[str]] = {}
        """Per app, the apps that depend on it."""
        self.declared: dict[str, Declares] = {}
        """Per AppFlow, its name, labels and dependsOn, read when it last changed."""
        self.watching: frozenset[str] = frozenset()
        """The apps whose Deployments the watch selects: the shard's and their dependencies."""
        self.shard_moved = asyncio.Event()
        """Set when the shard's apps, or what they depend on, change: the Deployment watch
        restarts with them."""
        self.reconciler = Reconciler(
            engine=engine,
            store=self.store,
            kube=self.write_kube,
            identity=self.identity,
            seen=self.seen_deployments,
            seen_clusters=lambda: list(self.objects["Cluster"].values()),
            seen_groups=self.watched_groups,
        )
        self.heartbeats = HeartbeatMonitor(
            read=self.read_kube,
            write=self.write_kube,
            workspace=self.workspace,
            owns=lambda name: self.membership.may_act(cluster_key(self.workspace, name)),
        )
        """Pull clusters: Online, Suspect or Offline from their agents' heartbeat Leases."""
        self.statuses_changed = 0
        """Counts the AppFlow status changes the watch showed (a Cluster's count is stale
        once it moved)."""
        self.counted: dict[str, int] = {}
        """Per cluster, ``statuses_changed`` when its Deployments were last listed."""
        self.counted_rounds: dict[str, int] = {}
        """Per cluster, the counting rounds skipped since it was last listed."""
        self.groups_watched = False
        """Whether the ClusterGroup watch has listed and not failed since."""
        self.queue = WorkQueue()
        self.locks: dict[str, asyncio.Lock] = {}
        self.pokes: dict[str, asyncio.Event] = {}
        self.gained: set[str] = set()
        """Apps whose key this replica gained and has not worked on since."""
        self.moved: dict[str, str] = {}
        """Per app, the commit its repository moved to (the app's owner checks its folder)."""
        self.drift = share_drift(
            engine,
            self.store,
            seen=self.share_push_deployments,
            looks_after=self.in_share,
            busy=self.queue.busy,
            heal=lambda app, cluster: self.queue_app(app, "selfHeal", what=cluster),
            stop=stop,
        )
        """Drift watches of the share's push Deployments (appflow.hub.drift)."""

    # -- what is shared ------------------------------------------------------------------------

    def keys(self) -> frozenset[str]:
        ws = self.workspace
        return frozenset(
            [app_key(ws, n) for n in self.objects["AppFlow"]]
            + [repo_key(ws, n) for n in self.objects["GitRepo"]]
            + [cluster_key(ws, n) for n in self.objects["Cluster"]]
            + [catalog_repo_key(ws, n) for n in self.objects["CatalogRepo"]]
            + [collector_key(ws)]
        )

    def shard_apps(self) -> frozenset[str]:
        prefix = app_key(self.workspace, "")
        return frozenset(k.removeprefix(prefix) for k in self.shard.acting if k.startswith(prefix))

    async def restrict(self, keep: Callable[[str], bool]) -> None:
        """Stop the work of the keys the membership takes away, and the drift watches no app
        left in the share needs."""
        before = self.shard_apps()
        held = set(self.shard.acting)
        await self.shard.restrict(keep)
        self.forget(held - self.shard.acting)
        if self.shard_apps() == before:
            return
        self.shard_moved.set()
        if before - self.shard_apps():
            try:
                await self.drift.refresh()
            except AppflowError as err:
                # Its checks ask in_share before every verdict: nothing is written for a lost app.
                log.warning("drift watches after a share change: %s", err)

    def forget(self, keys: Collection[str]) -> None:
        """KEYS moved: their objects' next reads are GETs (the previous owner's last writes
        may still be on their way through the watch)."""
        prefixes = {p: kind for kind, p in SEEN_KINDS.items()}
        for key in keys:
            prefix, _, rest = key.partition("/")
            namespace, _, name = rest.partition("/")
            if prefix in prefixes:
                self.seen.forget(prefixes[prefix], namespace, name)

    def deployment_selector(self) -> str | None:
        """The label selector of the shard's AppFlowDeployments (None: it has no apps).

        Each replica lists and watches only the Deployments of its own apps, so that the API
        server sends each Deployment's changes to one replica, not to all of them."""
        self.selecting = self.shard_apps()
        self.watching = self.watched_apps()
        if not self.watching:
            self.viewed = self.selecting
            return None
        names = ",".join(sorted(self.watching))
        return f"{LABEL_WORKSPACE}={self.workspace},{res.LABEL_APP} in ({names})"

    def watched_apps(self) -> frozenset[str]:
        """The shard's apps and the apps they depend on: whose Deployments the watch selects."""
        shard = self.shard_apps()
        return shard.union(*(self.depends.get(app, ()) for app in shard))

    def deployments_listed(self, found: list[Manifest]) -> None:
        # The follower delivers the list (and what it no longer holds) right after this,
        # before any other task runs: the view is complete for these apps from now on.
        self.viewed = self.selecting

    def owns_app(self, name: str) -> bool:
        return self.membership.may_act(app_key(self.workspace, name))

    def in_share(self, name: str) -> bool:
        return app_key(self.workspace, name) in self.shard.acting

    def share_push_deployments(self) -> list[Manifest]:
        """The AppFlowDeployments of this replica's share on push-mode clusters, as seen."""
        push = {n for n, c in self.objects["Cluster"].items() if res.cluster_mode(c) == "push"}
        return [
            d
            for app in self.owned_apps()
            for cluster, d in self.deployments.get(app, {}).items()
            if cluster in push
        ]

    def owned_apps(self) -> list[str]:
        """The apps of this replica's shard (work queued for them waits out a view change)."""
        ws = self.workspace
        return sorted(n for n in self.objects["AppFlow"] if app_key(ws, n) in self.shard.acting)

    def queue_app(
        self, name: str, trigger: SyncTrigger, *, what: str = ALL, delay: float = 0.0
    ) -> None:
        # The shard's keys, not may_act: while a new view is being published the membership
        # allows nothing for a moment, and work asked for meanwhile must not be lost.
        if app_key(self.workspace, name) in self.shard.acting:
            self.queue.add(WorkKey(name, what), trigger=trigger, delay=delay)

    # -- watches ---------------------------------------------------------------------------------

    def _remember(self, kind: str, event: str, obj: Manifest) -> Manifest | None:
        """Keep the latest KIND objects of the workspace (its watches hold no other); the one
        this event replaced."""
        meta = obj.get("metadata") or {}
        known = self.objects[kind]
        name = str(meta.get("name"))
        before = known.get(name)
        if event == "DELETED":
            known.pop(name, None)
        else:
            known[name] = obj
        return before

    def on_appflow(self, event: str, obj: Manifest) -> None:
        self.seen.observe(event, obj)  # before the work it queues reads it
        before = self._remember("AppFlow", event, obj)
        if event == "DELETED" or before is None or _declaration(before) != _declaration(obj):
            self._redeclare(event, obj)
        if event == "DELETED" or (before or {}).get("status") != obj.get("status"):
            self.statuses_changed += 1
        if event == "DELETED":
            return
        name = res.name_of(obj)
        generation = (obj.get("metadata") or {}).get("generation")
        if res.pending_request(obj) is not None:
            # A request shows in the spec too: one sync runs it (not also a "watch" one).
            requested = res.sync_request(obj).get("id")
            if (
                before is None
                or res.sync_request(before).get("id") != requested
                or event == "ADDED"
            ):
                self.queue_app(name, "user")
                if self.owns_app(name) and self._syncing(name):
                    self._acknowledge(name, str(requested))
            return
        if before is None or (before.get("metadata") or {}).get("generation") != generation:
            self.queue_app(name, "watch")

    def _redeclare(self, event: str, obj: Manifest) -> None:
        """OBJ's labels or dependsOn may have changed: resolve who depends on whom again, and
        restart the Deployment watch when the shard's apps depend on other apps now."""
        name = res.name_of(obj)
        self.declared.pop(name, None)
        if event != "DELETED":
            local = res.local_source(obj)
            try:
                # A local app's folder is not read here: the registering machine's path will do.
                self.declared[name] = res.app_record(
                    obj, local_path=local["folder"] if local else None
                )
            except AppflowError as err:
                log.warning("%s: its dependsOn cannot be read: %s", name, err)
        resolved = resolve_dependency_states(list(self.declared.values()), strict=False)
        self.depends = {app: frozenset(deps) for app, deps in resolved.items()}
        dependents: dict[str, set[str]] = {}
        for app, deps in self.depends.items():
            for dep in deps:
                dependents.setdefault(dep, set()).add(app)
        self.dependents = {dep: frozenset(apps) for dep, apps in dependents.items()}
        if self.watched_apps() != self.watching:
            self.shard_moved.set()

    def _syncing(self, app: str) -> bool:
        """Whether work on APP runs now (a new request then waits for it to end)."""
        lock = self.locks.get(app)
        return lock is not None and lock.locked()

    def _acknowledge(self, app: str, request_id: str) -> None:
        """Tell the requester at once that its request waits behind the work in progress (a
        rollout waiting for verdicts or Ready can hold it for minutes): the CLI otherwise
        takes an unanswered request for a missing controller."""

        async def write() -> None:
            try:
                await self.reconciler.acknowledge(app, request_id)
            except AppflowError as err:
                log.warning("%s: cannot acknowledge request %s: %s", app, request_id, err)

        self.shard.run(app_key(self.workspace, app), write(), name=f"ack:{app}")

    def on_gitrepo(self, event: str, obj: Manifest) -> None:
        self.seen.observe(event, obj)  # before the work it queues reads it
        before = self._remember("GitRepo", event, obj)
        name = res.name_of(obj)
        commit = (obj.get("status") or {}).get("commit")
        moved = before is not None and (before.get("status") or {}).get("commit") != commit
        if event != "DELETED" and commit and moved:
            # A push a webhook announced is the webhook's, as standalone records it.
            trigger: SyncTrigger = "webhook" if _webhook_commit(obj) == commit else "poll"
            for app in list(self.objects["AppFlow"].values()):
                if (app.get("spec") or {}).get("repo") == name:
                    self.moved[res.name_of(app)] = str(commit)
                    self.queue_app(res.name_of(app), trigger)
        hook = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_WEBHOOK)
        before_hook = (((before or {}).get("metadata") or {}).get("annotations") or {}).get(
            ANNOTATION_WEBHOOK
        )
        if hook and hook != before_hook and name in self.pokes:
            self.pokes[name].set()

    def watched_groups(self) -> list[Manifest] | None:
        """The ClusterGroups as the watch shows them; None while it cannot say (a LIST then)."""
        return list(self.objects["ClusterGroup"].values()) if self.groups_watched else None

    def on_group(self, event: str, obj: Manifest) -> None:
        before = self._remember("ClusterGroup", event, obj)
        if event == "DELETED" or before is None or before.get("spec") != obj.get("spec"):
            # What the apps' targets match may have changed; and an app queued before the
            # group was seen read the groups without it (watches of two kinds keep no order).
            for app in self.owned_apps():
                self.queue_app(app, "watch", delay=1.0)

    def on_catalog_repo(self, event: str, obj: Manifest) -> None:
        self._remember("CatalogRepo", event, obj)  # its key, for the membership

    def on_cluster(self, event: str, obj: Manifest) -> None:
        before = self._remember("Cluster", event, obj)
        self.heartbeats.on_cluster(event, obj)
        state = (obj.get("status") or {}).get("state")
        if before is not None and state != (before.get("status") or {}).get("state"):
            # A pull cluster gone Offline, or back: what may be released changes with it
            # (rollout.offlineTargets), for every app staged there.
            name = res.name_of(obj)
            for app, on in self.deployments.items():
                if name in on:
                    self.queue_app(app, "watch", what=RELEASE, delay=0.5)
        labels = (obj.get("metadata") or {}).get("labels")
        changed = (
            event == "DELETED"
            or before is None
            or (before.get("metadata") or {}).get("labels") != labels
            or before.get("spec") != obj.get("spec")
        )
        if changed:
            for app in self.owned_apps():
                self.queue_app(app, "watch", delay=1.0)

    def on_deployment(self, event: str, obj: Manifest) -> None:
        spec = obj.get("spec") or {}
        app, cluster = str(spec.get("app", "")), str(spec.get("cluster", ""))
        if not app or not cluster:
            return
        seen = self.deployments.setdefault(app, {})
        before = seen.get(cluster)
        if event == "DELETED":
            seen.pop(cluster, None)
        else:
            seen[cluster] = obj
        if app not in self.objects["AppFlow"]:
            return
        status, was = obj.get("status") or {}, (before or {}).get("status") or {}
        if status.get("state") != was.get("state"):
            self._wake_dependents(app, cluster)
        if app not in self.selecting:
            return  # watched for the shard's apps that depend on it
        # At most about once a second per app: the queue merges what is waiting.
        self.queue_app(app, "watch", what=STATUS, delay=1.0)
        if res.inventory_digest(obj) != res.inventory_digest(before or {}):
            self.drift.changed.set()  # what the drift watches cover may have changed
        if before is None and held_there(status) and self._is_push(cluster):
            # Held by dependsOn when this replica first saw it (it started, or the app moved
            # here): what held it may have been met since, unseen by this replica.
            self.queue_app(app, "watch", what=cluster, delay=1.0)
        rollout = (self.objects["AppFlow"][app].get("status") or {}).get("rollout") or {}
        # A validation moves the fleet-wide release; an apply or a health change moves the
        # gate of a progressive rollout in progress.
        watched = (
            ("staged", "appliedRevision", "state")
            if rollout.get("state") == "Progressing"
            else ("staged",)
        )
        if any(status.get(k) != was.get(k) for k in watched):
            self.queue_app(app, "watch", what=RELEASE, delay=0.5)

    def _wake_dependents(self, app: str, cluster: str) -> None:
        """APP's state on CLUSTER changed: the shard's apps that depend on it and wait there
        look again. What waits is read from their own Deployments (``held_there`` on a push
        cluster; staged on a pull cluster, whose release decides), not from a list kept in
        memory: a restarted replica, or one an app moved to, wakes them all the same."""
        push = self._is_push(cluster)
        for other in sorted(self.dependents.get(app, frozenset()) & self.selecting):
            mine = self.deployments.get(other, {}).get(cluster)
            if mine is None:
                continue
            if not push:
                self.queue_app(other, "watch", what=RELEASE, delay=0.5)
            elif held_there(mine.get("status") or {}):
                self.queue_app(other, "watch", what=cluster, delay=0.5)

    def _is_push(self, cluster: str) -> bool:
        obj = self.objects["Cluster"].get(cluster)
        return obj is not None and res.cluster_mode(obj) == "push"

    def seen_deployments(self, app: str) -> list[Manifest]:
        return list(self.deployments.get(app, {}).values())

    # -- work ------------------------------------------------------------------------------------

    async def worker(self) -> None:
        while not self.stop.is_set():
            key, trigger = await self.queue.get()
            if not self.owns_app(key.app):
                self.queue.done(key, ok=True)
                if app_key(self.workspace, key.app) in self.shard.acting:
                    # Still this replica's, not allowed this instant (a view being published).
                    self.queue.add(key, trigger=trigger, delay=0.5)
                continue
            if key.app not in self.viewed:
                # Its Deployments are not in view yet (the watch restarts with the shard):
                # nothing may be decided from a partial view.
                self.queue.done(key, ok=True)
                self.queue.add(key, trigger=trigger, delay=0.2)
                continue
            lock = self.locks.setdefault(key.app, asyncio.Lock())
            async with lock:
                task = self.shard.run(
                    app_key(self.workspace, key.app),
                    self._work(key, trigger),
                    name=f"app:{key.app}",
                )
                await asyncio.wait({task})
                ok = task.cancelled() or (task.exception() is None and bool(task.result()))
                if not task.cancelled() and task.exception() is not None:
                    err = task.exception()
                    if not isinstance(err, FencedError):
                        log.error("%s: %s", key.app, err, exc_info=err)
            self.queue.done(key, ok=ok)

    async def _work(self, key: WorkKey, trigger: SyncTrigger) -> bool:
        if key.cluster == STATUS:
            await self.reconciler.aggregate(key.app)
            return True
        if key.cluster == RELEASE:
            with contextlib.suppress(NotFoundError):
                released = await self.reconciler.release(key.app)
                if released.recheck is not None:
                    # A rollout partition in progress: its health timeout passes even if no
                    # Deployment changes.
                    self.queue_app(key.app, "watch", what=RELEASE, delay=released.recheck)
            return True
        if key.cluster == HEALTH:
            await self.reconciler.refresh_health(key.app)
            return True
        if key.app in self.gained:
            # Whatever a previous owner left running ended with it (its watch shows whether
            # there is anything to mark; most apps have nothing). Forgotten only once done, so
            # a failed attempt is retried with the work item.
            if any(
                e.get("outcome") == "running"
                for d in self.seen_deployments(key.app)
                for e in (d.get("status") or {}).get("history") or []
            ):
                await asyncio.to_thread(self.store.recover_interrupted, app=key.app)
            self.gained.discard(key.app)
        commit = self.moved.pop(key.app, None)
        moved = trigger in ("poll", "webhook") and commit is not None
        if moved and commit is not None and not await self._due(key.app, commit):
            return True
        clusters = () if key.cluster == ALL else (key.cluster,)  # a self-heal's cluster
        return await self.reconciler.reconcile(key.app, trigger, clusters=clusters)

    async def _due(self, app: str, commit: str) -> bool:
        """Whether APP's folder changed between its latest revision's commit and COMMIT."""
        from appflow.engine.sources import git_source
        from appflow.model.records import GitCommit
        from appflow.sources import git

        try:
            record = await asyncio.to_thread(self.store.get_app, app)
            latest = await asyncio.to_thread(self.store.latest_revision, app, with_rendered=False)
            if record.source != "git" or record.repo is None or latest is None:
                return True
            if not isinstance(latest.source_ref, GitCommit):
                return True
            if latest.source_ref.commit == commit:
                return False
            repo = await asyncio.to_thread(self.store.get_repo, record.repo)
            spec = git_source(repo)
            await git.fetch(
                git.GitSource(url=repo.url, ref=git.RefSpec.commit(commit), auth=spec.auth)
            )
            changed = await git.changed_paths(repo.url, latest.source_ref.commit, commit)
        except AppflowError as err:
            log.info("%s: cannot tell what commit %s changed (%s); syncing", app, commit[:12], err)
            return True
        prefix = (record.path.strip("/") + "/") if record.path else ""
        return any(p.startswith(prefix) for p in changed)

    async def take(self, gained: set[str]) -> None:
        """Start the work of keys this replica just got."""
        for key in sorted(gained):
            kind, name = key.split("/", 1)[0], key.split("/", 2)[-1]
            if kind == "appflow":
                self.gained.add(name)
                self.queue_app(name, "poll")
            elif kind == "gitrepo":
                self.pokes[name] = asyncio.Event()
                self.shard.run(key, self._supervised(key, partial(self.poll_repo, name)), name=key)
            elif kind == "catalogrepo":
                self.shard.run(
                    key, self._supervised(key, partial(self.poll_catalog, name)), name=key
                )
            elif kind == "gc":
                self.shard.run(key, self._supervised(key, self.collect), name=key)
            elif kind == "cluster":
                self.shard.run(
                    key, self._supervised(key, partial(self.probe_cluster, name)), name=key
                )

    async def _supervised(self, key: str, factory: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        while not self.stop.is_set() and self.membership.may_act(key):
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except FencedError:
                return
            except Exception:
                failures += 1
                delay = min(60.0, 2.0**failures) * random.uniform(0.5, 1.0)
                log.exception("%s failed; again in %.1fs", key, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)

    # -- repositories ----------------------------------------------------------------------------

    async def poll_repo(self, name: str) -> None:
        """Resolve GitRepo NAME's ref at its interval (or when a webhook pokes it); record the
        commit in its status, where every replica sees it."""
        from appflow.engine.repos import is_url
        from appflow.engine.sources import git_source
        from appflow.sources import git

        poke = self.pokes[name]
        failures = 0
        first = True
        while not self.stop.is_set():
            try:
                repo = await asyncio.to_thread(self.store.get_repo, name)
            except NotFoundError:
                return
            interval = self.options.poll_seconds or float(repo.poll_interval_seconds) or 3600.0
            poke.clear()
            if is_url(repo.url):
                hooked = _webhook_commit(self.objects["GitRepo"].get(name))
                try:
                    spec = git_source(repo)
                    commit = hooked or (await git.resolve(spec)).commit
                    if commit != repo.last_commit:
                        await git.fetch(
                            git.GitSource(
                                url=repo.url, ref=git.RefSpec.commit(commit), auth=spec.auth
                            )
                        )
                        await asyncio.to_thread(self.store.record_fetch, name, commit=commit)
                        log.info("repo %s moved to %s", name, commit[:12])
                    elif first:
                        # This replica took the repository: where it found it.
                        log.info("repo %s at %s (polled every %.0fs)", name, commit[:12], interval)
                    first = False
                    failures = 0
                except FencedError:
                    raise
                except AppflowError as err:
                    failures += 1
                    interval = min(600.0, interval * (2 ** min(failures, 4)))
                    await asyncio.to_thread(
                        self.store.add_event,
                        kind="failure",
                        trigger="poll",
                        outcome="fetch-failed",
                        message=f"repository {name}: {err}; next attempt in {interval:.0f}s",
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poke.wait(), interval * random.uniform(0.8, 1.2))

    async def poll_catalog(self, name: str) -> None:
        """Poll catalog repository NAME and upgrade its ``auto`` installs (appflow.hub.catalog)."""
        from appflow.hub.actions import HubEngine
        from appflow.hub.catalog import poll_catalog_repo
        from appflow.sources.catalog import default_catalog_dir

        # Its upgrades are requests, as `appflow catalog upgrade` makes against a hub.
        engine = HubEngine(
            self.store, push_view=self.push_store, requested_by=f"controller/{self.identity}"
        )
        await poll_catalog_repo(
            engine,
            name,
            catalog_dir=default_catalog_dir(),
            stop=self.stop,
            interval=self.options.poll_seconds,
        )

    async def collect(self) -> None:
        """Delete content nothing references, now and then (this replica owns the workspace's
        collector key)."""
        from appflow.hub.collect import collect

        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.options.collect_seconds)
            if self.stop.is_set():
                return
            await collect(self.store)

    # -- clusters ----------------------------------------------------------------------------------

    async def probe_cluster(self, name: str) -> None:
        """Probe push-mode cluster NAME (and count the apps on any cluster) now and then."""
        from appflow.engine.clusters import check_cluster

        while not self.stop.is_set():
            obj = self.objects["Cluster"].get(name)
            if obj is None:
                return
            status: dict[str, Any] = {}
            if res.cluster_mode(obj) == "push":
                status = await self._probe(obj, check_cluster)
            on = await self._deployments_on(name)
            if on is not None:
                status.update(cluster_apps(on))
            fresh = self.objects["Cluster"].get(name)
            if fresh is None:
                return
            current = fresh.get("status") or {}
            if any(current.get(k) != v for k, v in status.items()):
                await asyncio.to_thread(self.store.patch_status, fresh, status, conditional=False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.options.probe_seconds)

    async def _deployments_on(self, cluster: str) -> list[Manifest] | None:
        """The AppFlowDeployments on CLUSTER, of every replica's apps; None when they were
        counted since the last change any app's status shows (nothing to count again)."""
        apps = set(self.objects["AppFlow"])
        if apps <= self.viewed:
            # This replica's watch holds every app's Deployments (one replica, or a shard
            # that has all the apps): no request needed.
            return [d for a in apps if (d := self.deployments.get(a, {}).get(cluster))]
        if apps <= self.shard_apps():
            return None  # every app is this replica's, its watch has yet to list some: later
        # Other replicas' apps: their Deployments change outside this replica's watch, but
        # their owners aggregate every change into the AppFlow's status, which every replica
        # watches. Unchanged statuses since this cluster's last count: no list (a change that
        # left every app's status as it was is counted at the next full round).
        rounds = self.counted_rounds.get(cluster, 0)
        if self.counted.get(cluster) == self.statuses_changed and rounds < FULL_COUNT_EVERY:
            self.counted_rounds[cluster] = rounds + 1
            return None
        self.counted[cluster], self.counted_rounds[cluster] = self.statuses_changed, 0
        # Its namespace holds them; the API server's watch cache answers (counts may lag).
        return await self.read_kube.list_objects(
            API_VERSION,
            "AppFlowDeployment",
            namespace=cluster_namespace(self.workspace, cluster),
            label_selector=f"{LABEL_WORKSPACE}={self.workspace}",
            cached=True,
        )

    async def _probe(self, obj: Manifest, check: Any) -> dict[str, Any]:
        """The probe's conditions for push Cluster OBJ (its record is written by the probe)."""
        name = res.name_of(obj)
        before = (obj.get("status") or {}).get("conditions") or []
        now = utc_now()
        ref = res.secret_ref(obj)
        record = await asyncio.to_thread(self.store.get_cluster, name)
        if ref is None or record.kubeconfig_path is None:
            secret = ref[0] if ref else "(none)"
            reason = (
                f"the kubeconfig Secret {secret} (key {ref[1] if ref else 'kubeconfig'}) is missing"
            )
            return {
                "state": "Error",
                "reason": reason,
                "conditions": [
                    condition(
                        "Ready",
                        False,
                        reason="CredentialsMissing",
                        message=reason,
                        before=before,
                        now=now,
                        generation=None,
                    )
                ],
            }
        checked = await check(self.store, record, timeout=self.options.engine.request_timeout)
        ok = checked.state == "Online"
        why = (
            "CredentialsRejected"
            if "refused appflow's credentials" in checked.state_reason
            else ("Unreachable" if checked.state == "Offline" else checked.state)
        )
        return {
            "conditions": [
                condition(
                    "Ready",
                    ok,
                    reason="Online" if ok else why,
                    message=checked.state_reason
                    or f"{checked.node_count} node(s), {checked.k8s_version}",
                    before=before,
                    now=now,
                    generation=None,
                )
            ]
        }

    # -- loops -----------------------------------------------------------------------------------

    async def assign(self) -> None:
        generation = 0
        while not self.stop.is_set():
            generation = await self.membership.wait_changed(generation, timeout=1.0)
            gained = self.shard.take(self.membership.acting())
            self.forget(gained)
            if gained:
                if any(k.startswith("appflow/") for k in gained):
                    self.shard_moved.set()
                await self.take(gained)
                self.drift.changed.set()

    async def resync(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.options.resync_seconds)
            for app in self.owned_apps():
                self.queue_app(app, "poll")

    async def health(self) -> None:
        """Queue a health check for owned apps whose push Deployments are not Ready yet."""
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.options.health_seconds)
            push = {n for n, c in self.objects["Cluster"].items() if res.cluster_mode(c) == "push"}
            for app in self.owned_apps():
                for cluster, d in self.deployments.get(app, {}).items():
                    status = d.get("status") or {}
                    if (
                        cluster in push
                        and status.get("state") in ("NotReady", "Missing")
                        and status.get("appliedRevision") is not None
                    ):
                        self.queue_app(app, "watch", what=HEALTH)
                        break

    async def run(self) -> None:
        ws = self.workspace
        # The workspace's own kinds are listed and watched in its namespace alone: another
        # workspace's objects are not this controller's, and an event of one read as news here
        # (a Cluster of a workspace being deleted queued a sync of every app this replica owns).
        tasks = [
            *(
                asyncio.create_task(
                    follow(
                        self.read_kube,
                        kind,
                        handle,
                        self.stop,
                        namespace=ws,
                        listed=partial(self.seen.listed, kind),
                        failed=partial(self.seen.stopped, kind),
                    ),
                    name=f"{kind.lower()}s",
                )
                for kind, handle in (("AppFlow", self.on_appflow), ("GitRepo", self.on_gitrepo))
            ),
            asyncio.create_task(
                follow(self.read_kube, "Cluster", self.on_cluster, self.stop, namespace=ws),
                name="clusters",
            ),
            asyncio.create_task(
                follow(
                    self.read_kube, "CatalogRepo", self.on_catalog_repo, self.stop, namespace=ws
                ),
                name="catalogrepos",
            ),
            asyncio.create_task(
                follow(
                    self.read_kube,
                    "ClusterGroup",
                    self.on_group,
                    self.stop,
                    namespace=ws,
                    listed=lambda _found: setattr(self, "groups_watched", True),
                    failed=lambda: setattr(self, "groups_watched", False),
                ),
                name="clustergroups",
            ),
            asyncio.create_task(
                follow(
                    self.read_kube,
                    "AppFlowDeployment",
                    self.on_deployment,
                    self.stop,
                    label_selector=self.deployment_selector,
                    listed=self.deployments_listed,
                    restart=self.shard_moved,
                ),
                name="deployments",
            ),
            asyncio.create_task(self.heartbeats.run(self.stop), name="heartbeats"),
            asyncio.create_task(self.assign(), name="assign"),
            asyncio.create_task(self.resync(), name="resync"),
            asyncio.create_task(self.health(), name="health"),
            asyncio.create_task(self.drift.run(), name="drift"),
            *(
                asyncio.create_task(self.worker(), name=f"worker-{i}")
                for i in range(self.options.workers)
            ),
        ]
        if self.options.listen:
            tasks.append(
                asyncio.create_task(
                    _serve_health(
                        self.options.listen, lambda: self.membership.remaining() > 0, self.stop
                    ),
                    name="health-http",
                )
            )
        log.info(
            "controller %s: leases in %s, AppFlows of %s", self.identity, self.options.namespace, ws
        )
        try:
            await self.membership.run(self.stop)
        finally:
            self.stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.engine.close()
            for kube in (self.lease_kube, self.read_kube, self.write_kube):
                kube.close()


def _declaration(obj: Manifest) -> tuple[Any, Any]:
    """Where an AppFlow's labels and dependsOn live (its record is an annotation)."""
    meta = obj.get("metadata") or {}
    return meta.get("labels"), meta.get("annotations")


def _webhook_commit(obj: Manifest | None) -> str | None:
    text = (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_WEBHOOK)
    if not text:
        return None
    with contextlib.suppress(ValueError, AttributeError):
        commit = json.loads(text).get("commit")
        return str(commit) if commit else None
    return None


async def _serve_health(listen: str, ready: Callable[[], bool], stop: asyncio.Event) -> None:
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"--listen {listen!r}: expected HOST:PORT", where=Where(field="listen"))

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            request = (await reader.readline()).decode(errors="replace").split()
            path = request[1] if len(request) > 1 else "/"
            ok = path == "/healthz" or (path == "/readyz" and ready())
            known = path in ("/healthz", "/readyz")
            status = "200 OK" if ok else ("503 Service Unavailable" if known else "404 Not Found")
            body = status.split(" ", 1)[1].encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, host or "0.0.0.0", int(port))
    async with server:
        await stop.wait()


async def run_controller(options: ControllerOptions, *, stop: asyncio.Event | None = None) -> None:
    """Run one replica until STOP is set (or SIGTERM/SIGINT)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await Controller(options, stop=stop).run()

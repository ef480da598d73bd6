"""``HubStore``: the ``Store`` protocol over the hub's custom resources (docs/hub.md §3).

Every record lives where the design puts it: a cluster is a ``Cluster`` (its kubeconfig a
Secret), a group a ``ClusterGroup``, a repository a ``GitRepo``, an app an ``AppFlow`` (its
revisions and rollout in its status, their renders as content), a Deployment an
``AppFlowDeployment`` in its cluster's namespace (its sync history in its status, its inventory
and fingerprints as content), an event an ``events.k8s.io/v1`` Event, API tokens (hashes only)
a Secret. The mapping itself is ``appflow.model.resources``; this module does the I/O.

Methods block (the protocol's contract): async callers use ``asyncio.to_thread``.

**Transactions.** Kubernetes writes one object at a time. Inside ``transaction()`` the status
writes of one block are collected per object and sent as one merge patch per object when the
block ends, each conditional on the resourceVersion the block read (so a write that slipped
past the membership fence, or raced another writer, is a conflict, not a lost update). Reads
inside the block see its pending writes. The recorder shapes its blocks so that each touches
one Deployment: a finished sync's history entry and its state land in one write. Events, and
what this process remembers of running syncs, follow only once the block's writes landed, so
a block that failed on a conflict can be run again from fresh reads (the recorder does).

**Files.** With ``files`` given, a push-mode cluster's kubeconfig Secret is written to a 0600
file there (the engine's connections read files), and, in ``snapshot`` mode, an app of a
local folder is read from a copy of its uploaded snapshot; in ``upload`` mode (the CLI, hub
import) an app of a local folder is uploaded from that folder whenever it is written.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Collection, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import yaml

from appflow.errors import (
    AppflowError,
    ConfigError,
    ConflictError,
    NotFoundError,
    StoreError,
    Where,
    WriteConflict,
)
from appflow.hub.seen import Seen
from appflow.hub.snapshots import folder_files, write_files
from appflow.kube.client import KubeCluster
from appflow.kube.content import ContentStore
from appflow.model import content as fmt
from appflow.model import resources as res
from appflow.model.agent import rendered_on
from appflow.model.codec import JsonObject, from_json, to_json
from appflow.model.hub import (
    API_VERSION,
    DEFAULT_WORKSPACE,
    LABEL_CLUSTER,
    LABEL_WORKSPACE,
    MANAGED_BY,
    cluster_namespace,
)
from appflow.model.objects import Manifest
from appflow.model.policy import Policy, PolicyScope
from appflow.model.records import (
    AppRecord,
    CatalogInstall,
    CatalogRepoRecord,
    ClusterGroupRecord,
    ClusterRecord,
    DeploymentRecord,
    DeploymentSummary,
    EventRecord,
    RenderedObjects,
    RepoRecord,
    RevisionRecord,
    RolloutRecord,
    SourceRef,
    SyncLock,
    SyncOutcome,
    SyncRecord,
    SyncTrigger,
    TokenRecord,
    TokenScope,
    no_rollout,
    utc_now,
)
from appflow.model.webhooks import parse_secret_ref

log = logging.getLogger("appflow.hub.store")

T = TypeVar("T")
LocalFolders = Literal["upload", "snapshot"]
TOKENS_SECRET = "appflow-api-tokens"
SESSION_SECRET = "appflow-ui-session"
"""The dashboard's session-signing key, shared by every serve --hub of the workspace."""
REVISION_LIMIT = 20
HISTORY_LIMIT = 10
FIELD_MANAGER = "appflow"
TOKEN_USE_RECORDED_EVERY = 60.0
"""Seconds between two writes of a token's last use (every API request uses it)."""


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run CORO to its end from blocking code (in its own event loop; in a fresh thread when
    this thread already runs one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _not_found(what: str, name: str, command: str, where: Where | None = None) -> NotFoundError:
    return NotFoundError(
        f"no {what} named {name!r} on the hub", where=where, hint=f"see `{command}`"
    )


@dataclass
class _Pending:
    """One object's writes collected by a transaction."""

    api_version: str
    kind: str
    name: str
    namespace: str
    version: str | None
    """The resourceVersion read: the write is conditional on it (None: unconditional)."""
    status: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class HubFiles:
    """Where a HubStore writes the files the engine reads: kubeconfigs and snapshot copies."""

    root: Path
    local_folders: LocalFolders = "upload"

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path


class HubStore:
    """appflow's records as custom resources of WORKSPACE on the hub KUBE."""

    def __init__(
        self,
        kube: KubeCluster,
        *,
        workspace: str = DEFAULT_WORKSPACE,
        writer: str = "cli",
        files: HubFiles | None = None,
        push_only: bool = False,
        live_writers: Callable[[], Collection[str]] | None = None,
        revision_limit: int = REVISION_LIMIT,
        history_limit: int = HISTORY_LIMIT,
        content_of: HubStore | None = None,
        seen: Seen | None = None,
    ) -> None:
        """CONTENT_OF: another view of the same workspace whose content store, memory of
        renders and SEEN this one shares (a replica's push-only view records the revisions its
        whole view stages: what one wrote, the other need not read back from the hub).
        SEEN: what a controller replica's watches and writes show, read in place of GETs."""
        self.kube = kube
        self.workspace = workspace
        self.writer = writer
        """Who this store's writes are by (a controller replica, an agent, the CLI)."""
        self.files = files
        self.push_only = push_only
        """Clusters are those the engine can reach: push mode, with credentials."""
        self.live_writers = live_writers
        self.revision_limit = revision_limit
        self.history_limit = history_limit
        self.content: ContentStore = (
            content_of.content if content_of else ContentStore(kube, workspace)
        )
        self._local = threading.local()
        self._ids = itertools.count(1)
        self._syncs: dict[int, tuple[str, str, int]] = {}
        self._lock: threading.Lock = content_of._lock if content_of else threading.Lock()
        self._renders: dict[str, list[JsonObject]] = content_of._renders if content_of else {}
        self._token_used: dict[str, float] = {}
        self._sync_locks: dict[tuple[str, str], SyncLock] = {}
        self._locks_guard = threading.Lock()
        self._namespaces: set[str] = set()
        self.seen: Seen | None = content_of.seen if content_of else seen

    def close(self) -> None:
        self.kube.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _get(self, kind: str, name: str, namespace: str | None = None) -> Manifest | None:
        ns = self.workspace if namespace is None else namespace
        obj = self._read(kind, name, ns)
        pending = self._pending().get((kind, ns, name))
        if obj is not None and pending is not None and pending.status:
            obj = {**obj, "status": _merge(obj.get("status") or {}, pending.status)}
        return obj

    def _read(self, kind: str, name: str, namespace: str) -> Manifest | None:
        """The object from what the replica saw when that may stand in for a GET, else a GET."""
        if self.seen is None or kind not in self.seen.kinds:
            return self.kube.get_sync(API_VERSION, kind, name, namespace)
        found = self.seen.get(kind, namespace, name)
        if found is not None:
            return found
        epoch = self.seen.epoch(kind, namespace, name)
        obj = self.kube.get_sync(API_VERSION, kind, name, namespace)
        self.seen.read(kind, namespace, name, obj, epoch=epoch)
        return obj

    def _wrote(self, obj: Manifest | None) -> None:
        if self.seen is not None and obj is not None:
            self.seen.wrote(obj)

    def _deleted(self, kind: str, name: str) -> None:
        if self.seen is not None:
            self.seen.deleted(kind, self.workspace, name)

    def _list(
        self, kind: str, *, namespace: str | None = None, selector: str | None = None
    ) -> list[Manifest]:
        ns = self.workspace if namespace is None else namespace
        return self.kube.list_sync(API_VERSION, kind, namespace=ns, label_selector=selector)

    def _apply(self, obj: Manifest) -> Manifest:
        applied = self.kube.apply_sync(obj, force=True, field_manager=FIELD_MANAGER)
        self._wrote(applied)
        return applied

    def patch_status(
        self,
        obj: Manifest,
        status: Mapping[str, Any],
        *,
        conditional: bool = True,
    ) -> None:
        """Merge STATUS into OBJ's status (a JSON merge patch): now, or at the end of the
        transaction; CONDITIONAL on the resourceVersion OBJ was read at."""
        meta = obj.get("metadata") or {}
        key = (str(obj.get("kind")), str(meta.get("namespace", "")), str(meta.get("name")))
        pending = self._pending()
        if self._in_transaction():
            entry = pending.get(key)
            if entry is None:
                entry = pending[key] = _Pending(
                    api_version=str(obj.get("apiVersion")),
                    kind=key[0],
                    namespace=key[1],
                    name=key[2],
                    version=str(meta.get("resourceVersion")) if conditional else None,
                )
            entry.status = _merge(entry.status, dict(status), keep_none=True)
            return
        self._send(
            _Pending(
                api_version=str(obj.get("apiVersion")),
                kind=key[0],
                namespace=key[1],
                name=key[2],
                version=str(meta.get("resourceVersion")) if conditional else None,
                status=dict(status),
            )
        )

    def _send(self, pending: _Pending) -> None:
        patch: dict[str, Any] = {"status": pending.status}
        if pending.version:
            patch["metadata"] = {"resourceVersion": pending.version}
        try:
            written = self.kube.patch_sync(
                pending.api_version,
                pending.kind,
                pending.name,
                pending.namespace,
                patch,
                subresource="status",
            )
        except ConflictError as err:
            if self.seen is not None:
                # Its version may have come from a copy the watch had not updated yet.
                self.seen.forget(pending.kind, pending.namespace, pending.name)
            raise WriteConflict(
                f"{pending.kind} {pending.namespace}/{pending.name} changed while it was "
                f"being written: {err.message}",
                where=Where(object=f"{pending.kind}/{pending.namespace}/{pending.name}"),
                hint="another writer changed it (the CLI, or the replica the membership moved "
                "it from); the next attempt reads it again",
            ) from err
        self._wrote(written)

    def _afterwards(self) -> list[Callable[[], None]]:
        """What the transaction in progress does once its writes have all landed."""
        after = getattr(self._local, "after", None)
        if after is None:
            after = self._local.after = []
        return cast(list[Callable[[], None]], after)

    def _after_commit(self, action: Callable[[], None]) -> None:
        """ACTION once the transaction's writes have landed (now, outside one): a block that
        failed on a conflict leaves no trace of it, so the block can be run again."""
        if self._in_transaction():
            self._afterwards().append(action)
        else:
            action()

    def _pending(self) -> dict[tuple[str, str, str], _Pending]:
        pending = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = {}
        return cast(dict[tuple[str, str, str], _Pending], pending)

    def _in_transaction(self) -> bool:
        return bool(getattr(self._local, "depth", 0))

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        try:
            yield
        except BaseException:
            if depth == 0:
                self._pending().clear()
                self._afterwards().clear()
            raise
        finally:
            self._local.depth = depth
        if depth == 0:
            pending = list(self._pending().values())
            self._pending().clear()
            after = list(self._afterwards())
            self._afterwards().clear()
            for entry in pending:
                self._send(entry)
            for action in after:
                action()

    def get_objects(self, digest: str) -> list[JsonObject]:
        """The objects stored as content DIGEST (by put_objects)."""
        cached = self._renders.get(digest)
        if cached is None:
            cached = cast(list[JsonObject], run_blocking(self.content.get_render(digest)))
            self._remember(digest, cached)
        return cached

    def put_objects(
        self,
        objects: Sequence[Mapping[str, Any]],
        *,
        base: str | None = None,
        chunk_min: int = fmt.CHUNK_MIN,
    ) -> str:
        """Store OBJECTS as content (chunked, indexed, a delta of BASE); the index's digest."""
        stored = run_blocking(
            self.content.put_render([dict(o) for o in objects], base=base, chunk_min=chunk_min)
        )
        self._remember(stored.digest, [dict(o) for o in objects])
        return stored.digest

    def _remember(self, digest: str, objects: list[JsonObject]) -> None:
        with self._lock:
            if len(self._renders) > 4096:
                self._renders.clear()
            self._renders[digest] = objects

    # -- clusters -------------------------------------------------------------------------------

    def _ensure_namespace(self, namespace: str) -> None:
        if namespace in self._namespaces:
            return
        self.kube.apply_sync(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": namespace,
                    "labels": {**MANAGED_BY, LABEL_WORKSPACE: self.workspace},
                },
            },
            field_manager=FIELD_MANAGER,
        )
        self._namespaces.add(namespace)

    def _kubeconfig_secret(self, record: ClusterRecord) -> str | None:
        """Write RECORD's kubeconfig (a file of this machine) into its Secret; its name."""
        path = record.kubeconfig_path
        if not path or (self.files is not None and Path(path).is_relative_to(self.files.root)):
            return None  # none, or the copy this store made of the Secret: unchanged
        try:
            document = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(
                f"cannot read the kubeconfig to store it on the hub: {err}",
                where=Where(cluster=record.name, file=path),
            ) from err
        if record.context and isinstance(document, dict):
            document["current-context"] = record.context
        name = res.cluster_secret_name(record.name)
        kubeconfig = yaml.safe_dump(document, sort_keys=False).encode()
        self._put_secret(name, {res.SECRET_KEY_KUBECONFIG: kubeconfig})
        return name

    def _put_secret(self, name: str, data: Mapping[str, bytes]) -> None:
        """Create or replace the workspace's Secret NAME holding DATA."""
        self.kube.apply_sync(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": name, "namespace": self.workspace, "labels": dict(MANAGED_BY)},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
            },
            force=True,
            field_manager=FIELD_MANAGER,
        )

    def put_cluster(self, cluster: ClusterRecord) -> ClusterRecord:
        existing = self._get("Cluster", cluster.name)
        secret = self._kubeconfig_secret(cluster)
        if secret is None and existing is not None:
            secret = (res.secret_ref(existing) or (None, None))[0]
        namespace = cluster_namespace(self.workspace, cluster.name)
        wanted = res.cluster_resource(cluster, workspace=self.workspace, secret=secret)
        if existing is not None and _same_spec(existing, wanted):
            # A status change only (a probe, a sync that saw it): no write of the spec, which
            # the controllers' RBAC would not allow for more than a cluster's own labels.
            stored = existing
        else:
            self._ensure_namespace(namespace)
            stored = self._apply(wanted)
        self.patch_status(
            stored, res.cluster_status(cluster, namespace=namespace), conditional=False
        )
        return self.get_cluster(cluster.name)

    def get_cluster(self, name: str) -> ClusterRecord:
        obj = self._get("Cluster", name)
        if obj is None:
            raise _not_found("cluster", name, "appflow cluster list", Where(cluster=name))
        return self._cluster_of(obj)

    def _cluster_of(self, obj: Manifest) -> ClusterRecord:
        return res.cluster_record(obj, kubeconfig_path=self._kubeconfig_file(obj))

    def _kubeconfig_file(self, obj: Manifest) -> str | None:
        """The kubeconfig of a push-mode Cluster, from its Secret into a 0600 file."""
        ref = res.secret_ref(obj)
        if ref is None or self.files is None:
            return None
        secret = self.kube.get_sync("v1", "Secret", ref[0], self.workspace)
        encoded = ((secret or {}).get("data") or {}).get(ref[1])
        if not encoded:
            return None
        data = base64.b64decode(encoded)
        folder = self.files.folder("kubeconfigs")
        target = folder / f"{res.name_of(obj)}-{hashlib.sha256(data).hexdigest()[:12]}.kubeconfig"
        if not target.is_file():
            fd, tmp = _private_file(folder)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        return str(target)

    def list_clusters(self) -> list[ClusterRecord]:
        out = []
        for obj in self._list("Cluster"):
            if self.push_only and res.cluster_mode(obj) != "push":
                continue
            record = self._cluster_of(obj)
            if self.push_only and record.kubeconfig_path is None:
                continue  # its credentials are missing: the cluster's status says so
            out.append(record)
        return sorted(out, key=lambda c: c.name)

    def cluster_objects(self) -> list[Manifest]:
        """The Cluster resources themselves (their mode, conditions and secret references)."""
        return self._list("Cluster")

    def delete_cluster(self, name: str, *, with_deployments: bool = False) -> None:
        obj = self._get("Cluster", name)
        if obj is None:
            raise _not_found("cluster", name, "appflow cluster list", Where(cluster=name))
        deployments = self.list_deployments(cluster=name)
        if deployments and not with_deployments:
            raise StoreError(
                f"cluster {name} still has {len(deployments)} deployment(s): "
                + ", ".join(sorted(d.app for d in deployments)),
                where=Where(cluster=name),
                hint="remove the apps from it first, or force the removal",
            )
        for obj in self.deployment_objects(cluster=name, with_unreported=True):
            self._remove_deployment(str((obj.get("spec") or {}).get("app")), name)
        self.kube.delete_sync(API_VERSION, "Cluster", name, self.workspace)
        ref = res.secret_ref(obj)
        if ref is not None:
            self.kube.delete_sync("v1", "Secret", ref[0], self.workspace)

    # -- groups -----------------------------------------------------------------------------------

    def put_group(self, group: ClusterGroupRecord) -> ClusterGroupRecord:
        self._apply(res.group_resource(group, workspace=self.workspace))
        return self.get_group(group.name)

    def get_group(self, name: str) -> ClusterGroupRecord:
        obj = self._get("ClusterGroup", name)
        if obj is None:
            raise _not_found("cluster group", name, "appflow group list")
        return res.group_record(obj)

    def list_groups(self) -> list[ClusterGroupRecord]:
        return sorted((res.group_record(o) for o in self._list("ClusterGroup")), key=_by_name)

    def delete_group(self, name: str) -> None:
        if not self.kube.delete_sync(API_VERSION, "ClusterGroup", name, self.workspace):
            raise _not_found("cluster group", name, "appflow group list")

    # -- repos ------------------------------------------------------------------------------------

    def _webhook_secret(self, repo: RepoRecord) -> str | None:
        ref = repo.webhook_secret_ref
        if not ref:
            return None
        if ref.startswith("secret:"):
            return ref.removeprefix("secret:").split("/", 1)[0]
        value = _read_secret_ref(ref)
        name = res.webhook_secret_name(repo.name)
        self._put_secret(name, {res.SECRET_KEY_WEBHOOK: value})
        return name

    def put_repo(self, repo: RepoRecord) -> RepoRecord:
        stored = self._apply(
            res.repo_resource(
                repo, workspace=self.workspace, webhook_secret=self._webhook_secret(repo)
            )
        )
        if repo.last_commit:
            self.patch_status(
                stored, res.repo_status(repo.last_commit, repo.last_fetched), conditional=False
            )
        return self.get_repo(repo.name)

    def get_repo(self, name: str) -> RepoRecord:
        obj = self._get("GitRepo", name)
        if obj is None:
            raise _not_found("repo", name, "appflow repo list")
        return res.repo_record(obj)

    def record_fetch(self, name: str, *, commit: str) -> None:
        obj = self._get("GitRepo", name)
        if obj is None:
            raise _not_found("repo", name, "appflow repo list")
        self.patch_status(obj, res.repo_status(commit, utc_now()), conditional=False)

    # -- catalog repositories -------------------------------------------------------------

    def put_catalog_repo(self, repo: CatalogRepoRecord) -> CatalogRepoRecord:
        self._apply(res.catalog_repo_resource(repo, workspace=self.workspace))
        return self.get_catalog_repo(repo.name)

    def get_catalog_repo(self, name: str) -> CatalogRepoRecord:
        obj = self._get("CatalogRepo", name)
        if obj is None:
            raise _not_found("catalog repository", name, "appflow catalog repo list")
        return res.catalog_repo_record(obj)

    def list_catalog_repos(self) -> list[CatalogRepoRecord]:
        return sorted(map(res.catalog_repo_record, self._list("CatalogRepo")), key=_by_name)

    def delete_catalog_repo(self, name: str) -> None:
        if not self.kube.delete_sync(API_VERSION, "CatalogRepo", name, self.workspace):
            raise _not_found("catalog repository", name, "appflow catalog repo list")

    def list_repos(self) -> list[RepoRecord]:
        return sorted((res.repo_record(o) for o in self._list("GitRepo")), key=_by_name)

    def delete_repo(self, name: str) -> None:
        self.get_repo(name)
        apps = sorted(a.name for a in self.list_apps() if a.repo == name)
        if apps:
            raise StoreError(
                f"repo {name} still has apps: {', '.join(apps)}",
                where=Where(object=f"GitRepo/{name}"),
                hint="delete them first: appflow app delete NAME",
            )
        self.kube.delete_sync(API_VERSION, "GitRepo", name, self.workspace)
        self._deleted("GitRepo", name)

    def webhook_secret(self, ref: str) -> bytes:
        """The webhook secret a repository's ``secret:NAME/KEY`` reference names, read now."""
        name, _, key = ref.removeprefix("secret:").partition("/")
        secret = self.kube.get_sync("v1", "Secret", name, self.workspace)
        encoded = ((secret or {}).get("data") or {}).get(key or res.SECRET_KEY_WEBHOOK)
        if not encoded:
            raise ConfigError(
                f"the webhook secret {name} (key {key}) is missing on the hub",
                where=Where(object=f"Secret/{self.workspace}/{name}"),
                hint="set it again: appflow repo set-webhook-secret",
            )
        return base64.b64decode(encoded).strip()

    # -- apps ---------------------------------------------------------------------------------------

    def local_spec(self, app: AppRecord) -> dict[str, str] | None:
        """The ``spec.local`` of APP as its folder holds it now (its files uploaded; only
        the chunks that changed are new)."""
        return self._local_of(app, self._get("AppFlow", app.name))

    def _local_of(self, app: AppRecord, existing: Manifest | None) -> dict[str, str] | None:
        """spec.local of APP's AppFlow: uploaded now (upload mode), else as it was."""
        if app.source != "local":
            return None
        kept = res.local_source(existing) if existing is not None else None
        uploading = self.files is None or self.files.local_folders == "upload"
        if not uploading and kept is not None:
            return kept
        folder = Path(app.local_path or "")
        source = folder / app.path if app.path else folder
        snapshot = self.put_objects(folder_files(source), base=kept["snapshot"] if kept else None)
        return {"folder": str(folder), "snapshot": snapshot}

    def _with_chart_snapshot(
        self, app: AppRecord, obj: Manifest, existing: Manifest | None
    ) -> None:
        """A catalog install of a local chart carries its chart's files as content."""
        install = app.catalog
        if install is None or install.chart.kind != "local":
            return
        annotations = obj["metadata"]["annotations"]
        record = json.loads(annotations[res.ANNOTATION_RECORD])
        before = chart_snapshot(existing) if existing is not None else None
        folder = Path(install.chart.snapshot or "")
        if self.files is not None and self.files.local_folders == "snapshot" and before:
            record["chartSnapshot"] = before
        elif (folder / "Chart.yaml").is_file():
            record["chartSnapshot"] = self.put_objects(folder_files(folder))
        elif before:
            record["chartSnapshot"] = before
        annotations[res.ANNOTATION_RECORD] = json.dumps(record, sort_keys=True)

    def put_app(self, app: AppRecord) -> AppRecord:
        existing = self._get("AppFlow", app.name)
        obj = res.app_resource(app, workspace=self.workspace, local=self._local_of(app, existing))
        self._with_chart_snapshot(app, obj, existing)
        self._apply(obj)
        return self.get_app(app.name)

    def get_app(self, name: str) -> AppRecord:
        return self.app_of(self.app_object(name))

    def patch_app(self, name: str, patch: Manifest) -> Manifest:
        """JSON merge PATCH of app NAME's AppFlow (a sync request); the object as written. A
        replica reads it back as written: its watch may deliver the write after the read."""
        written = self.kube.patch_sync(API_VERSION, "AppFlow", name, self.workspace, patch)
        self._wrote(written)
        return written

    def app_object(self, name: str) -> Manifest:
        """The AppFlow of app NAME as stored (NotFoundError when there is none)."""
        obj = self._get("AppFlow", name)
        if obj is None:
            raise _not_found("app", name, "appflow app list", Where(app=name))
        return obj

    def app_of(self, obj: Manifest) -> AppRecord:
        """The AppRecord of an AppFlow, with its local files where this store reads them."""
        local = res.local_source(obj)
        record = res.app_record(obj, local_path=local["folder"] if local else None)
        if local is not None and self.files is not None and self.files.local_folders == "snapshot":
            # The snapshot holds the app's folder: its copy goes where the app's path says,
            # under a root of its own, as the app's folder was under the registered folder.
            root = self.files.folder("snapshots") / local["snapshot"]
            self._snapshot_folder(local["snapshot"], root / record.path if record.path else root)
            record = replace(record, local_path=str(root))
        chart = chart_snapshot(obj)
        if (
            chart
            and record.catalog is not None
            and self.files is not None
            and self.files.local_folders == "snapshot"
        ):
            folder = str(self._snapshot_folder(chart, self.files.folder("charts") / chart))
            install: CatalogInstall = record.catalog
            record = replace(
                record, catalog=replace(install, chart=replace(install.chart, snapshot=folder))
            )
        return record

    def _snapshot_folder(self, digest: str, target: Path) -> Path:
        """TARGET holding the files of snapshot DIGEST (written once: a snapshot never changes)."""
        if target.is_dir():
            return target
        return write_files(self.get_objects(digest), target)

    def list_apps(self) -> list[AppRecord]:
        out = []
        for obj in self._list("AppFlow"):
            try:
                out.append(self.app_of(obj))
            except AppflowError as err:
                # One unreadable AppFlow (a newer appflow's, a hand edit) does not hide the rest;
                # its owner marks it with a condition.
                log.warning("AppFlow %s: %s", res.name_of(obj), err)
        return sorted(out, key=_by_name)

    def app_objects(self) -> list[Manifest]:
        return self._list("AppFlow")

    def delete_app(self, name: str, *, with_deployments: bool = False) -> None:
        self.app_object(name)
        deployments = self.list_deployments(app=name)
        if deployments and not with_deployments:
            raise StoreError(
                f"app {name} is still deployed to {', '.join(sorted(d.cluster for d in deployments))}",
                where=Where(app=name),
                hint="appflow app delete prunes it first",
            )
        for obj in self.deployment_objects(app=name, with_unreported=True):
            self._remove_deployment(name, str((obj.get("spec") or {}).get("cluster")))
        self.kube.delete_sync(API_VERSION, "AppFlow", name, self.workspace)
        self._deleted("AppFlow", name)

    # -- revisions ------------------------------------------------------------------------------------

    def add_revision(
        self,
        app: str,
        *,
        digest: str,
        source_ref: SourceRef,
        rendered: RenderedObjects,
        message: str = "",
    ) -> RevisionRecord:
        obj = self.app_object(app)
        entries = res.revisions_of(obj)
        previous = entries[-1].get("rendered") if entries else None
        base = self._cluster_indexes(str(previous)) if previous else {}
        by_render: dict[str, str] = {}
        digested: dict[tuple[int, ...], tuple[str, str]] = {}
        lines: list[JsonObject] = []
        for cluster in sorted(rendered):
            objects = rendered[cluster]
            # Clusters that share a render hold the same objects (hub.publish): digested
            # once, not once per cluster (the objects live until this returns, so their ids
            # name them).
            same = tuple(map(id, objects))
            if same not in digested:
                digested[same] = (
                    hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest(),
                    fmt.render_digest(objects),
                )
            key, render_digest = digested[same]
            index = by_render.get(key)
            if index is None:
                index = by_render[key] = self.put_objects(objects, base=base.get(cluster))
            line: JsonObject = {"cluster": cluster, "index": index, "renderDigest": render_digest}
            if rendered_on(objects) == "agent":
                line["renderOn"] = "agent"  # what the agent is sent: inputs, not objects
            lines.append(line)
        listing = self.put_objects(lines, chunk_min=fmt.LISTING_CHUNK_MIN)
        number = max((int(e["number"]) for e in entries), default=0) + 1
        record = RevisionRecord(
            app=app,
            number=number,
            digest=digest,
            source_ref=source_ref,
            rendered=rendered,
            message=message,
        )
        kept = [*entries, res.revision_entry(record, rendered=listing)][-self.revision_limit :]
        self.patch_status(
            obj,
            {
                "revisions": kept,
                "revision": number,
                "sourceRef": res.source_ref_text(source_ref),
            },
        )
        return record

    def _cluster_indexes(self, listing: str) -> dict[str, str]:
        return {str(o["cluster"]): str(o["index"]) for o in self.get_objects(listing)}

    def revision_listing(self, app: str, number: int) -> dict[str, JsonObject]:
        """Per cluster, where revision NUMBER of APP's render is: ``{index, renderDigest}``."""
        for entry in res.revisions_of(self.app_object(app)):
            if int(entry["number"]) == number and entry.get("rendered"):
                lines = self.get_objects(str(entry["rendered"]))
                return {str(o["cluster"]): o for o in lines}
        return {}

    def _revision_of(self, app: str, entry: Mapping[str, Any], *, rendered: bool) -> RevisionRecord:
        objects: dict[str, list[JsonObject]] = {}
        if rendered and entry.get("rendered"):
            for cluster, index in self._cluster_indexes(str(entry["rendered"])).items():
                objects[cluster] = self.get_objects(index)
        return res.revision_record(app, entry, rendered=objects)

    def get_revision(self, app: str, number: int) -> RevisionRecord:
        for entry in res.revisions_of(self.app_object(app)):
            if int(entry["number"]) == number:
                return self._revision_of(app, entry, rendered=True)
        raise NotFoundError(
            f"app {app} has no revision {number} on the hub (it keeps the last "
            f"{self.revision_limit})",
            where=Where(app=app),
            hint=f"see `appflow app history {app}`",
        )

    def list_revisions(self, app: str, *, with_rendered: bool = False) -> list[RevisionRecord]:
        return [
            self._revision_of(app, e, rendered=with_rendered)
            for e in res.revisions_of(self.app_object(app))
        ]

    def latest_revision(self, app: str, *, with_rendered: bool = True) -> RevisionRecord | None:
        entries = res.revisions_of(self.app_object(app))
        return self._revision_of(app, entries[-1], rendered=with_rendered) if entries else None

    # -- deployments ------------------------------------------------------------------------------------

    def _deployment_namespace(self, cluster: str) -> str:
        return cluster_namespace(self.workspace, cluster)

    def deployment_object(self, app: str, cluster: str) -> Manifest | None:
        return self._get(
            "AppFlowDeployment", res.deployment_name(app), self._deployment_namespace(cluster)
        )

    def _ensure_deployment(self, app: str, cluster: str) -> Manifest:
        found = self.deployment_object(app, cluster)
        if found is not None:
            return found
        namespace = self._deployment_namespace(cluster)
        self._ensure_namespace(namespace)
        manifest = res.deployment_resource(
            app, cluster, workspace=self.workspace, namespace=namespace
        )
        created = self.kube.create_sync(manifest)
        if created is None:  # created meanwhile
            created = self.deployment_object(app, cluster)
        if created is None:
            raise StoreError(f"the AppFlowDeployment of {app} on {cluster} vanished")
        return created

    def put_deployment(self, deployment: DeploymentRecord) -> DeploymentRecord:
        obj = self._ensure_deployment(deployment.app, deployment.cluster)
        record = replace(deployment, updated_at=utc_now())
        inventory = (
            self.put_objects(res.inventory_objects(record), base=res.inventory_digest(obj))
            if res.has_inventory_data(record)
            else None
        )
        self.patch_status(obj, res.deployment_status(record, inventory=inventory))
        return record

    def _deployment_of(self, obj: Manifest) -> DeploymentRecord:
        digest = res.inventory_digest(obj)
        lines = self.get_objects(digest) if digest else []
        return res.deployment_record(obj, inventory=lines)

    def get_deployment(self, app: str, cluster: str) -> DeploymentRecord:
        obj = self.deployment_object(app, cluster)
        if obj is None or not (obj.get("status") or {}).get("state"):
            raise NotFoundError(
                f"app {app} is not deployed to cluster {cluster}",
                where=Where(app=app, cluster=cluster),
                hint=f"see `appflow app show {app}`",
            )
        return self._deployment_of(obj)

    def deployment_objects(
        self, *, app: str | None = None, cluster: str | None = None, with_unreported: bool = False
    ) -> list[Manifest]:
        """The AppFlowDeployments (of APP, on CLUSTER); WITH_UNREPORTED also those whose
        cluster has reported nothing yet (a pull cluster's staged desired state)."""
        selector = [f"{LABEL_WORKSPACE}={self.workspace}"]
        if app:
            selector.append(f"{res.LABEL_APP}={app}")
        if cluster:
            selector.append(f"{LABEL_CLUSTER}={cluster}")
        namespace = self._deployment_namespace(cluster) if cluster else ""
        found = self._list("AppFlowDeployment", namespace=namespace, selector=",".join(selector))
        if with_unreported:
            return found
        return [o for o in found if (o.get("status") or {}).get("state")]

    def list_deployments(
        self, *, app: str | None = None, cluster: str | None = None
    ) -> list[DeploymentRecord]:
        out = [self._deployment_of(o) for o in self.deployment_objects(app=app, cluster=cluster)]
        return sorted(out, key=lambda d: (d.app, d.cluster))

    def list_deployment_summaries(
        self, *, apps: Sequence[str] | None = None, states: Sequence[str] | None = None
    ) -> list[DeploymentSummary]:
        wanted = set(apps) if apps is not None else None
        out = []
        for obj in self.deployment_objects():
            summary = res.deployment_summary(obj)
            if wanted is not None and summary.app not in wanted:
                continue
            if states is not None and summary.state not in states:
                continue
            out.append(summary)
        return sorted(out, key=lambda s: (s.app, s.cluster))

    def delete_deployment(self, app: str, cluster: str) -> None:
        """APP is no longer deployed to CLUSTER. Its AppFlowDeployment keeps its sync history
        (as standalone keeps a deleted Deployment's syncs) until the app itself is deleted."""
        obj = self.deployment_object(app, cluster)
        if obj is None:
            return
        if not res.history_of(obj):
            self._remove_deployment(app, cluster)
            return
        self.patch_status(
            obj,
            {
                **dict.fromkeys(
                    ("state", "message", "appliedRevision", "desiredRevision", "resourceCounts"),
                    None,
                ),
                **dict.fromkeys(("failing", "inventory"), None),
                "display": {"state": "Removed"},
                "updatedAt": res.stamp(utc_now()),
            },
        )

    def _remove_deployment(self, app: str, cluster: str) -> None:
        namespace = self._deployment_namespace(cluster)
        name = res.deployment_name(app)
        self._pending().pop(("AppFlowDeployment", namespace, name), None)
        self.kube.delete_sync(API_VERSION, "AppFlowDeployment", name, namespace)

    # -- rollouts -------------------------------------------------------------------------------------

    def put_rollout(self, rollout: RolloutRecord) -> RolloutRecord:
        obj = self.app_object(rollout.app)
        record = replace(rollout, updated_at=utc_now())
        self.patch_status(obj, {"rollout": res.rollout_status(record)}, conditional=False)
        return record

    def get_rollout(self, app: str) -> RolloutRecord:
        data = (self.app_object(app).get("status") or {}).get("rollout")
        if not data:
            raise no_rollout(app)
        return res.rollout_record(app, data)

    # -- sync history -----------------------------------------------------------------------------------

    def start_sync(
        self,
        app: str,
        cluster: str,
        *,
        revision: int | None,
        trigger: SyncTrigger,
        actor: str = "",
    ) -> SyncRecord:
        obj = self._ensure_deployment(app, cluster)
        history = res.history_of(obj)
        seq = max((int(e.get("id", 0)) for e in history), default=0) + 1
        record = SyncRecord(
            id=seq,
            app=app,
            cluster=cluster,
            revision=revision,
            trigger=trigger,
            actor=actor,
            started_at=utc_now(),
        )
        entry = res.history_entry(record, writer=self.writer)
        self.patch_status(
            obj, {"history": res.bounded_history(history, entry, limit=self.history_limit)}
        )
        # Syncs are numbered per Deployment on the hub; the id this process hands out is its
        # own, so that two clusters' syncs of one app never share one.
        with self._lock:
            handle = next(self._ids)

        def started() -> None:
            with self._lock:
                self._syncs[handle] = (app, cluster, seq)

        self._after_commit(started)
        return replace(record, id=handle)

    def finish_sync(
        self,
        sync_id: int,
        *,
        outcome: SyncOutcome,
        counts: dict[str, int] | None = None,
        message: str = "",
        objects: dict[str, str] | None = None,
    ) -> SyncRecord:
        with self._lock:
            found = self._syncs.get(sync_id)
        if found is None:
            raise NotFoundError(f"no sync {sync_id} was started by this process")

        def finished() -> None:
            with self._lock:
                self._syncs.pop(sync_id, None)

        self._after_commit(finished)
        app, cluster, seq = found
        obj = self.deployment_object(app, cluster)
        if obj is None:
            raise NotFoundError(f"the AppFlowDeployment of {app} on {cluster} is gone")
        history = res.history_of(obj)
        current = next((e for e in history if int(e.get("id", 0)) == seq), None)
        if current is None:
            raise StoreError(f"sync {seq} of {app} on {cluster} is no longer in its history")
        record = replace(
            res.sync_record(app, cluster, current, sync_id=seq),
            finished_at=utc_now(),
            outcome=outcome,
            counts=dict(counts or {}),
            message=message,
        )
        entry = res.history_entry(record, writer=str(current.get("writer") or self.writer))
        self.patch_status(
            obj, {"history": res.bounded_history(history, entry, limit=self.history_limit)}
        )
        return replace(record, id=sync_id)

    def get_sync(self, sync_id: int) -> SyncRecord:
        with self._lock:
            found = self._syncs.get(sync_id)
        if found is None:
            raise NotFoundError(f"no sync {sync_id} is running in this process")
        app, cluster, seq = found
        obj = self.deployment_object(app, cluster)
        for entry in res.history_of(obj or {}):
            if int(entry.get("id", 0)) == seq:
                return replace(res.sync_record(app, cluster, entry, sync_id=seq), id=sync_id)
        raise NotFoundError(f"sync {sync_id} is gone from the history of {app} on {cluster}")

    def _syncs_of(self, objects: Sequence[Manifest]) -> list[SyncRecord]:
        out: list[SyncRecord] = []
        for obj in objects:
            spec = obj.get("spec") or {}
            app, cluster = str(spec.get("app", "")), str(spec.get("cluster", ""))
            out.extend(
                res.sync_record(app, cluster, e, sync_id=int(e.get("id", 0)))
                for e in res.history_of(obj)
            )
        return out

    def list_syncs(
        self, app: str, *, cluster: str | None = None, limit: int = 50
    ) -> list[SyncRecord]:
        syncs = self._syncs_of(
            self.deployment_objects(app=app, cluster=cluster, with_unreported=True)
        )
        syncs.sort(key=lambda s: (s.started_at, s.cluster, s.id), reverse=True)
        return syncs[:limit]

    def running_syncs(self) -> list[SyncRecord]:
        found = self._syncs_of(self.deployment_objects(with_unreported=True))
        return [s for s in found if s.outcome == "running"]

    def recover_interrupted(self, *, app: str | None = None) -> list[SyncRecord]:
        """Mark as interrupted the running syncs whose writer is not live; with APP, every
        running sync of APP (its new owner asks: whoever ran them stopped working on it)."""
        live: set[str] = set()
        if app is None:
            live = set(self.live_writers()) if self.live_writers is not None else {self.writer}
        recovered = []
        for obj in self.deployment_objects(app=app, with_unreported=True):
            history = res.history_of(obj)
            stale = [
                e for e in history if e.get("outcome") == "running" and e.get("writer") not in live
            ]
            if not stale:
                continue
            spec = obj.get("spec") or {}
            for entry in stale:
                entry.update(
                    outcome="interrupted",
                    finishedAt=res.stamp(utc_now()),
                    message=f"interrupted: {entry.get('writer') or 'its writer'} stopped before "
                    "it finished; the app's next owner re-synced it",
                )
                recovered.append(
                    res.sync_record(
                        str(spec.get("app")),
                        str(spec.get("cluster")),
                        entry,
                        sync_id=int(entry["id"]),
                    )
                )
            self.patch_status(obj, {"history": history})
        for sync in recovered:
            self.add_event(
                kind="failure",
                app=sync.app,
                cluster=sync.cluster,
                trigger=sync.trigger,
                outcome="interrupted",
                message=f"sync {sync.id} of revision {sync.revision} was interrupted",
            )
        return recovered

    # -- events -------------------------------------------------------------------------------------

    def add_event(
        self,
        *,
        kind: str,
        message: str,
        app: str | None = None,
        cluster: str | None = None,
        trigger: str | None = None,
        commit: str | None = None,
        outcome: str | None = None,
        time: datetime | None = None,
    ) -> EventRecord:
        moment = time or utc_now()
        # Ordered by time across replicas, unique by the random low digits.
        event_id = int(moment.timestamp() * 1_000_000) * 1000 + secrets.randbelow(1000)
        record = EventRecord(
            id=event_id,
            time=moment,
            kind=kind,
            message=message,
            app=app,
            cluster=cluster,
            trigger=trigger,
            commit=commit,
            outcome=outcome,
        )
        manifest = res.event_manifest(
            event_id=event_id,
            workspace=self.workspace,
            kind=kind,
            message=message,
            app=app,
            cluster=cluster,
            trigger=trigger,
            commit=commit,
            outcome=outcome,
            time=moment,
            reporter=self.writer,
        )

        def create() -> None:
            try:
                self.kube.create_sync(manifest)
            except AppflowError as err:
                # Events are best effort (docs/hub.md §3): the records they report are written.
                log.warning("event not recorded (%s): %s", err, message)

        # In a transaction, once its writes landed: an event never reports a write that a
        # conflict undid, nor twice a block that was run again.
        self._after_commit(create)
        return record

    def list_events(
        self,
        *,
        app: str | None = None,
        cluster: str | None = None,
        since_id: int | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        selector = [f"{k}={v}" for k, v in MANAGED_BY.items()]
        if app:
            selector.append(f"{res.LABEL_APP}={app}")
        if cluster:
            selector.append(f"{LABEL_CLUSTER}={cluster}")
        found = self.kube.list_sync(
            "events.k8s.io/v1", "Event", namespace=self.workspace, label_selector=",".join(selector)
        )
        records = [r for r in map(res.event_record, found) if r is not None]
        if since_id is not None:
            records = [r for r in records if r.id > since_id]
            records.sort(key=lambda r: r.id)
            return records[:limit]
        records.sort(key=lambda r: r.id)
        return records[-limit:]

    # -- API tokens ------------------------------------------------------------------------------------

    def _tokens(self) -> tuple[dict[str, dict[str, Any]], str | None]:
        secret = self.kube.get_sync("v1", "Secret", TOKENS_SECRET, self.workspace)
        data = (secret or {}).get("data") or {}
        tokens = {k: json.loads(base64.b64decode(v)) for k, v in data.items()}
        version = ((secret or {}).get("metadata") or {}).get("resourceVersion")
        return tokens, version

    def _write_tokens(self, tokens: Mapping[str, Mapping[str, Any]], version: str | None) -> None:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": TOKENS_SECRET,
                "namespace": self.workspace,
                "labels": dict(MANAGED_BY),
            },
            "data": {
                k: base64.b64encode(json.dumps(v, sort_keys=True).encode()).decode()
                for k, v in tokens.items()
            },
        }
        if version is None:
            if self.kube.create_sync(body) is None:
                raise StoreError("the API token list changed meanwhile; try again")
            return
        body["metadata"]["resourceVersion"] = version
        try:
            self.kube.patch_sync("v1", "Secret", TOKENS_SECRET, self.workspace, body)
        except ConflictError as err:
            raise StoreError("the API token list changed meanwhile; try again") from err

    @staticmethod
    def _token_of(data: Mapping[str, Any]) -> TokenRecord:
        return from_json(TokenRecord, cast(JsonObject, dict(data.get("record") or {})))

    def add_token(
        self,
        name: str,
        *,
        token_hash: str,
        scope: TokenScope = "admin",
        expires_at: datetime | None = None,
    ) -> TokenRecord:
        tokens, version = self._tokens()
        if name in tokens:
            raise StoreError(
                f"a token named {name!r} exists already",
                hint=f"remove it first: appflow token revoke {name}",
            )
        record = TokenRecord(
            id=max((self._token_of(t).id for t in tokens.values()), default=0) + 1,
            name=name,
            scope=scope,
            expires_at=expires_at,
        )
        tokens[name] = {"hash": token_hash, "record": to_json(record)}
        # Secret data keys allow [-._a-zA-Z0-9]: token names are DNS-ish already.
        self._write_tokens(tokens, version)
        return record

    def session_key(self) -> bytes:
        # Made by the first server to ask; one that loses the race to create it reads the
        # winner's, so every replica behind the Service signs sessions with the same key.
        for _ in range(2):
            secret = self.kube.get_sync("v1", "Secret", SESSION_SECRET, self.workspace)
            if secret is not None:
                key = base64.b64decode(((secret.get("data") or {}).get("key")) or "")
                if len(key) < 32:
                    # Signing sessions with an empty or short key would let anyone forge one.
                    raise StoreError(
                        f"the Secret {SESSION_SECRET} in {self.workspace} holds no usable "
                        "session key (its data.key is missing or shorter than 32 bytes)",
                        hint=f"delete it (kubectl -n {self.workspace} delete secret "
                        f"{SESSION_SECRET}) and restart serve --hub: the first to start makes one",
                    )
                return key
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": SESSION_SECRET,
                    "namespace": self.workspace,
                    "labels": dict(MANAGED_BY),
                },
                "data": {"key": base64.b64encode(secrets.token_bytes(32)).decode()},
            }
            created = self.kube.create_sync(body)
            if created is not None:
                return base64.b64decode(body["data"]["key"])  # type: ignore[index]
        raise StoreError(
            f"the dashboard's session key (Secret {SESSION_SECRET} in {self.workspace}) "
            "could not be read or made",
            hint="check that serve --hub may get and create Secrets in the workspace",
        )

    def list_tokens(self) -> list[TokenRecord]:
        tokens, _ = self._tokens()
        return sorted((self._token_of(t) for t in tokens.values()), key=lambda t: t.id)

    def delete_token(self, name: str) -> None:
        tokens, version = self._tokens()
        if tokens.pop(name, None) is None:
            raise NotFoundError(f"no token named {name!r}", hint="see `appflow token list`")
        if tokens:
            self._write_tokens(tokens, version)
        else:
            self.kube.delete_sync("v1", "Secret", TOKENS_SECRET, self.workspace)

    def use_token(self, token_hash: str, *, now: datetime | None = None) -> TokenRecord | None:
        tokens, version = self._tokens()
        for name, data in tokens.items():
            if secrets.compare_digest(str(data.get("hash", "")), token_hash):
                record = self._token_of(data)
                last = self._token_used.get(name, 0.0)
                if time.monotonic() - last >= TOKEN_USE_RECORDED_EVERY:
                    self._token_used[name] = time.monotonic()
                    record = replace(record, last_used=now or utc_now())
                    tokens[name] = {**data, "record": to_json(record)}
                    # Best effort: a server allowed to read tokens may not be allowed more.
                    with contextlib.suppress(AppflowError):
                        self._write_tokens(tokens, version)
                return record
        return None

    # -- sync locks --------------------------------------------------------------------------

    def acquire_sync_lock(
        self, app: str, cluster: str, *, token: str, stale_after: float, mine: frozenset[str]
    ) -> SyncLock:
        """On a hub the replica that owns APP is its only writer (its Lease fences it), so a
        hold only keeps this process's own syncs of (APP, CLUSTER) apart."""
        with self._locks_guard:
            held = self._sync_locks.get((app, cluster))
            if held is not None and held.token != token and held.token in mine:
                return held
            now = utc_now()
            taken = SyncLock(
                app=app,
                cluster=cluster,
                token=token,
                pid=os.getpid(),
                host=self.writer,
                started_at=now,
                heartbeat_at=now,
            )
            self._sync_locks[(app, cluster)] = taken
            return taken

    def renew_sync_locks(self, tokens: Collection[str]) -> set[str]:
        with self._locks_guard:
            return {lock.token for lock in self._sync_locks.values() if lock.token in tokens}

    def release_sync_lock(self, app: str, cluster: str, *, token: str) -> None:
        with self._locks_guard:
            held = self._sync_locks.get((app, cluster))
            if held is not None and held.token == token:
                del self._sync_locks[(app, cluster)]

    # -- webhook deliveries ------------------------------------------------------------------

    def remember_deliveries(self, keys: list[str], *, now: float, ttl_seconds: float) -> bool:
        """True if any of KEYS was seen within the TTL (a replay); otherwise remember them.

        In one ConfigMap of the workspace, changed only by conditional patches: two
        ``serve --hub`` replicas given the same delivery cannot both take it as new."""
        wanted = {hashlib.sha256(k.encode()).hexdigest()[:40]: k for k in keys if k}
        for _ in range(8):
            found = self.kube.get_sync("v1", "ConfigMap", DELIVERIES_CONFIGMAP, self.workspace)
            if found is None:
                body = {str(h): str(now) for h in wanted}
                created = self.kube.create_sync(
                    _configmap(DELIVERIES_CONFIGMAP, self.workspace, body)
                )
                if created is not None:
                    return False
                continue  # another replica created it meanwhile
            seen = {k: float(v) for k, v in (found.get("data") or {}).items()}
            if any(h in seen and seen[h] > now - ttl_seconds for h in wanted):
                return True
            data: dict[str, str | None] = {
                k: None for k, t in seen.items() if t <= now - ttl_seconds
            }
            data.update({h: str(now) for h in wanted})
            patch = {
                "metadata": {"resourceVersion": found["metadata"]["resourceVersion"]},
                "data": data,
            }
            try:
                self.kube.patch_sync("v1", "ConfigMap", DELIVERIES_CONFIGMAP, self.workspace, patch)
            except ConflictError:
                continue
            return False
        raise StoreError("the webhook delivery record kept changing under this writer; try again")

    # -- policies ----------------------------------------------------------------------------

    def _policies(self) -> dict[str, str]:
        found = self.kube.get_sync("v1", "ConfigMap", POLICIES_CONFIGMAP, self.workspace)
        return dict((found or {}).get("data") or {})

    def put_policy(self, policy: Policy) -> Policy:
        stored = replace(policy, updated_at=utc_now())
        self.kube.apply_sync(
            _configmap(
                POLICIES_CONFIGMAP,
                self.workspace,
                {_policy_key(stored.scope, stored.name): json.dumps(to_json(stored))},
            ),
            force=True,
            # A manager per policy: applying one leaves the others' keys alone.
            field_manager=f"{FIELD_MANAGER}-{_policy_key(stored.scope, stored.name)}",
        )
        return stored

    def get_policy(self, scope: PolicyScope, name: str) -> Policy:
        text = self._policies().get(_policy_key(scope, name))
        if text is None:
            raise NotFoundError(f"{scope} {name} has no policy", hint="see `appflow policy list`")
        return from_json(Policy, json.loads(text), what="policy")

    def list_policies(self) -> list[Policy]:
        found = [from_json(Policy, json.loads(t), what="policy") for t in self._policies().values()]
        return sorted(found, key=lambda p: (p.scope, p.name))

    def delete_policy(self, scope: PolicyScope, name: str) -> None:
        key = _policy_key(scope, name)
        if key not in self._policies():
            raise NotFoundError(f"{scope} {name} has no policy", hint="see `appflow policy list`")
        self.kube.patch_sync(
            "v1", "ConfigMap", POLICIES_CONFIGMAP, self.workspace, {"data": {key: None}}
        )


DELIVERIES_CONFIGMAP = "appflow-webhook-deliveries"
POLICIES_CONFIGMAP = "appflow-policies"


def _policy_key(scope: str, name: str) -> str:
    return f"{scope}.{name}"  # ConfigMap keys allow [-._a-zA-Z0-9]: names are DNS-ish


def _configmap(name: str, namespace: str, data: Mapping[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "data": dict(data),
    }


def _read_secret_ref(ref: str) -> bytes:
    """The webhook secret a ``file:`` or ``env:`` reference names here, for its Secret on the hub
    (the hub's webhook receivers read the Secret, not this machine's file)."""
    kind, target = parse_secret_ref(ref)
    value = os.environ.get(target, "").encode() if kind == "env" else None
    if value is None:
        try:
            value = Path(target).read_bytes()
        except OSError as err:
            raise ConfigError(
                f"cannot read the webhook secret: {err.strerror}", where=Where(file=target)
            ) from err
    if not value.strip():
        raise ConfigError(f"the webhook secret {ref} is empty")
    return value.strip()


def _same_spec(stored: Manifest, wanted: Manifest) -> bool:
    """Whether STORED already has WANTED's spec and labels."""
    return (
        stored.get("spec") == wanted.get("spec")
        and (stored.get("metadata") or {}).get("labels") == wanted["metadata"]["labels"]
    )


def _by_name(record: Any) -> str:
    return str(record.name)


def chart_snapshot(obj: Manifest) -> str | None:
    """The content holding the chart files of a catalog install of a local chart."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(res.ANNOTATION_RECORD)
    if not text:
        return None
    with contextlib.suppress(ValueError):
        found = json.loads(text).get("chartSnapshot")
        return str(found) if found else None
    return None


def _private_file(folder: Path) -> tuple[int, str]:
    name = folder / f".tmp-{secrets.token_hex(6)}"
    return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(name)


def _merge(
    base: Mapping[str, Any], patch: Mapping[str, Any], *, keep_none: bool = False
) -> dict[str, Any]:
    """JSON merge patch (RFC 7386) of PATCH onto BASE; KEEP_NONE keeps the deletions (for a
    patch that is itself merged into another patch)."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            if keep_none:
                out[key] = None
            else:
                out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, keep_none=keep_none)
        else:
            out[key] = value
    return out


if __debug__:
    from typing import TYPE_CHECKING

    if TYPE_CHECKING:
        from appflow.store import Store

        # mypy proves here that HubStore implements the whole Protocol.
        def _hub_is_a_store(store: HubStore) -> Store:
            return store

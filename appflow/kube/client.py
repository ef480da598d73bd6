"""A connection to one cluster: discovery, server-side apply, get, list, delete.

The only module family that imports the kubernetes client. Its calls block, so
each public coroutine runs them with asyncio.to_thread; the engine never sees a
blocking call. Every error leaves here translated by appflow.kube.errors.

Reads (discovery, GET, LIST, the version) go through the thin client of
``appflow.kube.rest`` when it speaks the cluster's kubeconfig: the kubernetes package,
most of a fresh process's start-up, is then imported only by the first write or watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appflow.errors import ConfigError, FencedError, MissingKindError, NotFoundError, Where
from appflow.kube.errors import translate
from appflow.kube.rest import KindNotServedError, RestClient, rest_client_for
from appflow.model.capabilities import Capabilities
from appflow.model.objects import FIELD_MANAGER, Manifest, ObjectRef
from appflow.paths import cache_dir

if TYPE_CHECKING:
    from kubernetes import client as k8s
    from kubernetes.dynamic import DynamicClient

_GONE = 410
"""The API server's answer to a watch from a resourceVersion it no longer keeps."""
POOL_HEADROOM = 32
"""HTTP connections kept beyond a client's own concurrency (see ``_kubernetes_api``)."""


def _remember(known: dict[ObjectRef, Manifest], event_type: str, obj: Manifest) -> None:
    """Keep what a DELETED event needs of each object the watch has seen (for re-lists)."""
    ref = ObjectRef.of(obj)
    if event_type == "DELETED":
        known.pop(ref, None)
        return
    meta = obj.get("metadata") or {}
    known[ref] = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "labels": meta.get("labels") or {},
            "resourceVersion": meta.get("resourceVersion"),
        },
    }


def relist_difference(
    known: Mapping[ObjectRef, Manifest], listed: Sequence[Manifest]
) -> list[tuple[str, Manifest]]:
    """The events that take a watcher from KNOWN (what it had seen) to LISTED (a fresh list):
    ADDED for new objects, MODIFIED for those whose resourceVersion moved, DELETED (with the
    last known object) for those gone. Unchanged objects yield nothing."""
    now = {ObjectRef.of(o): o for o in listed}
    events: list[tuple[str, Manifest]] = [
        ("DELETED", gone) for ref, gone in known.items() if ref not in now
    ]
    for ref, obj in now.items():
        before = known.get(ref)
        if before is None:
            events.append(("ADDED", obj))
        elif _version(before) != _version(obj):
            events.append(("MODIFIED", obj))
    return events


def _version(obj: Manifest) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _plain(_client: Any, data: Any) -> Any:
    """Keep the decoded JSON as it is.

    DynamicClient would wrap every response in a ResourceInstance, converting
    each nested dict into a ResourceField, only for us to convert it back with
    to_dict(): for a LIST of hundreds of objects that is most of its cost.
    """
    return data


@dataclass(frozen=True, kw_only=True)
class Connection:
    """How to reach a cluster: its kubeconfig file and context."""

    name: str
    kubeconfig: Path | None
    """None: the pod's own ServiceAccount (in-cluster configuration)."""
    kubeconfig_data: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """A kubeconfig held in memory (a pull agent's hub credential): used instead of the file."""
    context: str | None = None
    timeout: float = 10.0
    """Seconds for one request to the API server before it counts as unreachable."""
    concurrency: int = 16
    """Parallel requests at most (and HTTP connections kept)."""


@dataclass(frozen=True)
class ResourceInfo:
    api_version: str
    kind: str
    plural: str
    namespaced: bool


WriteGuard = Callable[[], float]
"""Seconds this process may still write (<= 0: it must not); see ``KubeCluster``."""


class KubeCluster:
    """One cluster's API, safe to use from many threads at once.

    WRITE_GUARD, when given, is asked before every write (apply, create, delete): a hub
    controller replica passes its membership fence, so that it stops writing the moment it
    no longer holds its Lease, and no write outlives the time it had left.
    """

    def __init__(self, connection: Connection, *, write_guard: WriteGuard | None = None) -> None:
        self.connection = connection
        self.name = connection.name
        self._write_guard = write_guard
        self._api_client: k8s.ApiClient | None = None
        self._dynamic: DynamicClient | None = None
        self._lock = threading.Lock()
        # The client's discovery cache is not thread-safe: a lookup of a kind it
        # does not know rebuilds the cache, and a lookup in another thread meanwhile
        # fails with KeyError. Lookups are in-memory once warm; serialize them.
        self._discovery_lock = threading.RLock()
        self._rest: RestClient | None = rest_client_for(
            kubeconfig=connection.kubeconfig,
            data=connection.kubeconfig_data,
            context=connection.context,
            pool=max(4, connection.concurrency),
        )
        if self._rest is None:
            # A kubeconfig only the kubernetes package speaks (or a broken one: it says
            # what is wrong now, when the cluster is added, not at the first write).
            self.server = str(self.api_client.configuration.host)
        else:
            self.server = self._rest.endpoint.server
            self._rest.discovery_file = self._cache_file("rest-discovery")
        # Our own pool bounds the requests in flight to one cluster; asyncio's
        # default executor is shared and small (cores + 4 threads).
        self._pool = ThreadPoolExecutor(
            max_workers=connection.concurrency, thread_name_prefix=f"kube-{connection.name}"
        )

    # -- plumbing --------------------------------------------------------

    @property
    def timeout(self) -> float:
        return self.connection.timeout

    @property
    def reads_directly(self) -> bool:
        """Reads go through ``appflow.kube.rest`` (not the kubernetes package)."""
        return self._rest is not None

    def write_timeout(self, obj: str, *, base: float | None = None) -> float:
        """The timeout of a write about OBJ (BASE, default the connection's), cut to what the
        write guard allows; FencedError when the guard says stop."""
        base = base or self.timeout
        if self._write_guard is None:
            return base
        left = self._write_guard()
        if left <= 0:
            raise FencedError(
                "this controller replica no longer holds its membership Lease; it writes nothing",
                where=Where(cluster=self.name, object=obj),
                hint="it rejoins by itself once it reaches the hub's API server again",
            )
        return min(base, left)

    def _client(self) -> DynamicClient:
        api = self.api_client
        with self._lock:
            if self._dynamic is None:
                from kubernetes.dynamic import DynamicClient

                cache_file = self._cache_file("discovery")
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._dynamic = DynamicClient(api, cache_file=str(cache_file))
                except Exception as err:
                    raise translate(err, cluster=self.name, action="discovery") from err
            return self._dynamic

    def _cache_file(self, what: str) -> Path:
        """Where this cluster's WHAT (discovery) is cached between processes."""
        key = hashlib.sha256(f"{self.name}|{self.server}".encode()).hexdigest()[:16]
        return cache_dir() / "kube" / f"{what}-{key}.json"

    async def _run(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(func, *args, **kwargs))

    async def run_blocking(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking call of another module of kube/ on this cluster's threads."""
        return await self._run(func, *args, **kwargs)

    @property
    def api_client(self) -> k8s.ApiClient:
        """The typed client, for the modules of kube/ that call APIs the dynamic client lacks
        (made, and the kubernetes package imported, on first use)."""
        with self._lock:
            if self._api_client is None:
                self._api_client = _kubernetes_api(self.connection)
            return self._api_client

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._rest is not None:
            self._rest.close()
        with self._lock:
            if self._api_client is not None:
                self._api_client.close()

    @contextlib.asynccontextmanager
    async def lookup_view(self, *, namespaces: Iterable[str]) -> AsyncIterator[Path]:
        """A kubeconfig for helm that reads only NAMESPACES of this cluster (see kube.lookup)."""
        from appflow.kube.lookup import LookupView

        view = LookupView(
            self.api_client,
            cluster=self.name,
            namespaces=namespaces,
            timeout=max(self.timeout, 30.0),
        )
        try:
            yield view.kubeconfig
        finally:
            await asyncio.to_thread(view.close)

    # -- discovery -------------------------------------------------------

    def resource_sync(self, api_version: str, kind: str) -> Any:
        """The kubernetes package's resource of KIND, for its writes and watches."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            with self._discovery_lock:
                return self._client().resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as err:
            raise self._not_served(api_version, kind) from err
        except Exception as err:
            raise translate(err, cluster=self.name, action="discovery") from err

    def _not_served(self, api_version: str, kind: str) -> MissingKindError:
        return MissingKindError(
            f"the cluster does not serve {kind} in {api_version}",
            where=Where(cluster=self.name),
            hint="install its CustomResourceDefinition first, or add the CRD to the app",
        )

    def _rest_path(
        self, rest: RestClient, api_version: str, kind: str, *, namespace: str, name: str = ""
    ) -> str:
        try:
            return rest.path(
                api_version, kind, namespace=namespace, name=name, timeout=self.timeout
            )
        except KindNotServedError as err:
            raise self._not_served(api_version, kind) from err
        except Exception as err:
            raise translate(err, cluster=self.name, action="discovery") from err

    def invalidate_discovery(self) -> None:
        """Forget cached discovery (after CRDs were created)."""
        if self._rest is not None:
            self._rest.invalidate()
        with self._lock:
            dynamic = self._dynamic
        if dynamic is None:
            return  # nothing read through the kubernetes package yet
        try:
            with self._discovery_lock:
                dynamic.resources.invalidate_cache()
        except Exception as err:
            raise translate(err, cluster=self.name, action="discovery") from err

    async def refresh_discovery(self) -> None:
        await self._run(self.invalidate_discovery)

    def info_sync(self, api_version: str, kind: str) -> ResourceInfo:
        if self._rest is not None:
            try:
                plural, namespaced = self._rest.resource(api_version, kind, timeout=self.timeout)
            except KindNotServedError as err:
                raise self._not_served(api_version, kind) from err
            except Exception as err:
                raise translate(err, cluster=self.name, action="discovery") from err
            return ResourceInfo(
                api_version=api_version, kind=kind, plural=plural, namespaced=namespaced
            )
        resource = self.resource_sync(api_version, kind)
        return ResourceInfo(
            api_version=api_version,
            kind=kind,
            plural=str(resource.name),
            namespaced=bool(resource.namespaced),
        )

    async def info(self, api_version: str, kind: str) -> ResourceInfo:
        return await self._run(self.info_sync, api_version, kind)  # type: ignore[no-any-return]

    def version_sync(self) -> str:
        try:
            if self._rest is not None:
                return str(self._rest.get("/version", timeout=self.timeout)["gitVersion"])
            from kubernetes import client as k8s

            info = k8s.VersionApi(self.api_client).get_code(_request_timeout=self.timeout)
        except Exception as err:
            raise translate(err, cluster=self.name, action="version") from err
        return str(info.git_version)

    async def version(self) -> str:
        return await self._run(self.version_sync)  # type: ignore[no-any-return]

    def capabilities_sync(self) -> Capabilities:
        version = self.version_sync()
        try:
            if self._rest is not None:
                core = self._rest.get("/api", timeout=self.timeout)
                groups = self._rest.get("/apis", timeout=self.timeout)
                versions = {str(v) for v in core["versions"]}
                versions |= {
                    str(gv["groupVersion"]) for g in groups["groups"] for gv in g["versions"]
                }
            else:
                versions = self._typed_api_versions()
        except Exception as err:
            raise translate(err, cluster=self.name, action="discovery") from err
        return Capabilities(kube_version=version, api_versions=tuple(sorted(versions)))

    def _typed_api_versions(self) -> set[str]:
        from kubernetes import client as k8s

        groups = k8s.ApisApi(self.api_client).get_api_versions(_request_timeout=self.timeout)
        core = k8s.CoreApi(self.api_client).get_api_versions(_request_timeout=self.timeout)
        versions = {str(v) for v in core.versions}
        for group in groups.groups:
            for gv in group.versions:
                versions.add(str(gv.group_version))
        return versions

    async def capabilities(self) -> Capabilities:
        return await self._run(self.capabilities_sync)  # type: ignore[no-any-return]

    # -- objects ---------------------------------------------------------

    def apply_sync(
        self,
        manifest: Manifest,
        *,
        dry_run: bool = False,
        force: bool = False,
        field_manager: str = FIELD_MANAGER,
        timeout: float | None = None,
    ) -> Manifest:
        """Server-side apply MANIFEST; return the object as the server stored (or would store) it.

        TIMEOUT (seconds) replaces the connection's for this request."""
        ref = ObjectRef.of(manifest)
        api_version = str(manifest.get("apiVersion"))
        if self._rest is not None:
            namespaced = self.info_sync(api_version, ref.kind).namespaced
        else:
            resource = self.resource_sync(api_version, ref.kind)
            namespaced = bool(resource.namespaced)
        namespace = ref.namespace or None
        if namespaced and not namespace:
            raise ConfigError(
                "namespaced object without a namespace",
                where=Where(cluster=self.name, object=str(ref)),
                hint="set metadata.namespace or the app's namespace",
            )
        seconds = (
            (timeout or self.timeout) if dry_run else self.write_timeout(str(ref), base=timeout)
        )
        if self._rest is not None:
            query = {"fieldManager": field_manager}
            if force:
                query["force"] = "true"
            if dry_run:
                query["dryRun"] = "All"
            path = self._rest_path(
                self._rest, api_version, ref.kind, namespace=ref.namespace, name=ref.name
            )
            try:
                applied: Manifest = self._rest.apply(path, manifest, query=query, timeout=seconds)
            except Exception as err:
                raise translate(err, cluster=self.name, obj=str(ref)) from err
            return applied
        try:
            result = self._client().server_side_apply(
                resource,
                body=manifest,
                name=ref.name,
                namespace=namespace if namespaced else None,
                field_manager=field_manager,
                force_conflicts=force or None,
                dry_run="All" if dry_run else None,
                _request_timeout=seconds,
                serializer=_plain,
            )
        except Exception as err:
            raise translate(err, cluster=self.name, obj=str(ref)) from err
        return result  # type: ignore[no-any-return]

    async def apply(
        self,
        manifest: Manifest,
        *,
        dry_run: bool = False,
        force: bool = False,
        field_manager: str = FIELD_MANAGER,
        timeout: float | None = None,
    ) -> Manifest:
        return await self._run(  # type: ignore[no-any-return]
            self.apply_sync,
            manifest,
            dry_run=dry_run,
            force=force,
            field_manager=field_manager,
            timeout=timeout,
        )

    def create_sync(self, manifest: Manifest, *, dry_run: bool = False) -> Manifest | None:
        """Create MANIFEST; None when an object of that name exists already (it is not read).

        An object the API server names (``metadata.generateName``: a hook's run) can only be
        created this way, as server-side apply addresses objects by name. With DRY_RUN the
        server only validates it (and names nothing).
        """
        ref = ObjectRef.of(manifest)
        if self._rest is not None:
            # The thin client: a hub controller creates an AppFlowDeployment per app and
            # cluster, and the kubernetes package's create costs several times its CPU.
            api_version = str(manifest.get("apiVersion"))
            namespaced = self.info_sync(api_version, ref.kind).namespaced
            path = self._rest_path(
                self._rest, api_version, ref.kind, namespace=ref.namespace if namespaced else ""
            )
            query = {"fieldManager": FIELD_MANAGER}
            if dry_run:
                query["dryRun"] = "All"
            try:
                created: Manifest | None = self._rest.create(
                    path, manifest, query=query, timeout=self.write_timeout(str(ref))
                )
            except Exception as err:
                raise translate(err, cluster=self.name, obj=str(ref), action="create") from err
            return created
        from kubernetes.dynamic.exceptions import ConflictError as DynConflict

        resource = self.resource_sync(str(manifest.get("apiVersion")), ref.kind)
        try:
            result = self._client().create(
                resource,
                body=manifest,
                namespace=ref.namespace or None if resource.namespaced else None,
                field_manager=FIELD_MANAGER,
                dry_run="All" if dry_run else None,
                _request_timeout=self.write_timeout(str(ref)),
                serializer=_plain,
            )
        except DynConflict:
            return None
        except Exception as err:
            raise translate(err, cluster=self.name, obj=str(ref), action="create") from err
        return result  # type: ignore[no-any-return]

    async def create(self, manifest: Manifest, *, dry_run: bool = False) -> Manifest | None:
        return await self._run(self.create_sync, manifest, dry_run=dry_run)  # type: ignore[no-any-return]

    def get_sync(
        self, api_version: str, kind: str, name: str, namespace: str = ""
    ) -> Manifest | None:
        obj = f"{kind}/{namespace + '/' if namespace else ''}{name}"
        if self._rest is not None:
            path = self._rest_path(self._rest, api_version, kind, namespace=namespace, name=name)
            try:
                found: Manifest | None = self._rest.get(path, timeout=self.timeout)
            except Exception as err:
                raise translate(err, cluster=self.name, obj=obj, action="get") from err
            return found
        from kubernetes.dynamic.exceptions import NotFoundError as DynNotFound

        resource = self.resource_sync(api_version, kind)
        try:
            result = self._client().get(
                resource,
                name=name,
                namespace=namespace or None if resource.namespaced else None,
                _request_timeout=self.timeout,
                serializer=_plain,
            )
        except DynNotFound:
            return None
        except Exception as err:
            raise translate(err, cluster=self.name, obj=obj, action="get") from err
        return result  # type: ignore[no-any-return]

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str = ""
    ) -> Manifest | None:
        return await self._run(self.get_sync, api_version, kind, name, namespace)  # type: ignore[no-any-return]

    def list_sync(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str = "",
        label_selector: str | None = None,
        timeout: float | None = None,
        cached: bool = False,
    ) -> list[Manifest]:
        """Objects of a kind (a consistent read). TIMEOUT: seconds, default at least 30 (a list
        of many large objects takes time; a caller with a deadline passes its own). CACHED:
        whatever the API server's watch cache holds (resourceVersion 0), for figures that may
        lag a moment, without a read of etcd."""
        return self.list_versioned_sync(
            api_version,
            kind,
            namespace=namespace,
            label_selector=label_selector,
            timeout=timeout,
            cached=cached,
        )[0]

    def list_versioned_sync(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str = "",
        label_selector: str | None = None,
        timeout: float | None = None,
        cached: bool = False,
    ) -> tuple[list[Manifest], str | None]:
        """``list_sync``, and the list's resourceVersion (a watch from it misses nothing)."""
        seconds = timeout if timeout is not None else max(self.timeout, 30.0)
        if self._rest is not None:
            path = self._rest_path(self._rest, api_version, kind, namespace=namespace)
            try:
                items, version = self._rest.list(
                    path, label_selector=label_selector, cached=cached, timeout=seconds
                )
            except Exception as err:
                raise translate(err, cluster=self.name, obj=f"{kind} list", action="list") from err
        else:
            items, version = self._list_typed(
                api_version, kind, namespace, label_selector, seconds, cached=cached
            )
        for item in items:
            # Items of a list carry no apiVersion/kind of their own.
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items, version

    def _list_typed(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        label_selector: str | None,
        seconds: float,
        *,
        cached: bool,
    ) -> tuple[list[Manifest], str | None]:
        from kubernetes.dynamic.exceptions import NotFoundError as DynNotFound

        resource = self.resource_sync(api_version, kind)
        try:
            result = self._client().get(
                resource,
                namespace=namespace or None if resource.namespaced else None,
                label_selector=label_selector,
                resource_version="0" if cached else None,
                _request_timeout=seconds,
                serializer=_plain,
            )
        except DynNotFound:
            return [], None
        except Exception as err:
            raise translate(err, cluster=self.name, obj=f"{kind} list", action="list") from err
        version = (result.get("metadata") or {}).get("resourceVersion")
        return list(result.get("items") or []), str(version) if version else None

    async def list_objects(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str = "",
        label_selector: str | None = None,
        timeout: float | None = None,
        cached: bool = False,
    ) -> list[Manifest]:
        return await self._run(  # type: ignore[no-any-return]
            self.list_sync,
            api_version,
            kind,
            namespace=namespace,
            label_selector=label_selector,
            timeout=timeout,
            cached=cached,
        )

    async def list_versioned(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str = "",
        label_selector: str | None = None,
        timeout: float | None = None,
    ) -> tuple[list[Manifest], str | None]:
        return await self._run(  # type: ignore[no-any-return]
            self.list_versioned_sync,
            api_version,
            kind,
            namespace=namespace,
            label_selector=label_selector,
            timeout=timeout,
        )

    def patch_sync(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        patch: Manifest,
        *,
        subresource: str | None = None,
    ) -> Manifest:
        """JSON merge PATCH of an object (or of its SUBRESOURCE, such as ``status``).

        A ``metadata.resourceVersion`` in PATCH makes it conditional: ConflictError when the
        object changed since it was read (optimistic concurrency)."""
        from kubernetes.dynamic.exceptions import NotFoundError as DynNotFound

        resource = self.resource_sync(api_version, kind)
        if subresource:
            resource = resource.subresources[subresource]
        obj = f"{kind}/{namespace + '/' if namespace else ''}{name}"
        try:
            result = self._client().patch(
                resource,
                body=patch,
                name=name,
                namespace=namespace or None,
                content_type="application/merge-patch+json",
                _request_timeout=self.write_timeout(obj),
                serializer=_plain,
            )
        except DynNotFound as err:
            raise NotFoundError(
                f"{obj} does not exist", where=Where(cluster=self.name, object=obj)
            ) from err
        except Exception as err:
            raise translate(err, cluster=self.name, obj=obj, action="patch") from err
        return result  # type: ignore[no-any-return]

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        patch: Manifest,
        *,
        subresource: str | None = None,
    ) -> Manifest:
        return await self._run(  # type: ignore[no-any-return]
            self.patch_sync, api_version, kind, name, namespace, patch, subresource=subresource
        )

    def delete_sync(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str = "",
        *,
        propagation: str = "Background",
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> bool:
        """Delete an object; False when it was already gone.

        UID and RESOURCE_VERSION, when given, are preconditions the API server
        checks atomically: the delete happens only if the object is still the
        one read (ObjectChangedError otherwise).
        """
        from kubernetes.dynamic.exceptions import NotFoundError as DynNotFound

        resource = self.resource_sync(api_version, kind)
        obj = f"{kind}/{namespace + '/' if namespace else ''}{name}"
        preconditions = {
            k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v
        }
        body = {"preconditions": preconditions} if preconditions else None
        try:
            self._client().delete(
                resource,
                name=name,
                namespace=namespace or None if resource.namespaced else None,
                propagation_policy=propagation,
                body=body,
                _request_timeout=self.write_timeout(obj),
            )
        except DynNotFound:
            return False
        except Exception as err:
            raise translate(err, cluster=self.name, obj=obj, action="delete") from err
        return True

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str = "",
        *,
        propagation: str = "Background",
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> bool:
        return await self._run(  # type: ignore[no-any-return]
            self.delete_sync,
            api_version,
            kind,
            name,
            namespace,
            propagation=propagation,
            uid=uid,
            resource_version=resource_version,
        )

    async def watch(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str = "",
        label_selector: str | None = None,
        stop: asyncio.Event,
        window: int = 55,
        since: str | None = None,
        known: Sequence[Manifest] = (),
    ) -> AsyncIterator[tuple[str, Manifest]]:
        """Yield (event type, object) for changes to objects of one kind, until STOP is set.

        One watch per kind and cluster, across namespaces (or in NAMESPACE). The
        blocking stream runs in a thread of its own and is re-opened every WINDOW seconds (and
        after errors) from the last resourceVersion seen (at first SINCE, or the
        objects as they are now, each as ADDED), so that a dropped connection
        loses no event the server still remembers. Bookmarks keep that version
        fresh while the kind is quiet. KNOWN: the objects the caller already has
        (the list SINCE came from).

        When the server no longer remembers that far back (HTTP 410 Gone), the
        kind is listed again, as informers do, and the difference to what the
        watcher had is yielded: ADDED, MODIFIED (a newer resourceVersion) and
        DELETED (the last known object); then the watch goes on from the list's
        resourceVersion. A list that fails is tried again (never a watch from
        "now", which would skip what changed in the gap). Other errors are
        raised to the consumer, and the watch goes on where it was.
        """
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Manifest] | BaseException] = asyncio.Queue()
        halt = threading.Event()
        seen: dict[ObjectRef, Manifest] = {}
        for obj in known:
            _remember(seen, "ADDED", obj)

        def emit(kind_of_event: str, obj: Manifest) -> None:
            if halt.is_set():
                return
            # A stream blocked in a read outlives its consumer: the loop may be closed by now.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(events.put_nowait, (kind_of_event, obj))

        def fail(err: BaseException, action: str) -> None:
            if halt.is_set():
                return
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(
                    events.put_nowait, translate(err, cluster=self.name, action=action)
                )
            halt.wait(2.0)

        def pump() -> None:
            from kubernetes import watch as k8s_watch
            from kubernetes.client.exceptions import ApiException

            resource_version = since
            gone = False
            while not halt.is_set():
                if gone:
                    try:
                        resource_version = relist()
                        gone = False
                    except Exception as err:  # reported to the consumer, then retried
                        fail(err, "list")
                    continue
                try:
                    resource = self.resource_sync(api_version, kind)
                    watcher = k8s_watch.Watch()
                    for event in self._client().watch(
                        resource,
                        namespace=namespace or None,
                        label_selector=label_selector,
                        resource_version=resource_version,
                        timeout=window,
                        watcher=watcher,
                        allow_watch_bookmarks=True,
                    ):
                        if halt.is_set():
                            watcher.stop()
                            break
                        raw = event.get("raw_object") or {}
                        event_type = str(event.get("type"))
                        if event_type == "ERROR":
                            raise ApiException(status=int(raw.get("code") or 0), reason=str(raw))
                        resource_version = (raw.get("metadata") or {}).get(
                            "resourceVersion", resource_version
                        )
                        if event_type == "BOOKMARK":
                            continue
                        _remember(seen, event_type, raw)
                        emit(event_type, raw)
                except Exception as err:  # reported to the consumer, then retried
                    # 410 arrives as an ERROR event (ApiException) or as the answer to
                    # the request itself (the dynamic client's GoneError).
                    if getattr(err, "status", None) == _GONE:
                        gone = True
                        continue
                    fail(err, "watch")

        def relist() -> str | None:
            """List the kind afresh after 410 Gone; yield what changed meanwhile; the new RV."""
            listed, version = self.list_versioned_sync(
                api_version, kind, namespace=namespace, label_selector=label_selector
            )
            for event_type, obj in relist_difference(seen, listed):
                _remember(seen, event_type, obj)
                emit(event_type, obj)
            return version

        # A daemon thread: a stream blocked in a read must not hold the
        # process open at exit (executor threads are joined then).
        thread = threading.Thread(target=pump, name=f"watch-{self.name}-{kind}", daemon=True)
        thread.start()
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(events.get())
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                stopper.cancel()
                item = getter.result()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            halt.set()

    async def get_many(self, manifests: Sequence[Manifest]) -> list[Manifest | None]:
        """The live counterpart of each manifest (None where absent), fetched in parallel."""

        async def one(m: Manifest) -> Manifest | None:
            ref = ObjectRef.of(m)
            return await self.get(str(m.get("apiVersion")), ref.kind, ref.name, ref.namespace)

        return list(await asyncio.gather(*(one(m) for m in manifests)))


def _bound_requests(api: Any, timeout: float) -> None:
    """Give every request of API that names no timeout of its own TIMEOUT.

    The dynamic client's discovery sends its requests without one: against a
    cluster that accepts connections and never answers (a site whose link went
    down behind a NAT), such a request, and the thread and process exit waiting
    on it, would hang forever. Streams (watches) keep none: they are quiet by design.
    """
    rest = api.rest_client
    send = rest.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_request_timeout") is None and "watch=true" not in url.lower():
            kwargs["_request_timeout"] = timeout
        return send(method, url, *args, **kwargs)

    rest.request = request


def _kubernetes_api(connection: Connection) -> k8s.ApiClient:
    """The kubernetes package's client for CONNECTION (ConfigError when it cannot be used)."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    configuration = k8s.Configuration()
    try:
        if connection.kubeconfig_data is not None:
            k8s_config.load_kube_config_from_dict(
                connection.kubeconfig_data,
                context=connection.context,
                client_configuration=configuration,
                persist_config=False,
            )
        elif connection.kubeconfig is None:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=str(connection.kubeconfig),
                context=connection.context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, ValueError, TypeError) as err:
        if connection.kubeconfig is None and connection.kubeconfig_data is None:
            raise ConfigError(
                f"no in-cluster credentials: {err}",
                where=Where(cluster=connection.name),
                hint="outside a pod, pass --kubeconfig",
            ) from err
        raise ConfigError(
            f"cannot use kubeconfig: {err}",
            where=Where(cluster=connection.name, file=str(connection.kubeconfig)),
            hint="check the file and --context",
        ) from err
    # More connections kept than this client's threads: blocking calls also come from other
    # threads (asyncio.to_thread, stores), and a connection returned to a full pool is closed,
    # so the next request pays a new TLS handshake on both sides (the hub benchmark's
    # controller did that thousands of times).
    configuration.connection_pool_maxsize = max(4, connection.concurrency) + POOL_HEADROOM
    configuration.retries = 0
    api = k8s.ApiClient(configuration)
    _bound_requests(api, connection.timeout)
    return api

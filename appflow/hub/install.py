"""``appflow hub install`` and ``uninstall``: the chart in the package, applied to a hub cluster.

The chart (``appflow/charts/appflow-hub``) is the one description of a hub: helm renders it
with the options as values, and install applies what it rendered with server-side apply, in
the engine's stage order (CRDs, then namespaces, then the rest), waiting for the CRDs to be
served before any object that needs them and, with ``wait``, for the controller to be ready.
Every object install writes carries the label ``appflow.dev/hub-install=<release>``: uninstall
deletes only objects that carry it, in reverse order, so it never removes what it did not
create. It refuses while AppFlows, Clusters or repos exist, unless forced (deleting the CRDs
deletes every appflow resource with them), and keeps the workspace namespace unless forced.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from appflow import __version__
from appflow.errors import (
    ApplyError,
    ClusterError,
    ConfigError,
    MissingKindError,
    NotFoundError,
    Where,
)
from appflow.kube.client import KubeCluster
from appflow.model.health import HealthStatus, assess
from appflow.model.hub import API_VERSION, DEFAULT_WORKSPACE, SYSTEM_NAMESPACE, image_values
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.order import deletion_order, plan_stages
from appflow.render.helm import helm_template
from appflow.render.types import HelmChartRef, RenderRequest

LABEL_INSTALL = "appflow.dev/hub-install"
FIELD_MANAGER = "appflow-hub-install"
CHART = "charts/appflow-hub"

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class HubOptions:
    """What ``appflow hub install`` sets in the chart."""

    release: str = "appflow-hub"
    namespace: str = SYSTEM_NAMESPACE
    workspace: str = DEFAULT_WORKSPACE
    replicas: int = 2
    image: str | None = None
    """repository:tag of appflow's image; default: the chart's."""
    lease_duration: int = 15
    agent_api_url: str | None = None
    """Where pull agents reach the agent API (https://HOST:PORT); None: no agent API."""
    hub_server: str | None = None
    """The hub API server's URL as agents reach it."""

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ConfigError("--replicas must be at least 1", where=Where(field="replicas"))
        if self.lease_duration < 3:
            raise ConfigError(
                "--lease-duration must be at least 3 seconds", where=Where(field="lease_duration")
            )

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "replicas": self.replicas,
            "workspace": {"name": self.workspace, "create": True},
            "leaseDurationSeconds": self.lease_duration,
            "createReleaseNamespace": True,
        }
        if self.image:
            values["image"] = image_values(self.image)
        if self.agent_api_url:
            values["agentApi"] = {
                "enabled": True,
                "advertiseUrl": self.agent_api_url,
                "hubServer": self.hub_server or "",
            }
        return values


def chart_dir() -> Path:
    """The hub chart inside the installed package."""
    folder = Path(str(resources.files("appflow").joinpath(CHART)))
    if not (folder / "Chart.yaml").is_file():
        raise NotFoundError(
            f"the hub chart is missing from the installed package ({folder})",
            hint="reinstall appflow",
        )
    return folder


async def render(kube: KubeCluster, options: HubOptions) -> list[Manifest]:
    """The hub's objects as the chart renders them for this cluster, labelled as install's."""
    folder = chart_dir()
    digest = hashlib.sha256(f"{__version__}{sorted(options.values().items())}".encode())
    request = RenderRequest(
        app=options.release,
        cluster=kube.name,
        kind="helm",
        source_dir=folder,
        source_digest=digest.hexdigest(),
        capabilities=await kube.capabilities(),
        namespace=options.namespace,
        helm=HelmChartRef(path=folder),
        release_name=options.release,
        values=options.values(),
    )
    rendered = await helm_template(request)
    objects = []
    for obj in rendered.objects:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("labels", {})[LABEL_INSTALL] = options.release
        objects.append(obj)
    return objects


async def wait_healthy(
    kube: KubeCluster, manifests: Sequence[Manifest], *, timeout: float, what: str
) -> None:
    """Wait until every object of MANIFESTS is healthy on the cluster (model.health's verdict)."""
    deadline = time.monotonic() + timeout
    pending = [ObjectRef.of(m) for m in manifests]
    versions = {ObjectRef.of(m): str(m.get("apiVersion")) for m in manifests}
    while pending:
        still = []
        for ref in pending:
            live = await kube.get(versions[ref], ref.kind, ref.name, ref.namespace)
            health = assess(live)
            if health.status is not HealthStatus.HEALTHY:
                still.append((ref, health))
        if not still:
            return
        if time.monotonic() > deadline:
            ref, health = still[0]
            raise ApplyError(
                f"{what} not ready after {timeout:.0f}s: {health}",
                where=Where(cluster=kube.name, object=str(ref)),
                hint="look at the object's status and events on the hub",
            )
        pending = [ref for ref, _ in still]
        await asyncio.sleep(0.5)


async def install(
    kube: KubeCluster,
    options: HubOptions,
    *,
    wait: bool = True,
    timeout: float = 300.0,
    progress: Progress = lambda _: None,
) -> list[Manifest]:
    """Apply the hub chart to KUBE; the objects applied."""
    objects = await render(kube, options)
    # Validate everything before the first write: a refusal leaves the hub as it was.
    for stage in plan_stages(objects):
        if stage.wait_established:
            continue  # custom resources of new CRDs cannot be dry-run before the CRDs exist
        for obj in stage.manifests:
            if not await _namespace_pending(kube, obj, objects):
                await kube.apply(obj, dry_run=True, force=True, field_manager=FIELD_MANAGER)
    for stage in plan_stages(objects):
        progress(f"applying {stage.name}: {len(stage.manifests)} object(s)")
        await asyncio.gather(
            *(kube.apply(o, force=True, field_manager=FIELD_MANAGER) for o in stage.manifests)
        )
        if stage.wait_established:
            await wait_healthy(kube, stage.manifests, timeout=timeout, what="CRD")
            await kube.refresh_discovery()
    if wait:
        workloads = [o for o in objects if o.get("kind") == "Deployment"]
        progress(f"waiting for {len(workloads)} Deployment(s) to be available")
        await wait_healthy(kube, workloads, timeout=timeout, what="the controller Deployment")
    return objects


async def _namespace_pending(kube: KubeCluster, obj: Manifest, objects: Sequence[Manifest]) -> bool:
    """Whether OBJ goes into a namespace this install creates and that does not exist yet
    (its dry run would be refused for that alone)."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    if not namespace:
        return False
    created = {
        (o.get("metadata") or {}).get("name") for o in objects if o.get("kind") == "Namespace"
    }
    return namespace in created and await kube.get("v1", "Namespace", namespace) is None


async def existing_resources(kube: KubeCluster) -> list[str]:
    """Kind namespace/name of every appflow resource people registered on the hub (none when
    the CRDs are not installed). Content and Deployments are the controllers' own."""
    found: list[str] = []
    for kind in ("AppFlow", "Cluster", "ClusterGroup", "GitRepo", "CatalogRepo"):
        items = await _list_when_served(kube, kind)
        found += sorted(
            f"{kind} {i['metadata'].get('namespace', '')}/{i['metadata']['name']}" for i in items
        )
    return found


async def _list_when_served(
    kube: KubeCluster, kind: str, *, timeout: float = 30.0
) -> list[Manifest]:
    """Every KIND on the hub; none when its CRD is not installed. Right after a CRD is
    created the API server answers 429 "storage is (re)initializing" for a moment: wait."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await kube.list_objects(API_VERSION, kind)
        except MissingKindError:
            return []
        except ClusterError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def uninstall(
    kube: KubeCluster,
    options: HubOptions,
    *,
    force: bool = False,
    progress: Progress = lambda _: None,
) -> list[str]:
    """Delete what install created on KUBE; the objects deleted."""
    found = await existing_resources(kube)
    if found and not force:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise ConfigError(
            f"the hub still holds {len(found)} resource(s): {shown}",
            where=Where(cluster=kube.name),
            hint="delete them first, or pass --force to delete them with the hub",
        )
    objects = await render(kube, options)
    versions = {ObjectRef.of(o): str(o.get("apiVersion")) for o in objects}
    deleted: list[str] = []
    for ref in deletion_order(versions):
        live = await kube.get(versions[ref], ref.kind, ref.name, ref.namespace)
        if live is None:
            continue
        labels = (live.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_INSTALL) != options.release:
            progress(f"left {ref}: not created by this install")
            continue
        if ref.kind == "Namespace" and ref.name == options.workspace and not force:
            # It may hold credentials and objects people put there: deleting a namespace
            # deletes all of it, so only when told.
            progress(f"left {ref}: the workspace (--force deletes it and all it holds)")
            continue
        await kube.delete(versions[ref], ref.kind, ref.name, ref.namespace)
        deleted.append(str(ref))
        progress(f"deleted {ref}")
    return deleted

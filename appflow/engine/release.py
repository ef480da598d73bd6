"""Helm release mode (`helm: {mode: release}`): an AppFlow as a Helm release per cluster.

For charts that need Helm hooks and for teams who want `helm list` on the
cluster. The chart is still rendered with `helm template` for every target
first, so a template error on any target touches no cluster; then each cluster
gets `helm upgrade --install`, and health is assessed on the rendered objects.
Helm owns the objects (its own inventory, the release secret), so appflow's
inventory and prune do not apply; uninstall is `helm uninstall`, and a rollback
is `helm rollback` to the Helm revision recorded with the appflow revision.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from appflow.engine.deployment import DesiredState, SyncOptions, SyncResult, assess_objects
from appflow.errors import AppflowError
from appflow.kube.client import KubeCluster
from appflow.model.health import HealthStatus
from appflow.model.inventory import Inventory
from appflow.model.objects import ANNOTATION_REPLACE, ANNOTATION_TAKE_OWNERSHIP
from appflow.model.plan import Plan
from appflow.model.records import ClusterRecord, DeploymentState
from appflow.render.types import RenderRequest

if TYPE_CHECKING:
    from appflow.render.helm import HelmRelease

# render.helm (and pyhelm3, pydantic) is imported by the functions that drive
# helm: an engine that never meets a release-mode app does not pay for it.

HELM_REVISION = "helmRevision"
"""Key of the Helm release revision in a sync's counts."""
RELEASE_KEY = "helm.release"
"""Key, in a Deployment's fingerprints, of '<namespace>/<release>' for release-mode apps."""


def release_of(applied: dict[str, str]) -> tuple[str, str] | None:
    """(namespace, release) recorded for a release-mode Deployment, else None."""
    value = applied.get(RELEASE_KEY)
    if not value or "/" not in value:
        return None
    namespace, name = value.split("/", 1)
    return namespace, name


def _timeout(options: SyncOptions) -> str:
    return f"{int(options.wait_timeout)}s"


async def _result(
    kube: KubeCluster,
    desired: DesiredState,
    release: HelmRelease,
    options: SyncOptions,
    started: float,
) -> SyncResult:
    health, failing, counts = await assess_objects(
        kube, desired.objects, wait=options.wait, timeout=options.wait_timeout
    )
    state: DeploymentState
    if release.status != "deployed":
        state = "ErrApplied"
    elif health.status is HealthStatus.HEALTHY:
        state = "Ready"
    else:
        state = "NotReady"
    counts[HELM_REVISION] = release.revision
    return SyncResult(
        app=desired.app,
        cluster=desired.cluster,
        revision=desired.revision,
        plan=Plan(()),
        state=state,
        health=health,
        inventory=Inventory(desired.app, ()),
        fingerprints={RELEASE_KEY: f"{release.namespace}/{release.name}"},
        failing=failing,
        resource_counts=counts,
        applied=len(desired.objects),
        seconds=time.monotonic() - started,
    )


async def install_or_upgrade(
    kube: KubeCluster,
    cluster: ClusterRecord,
    request: RenderRequest,
    desired: DesiredState,
    *,
    options: SyncOptions,
) -> SyncResult:
    """`helm upgrade --install` the app's release on one cluster, then assess its objects."""
    started = time.monotonic()
    assert request.helm is not None, "release mode is for helm apps"
    from appflow.render.helm import helm_install_or_upgrade

    release = await helm_install_or_upgrade(
        release=request.effective_release_name,
        namespace=request.namespace or "default",
        chart=request.helm,
        source_dir=request.source_dir,
        kubeconfig=Path(str(cluster.kubeconfig_path)),
        context=cluster.context,
        values=request.values,
        values_files=request.values_files,
        app=desired.app,
        cluster=cluster.name,
        helm_timeout=_timeout(options),
        wait=options.wait,
        description=f"appflow revision {desired.revision[:12]}",
        root=request.root,
        take_ownership=ANNOTATION_TAKE_OWNERSHIP in request.object_annotations,
        force_replace=ANNOTATION_REPLACE in request.object_annotations,
        skip_schema_validation=request.skip_schema_validation,
    )
    return await _result(kube, desired, release, options, started)


async def rollback(
    kube: KubeCluster,
    cluster: ClusterRecord,
    desired: DesiredState,
    *,
    release: str,
    namespace: str,
    helm_revision: int,
    options: SyncOptions,
) -> SyncResult:
    """`helm rollback` the release to HELM_REVISION on one cluster."""
    started = time.monotonic()
    from appflow.render.helm import helm_rollback

    result = await helm_rollback(
        release=release,
        namespace=namespace,
        kubeconfig=Path(str(cluster.kubeconfig_path)),
        context=cluster.context,
        revision=helm_revision,
        app=desired.app,
        cluster=cluster.name,
        helm_timeout=_timeout(options),
        wait=options.wait,
    )
    return await _result(kube, desired, result, options, started)


async def uninstall(cluster: ClusterRecord, *, app: str, release: str, namespace: str) -> None:
    from appflow.render.helm import helm_uninstall

    try:
        await helm_uninstall(
            release=release,
            namespace=namespace,
            kubeconfig=Path(str(cluster.kubeconfig_path)),
            context=cluster.context,
            app=app,
            cluster=cluster.name,
        )
    except AppflowError as err:
        raise err.located(app=app, cluster=cluster.name) from None

"""Helm release mode (`helm: {mode: release}`): an AppFlow as a Helm release on one cluster.

For charts that need Helm hooks and for teams who want `helm list` on the
cluster. The chart is still rendered with `helm template` for every target
first (by the caller), so a template error on any target touches no cluster;
then each cluster gets `helm upgrade --install`, and health is assessed on the
rendered objects. Helm owns the objects (its own inventory, the release
secret), so appflow's inventory and prune do not apply; uninstall is
`helm uninstall`, and a rollback is `helm rollback` to the Helm revision
recorded with the appflow revision (``HelmReleaseRef.history``).

helm reaches the cluster through the same kubeconfig and context as KUBE.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from appflow.engine.stages.health import assess_objects
from appflow.engine.stages.hooks import ClusterTests
from appflow.engine.stages.types import DesiredState, SyncOptions, SyncResult
from appflow.errors import AppflowError, ConfigError, HookError, Where
from appflow.kube.client import KubeCluster
from appflow.model.hooks import HookRun, Outcome, main_objects
from appflow.model.inventory import Inventory
from appflow.model.objects import ANNOTATION_REPLACE, ANNOTATION_TAKE_OWNERSHIP
from appflow.model.plan import Plan
from appflow.model.records import HelmReleaseRef
from appflow.model.status import deployment_state
from appflow.render.types import RenderRequest

if TYPE_CHECKING:
    from appflow.render.helm import HelmRelease

# render.helm (and pyhelm3, pydantic) is imported by the functions that drive
# helm: an engine that never meets a release-mode app does not pay for it.


def _kubeconfig(kube: KubeCluster) -> Path:
    """The kubeconfig helm reaches KUBE with (helm runs as its own process)."""
    if kube.connection.kubeconfig is None:
        raise ConfigError(
            "Helm release mode needs a kubeconfig for helm, and this connection has none "
            "(in-cluster credentials)",
            where=Where(cluster=kube.name),
            hint="use helm.mode: template, the default, for this app",
        )
    return kube.connection.kubeconfig


def _timeout(options: SyncOptions) -> str:
    return f"{int(options.wait_timeout)}s"


async def _result(
    kube: KubeCluster,
    desired: DesiredState,
    release: HelmRelease,
    options: SyncOptions,
    started: float,
) -> SyncResult:
    # Helm runs the hooks itself and owns what they leave: only the chart's objects count.
    health, failing, counts = await assess_objects(
        kube, main_objects(desired.objects), wait=options.wait, timeout=options.wait_timeout
    )
    return SyncResult(
        app=desired.app,
        cluster=desired.cluster,
        revision=desired.revision,
        plan=Plan(()),
        state=deployment_state(health.status, apply_failed=release.status != "deployed"),
        health=health,
        inventory=Inventory(desired.app, ()),
        fingerprints={},
        release=HelmReleaseRef(
            namespace=release.namespace, name=release.name, revision=release.revision
        ),
        failing=failing,
        resource_counts=counts,
        applied=len(desired.objects),
        seconds=time.monotonic() - started,
    )


async def install_or_upgrade(
    kube: KubeCluster, request: RenderRequest, desired: DesiredState, *, options: SyncOptions
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
        kubeconfig=_kubeconfig(kube),
        context=kube.connection.context,
        values=request.values,
        values_files=request.values_files,
        app=desired.app,
        cluster=kube.name,
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
    desired: DesiredState,
    *,
    release: HelmReleaseRef,
    helm_revision: int,
    options: SyncOptions,
) -> SyncResult:
    """`helm rollback` RELEASE to HELM_REVISION on one cluster."""
    started = time.monotonic()
    from appflow.render.helm import helm_rollback

    result = await helm_rollback(
        release=release.name,
        namespace=release.namespace,
        kubeconfig=_kubeconfig(kube),
        context=kube.connection.context,
        revision=helm_revision,
        app=desired.app,
        cluster=kube.name,
        helm_timeout=_timeout(options),
        wait=options.wait,
    )
    return await _result(kube, desired, result, options, started)


async def uninstall(kube: KubeCluster, *, app: str, release: HelmReleaseRef) -> None:
    """`helm uninstall` RELEASE from one cluster."""
    from appflow.render.helm import helm_uninstall

    try:
        await helm_uninstall(
            release=release.name,
            namespace=release.namespace,
            kubeconfig=_kubeconfig(kube),
            context=kube.connection.context,
            app=app,
            cluster=kube.name,
        )
    except AppflowError as err:
        raise err.located(app=app, cluster=kube.name) from None


async def test(
    kube: KubeCluster, *, app: str, release: HelmReleaseRef, timeout: float
) -> ClusterTests:
    """`helm test` RELEASE on one cluster: helm runs the chart's tests itself."""
    from appflow.render.helm import helm_test

    result = await helm_test(
        release=release.name,
        namespace=release.namespace,
        kubeconfig=_kubeconfig(kube),
        context=kube.connection.context,
        app=app,
        cluster=kube.name,
        helm_timeout=f"{int(timeout)}s",
    )
    runs = tuple(
        HookRun(
            hook=f"test {name} of helm release {release.name}",
            name=name,
            outcome=Outcome.SUCCEEDED if phase == "Succeeded" else Outcome.FAILED,
            message=f"phase {phase}",
        )
        for name, phase in result.tests
    )
    errors: tuple[AppflowError, ...] = ()
    if result.error is not None:
        where = Where(app=app, cluster=kube.name, object=f"helm release {release.name}")
        errors = (HookError(result.error, where=where),)
    return ClusterTests(cluster=kube.name, runs=runs, errors=errors, tests=len(runs))

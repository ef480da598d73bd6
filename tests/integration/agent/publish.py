"""What the hub controller writes for a pull cluster, written by tests: content and the
AppFlowDeployment naming it (staged, then released), as docs/hub.md §4 and §7 describe."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from appflow.kube.client import KubeCluster
from appflow.kube.content import ContentStore
from appflow.model.hub import API_VERSION, cluster_namespace
from appflow.model.objects import Manifest


def desired(
    kube: KubeCluster,
    workspace: str,
    objects: Sequence[Manifest],
    *,
    revision: int,
    base: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store OBJECTS as content of WORKSPACE; the desiredState that names them."""

    async def put() -> Any:
        return await ContentStore(kube, workspace).put_render(objects, base=base)

    stored = asyncio.run(put())
    return {
        "revision": revision,
        "renderDigest": stored.index.render_digest,
        "index": stored.digest,
        "options": {"prune": True, "selfHeal": True, **(options or {})},
    }


def write_deployment(
    kube: KubeCluster,
    *,
    workspace: str,
    cluster: str,
    app: str,
    staged: dict[str, Any] | None = None,
    released: dict[str, Any] | None = None,
) -> None:
    """Create or update APP's AppFlowDeployment for CLUSTER (spec only)."""
    namespace = cluster_namespace(workspace, cluster)
    spec: dict[str, Any] = {"app": app, "appNamespace": workspace, "cluster": cluster}
    if staged is not None:
        spec["staged"] = staged
    if released is not None:
        spec["released"] = released
    existing = kube.get_sync(API_VERSION, "AppFlowDeployment", app, namespace)
    if existing is None:
        kube.create_sync(
            {
                "apiVersion": API_VERSION,
                "kind": "AppFlowDeployment",
                "metadata": {"name": app, "namespace": namespace},
                "spec": spec,
            }
        )
    else:
        kube.patch_sync(API_VERSION, "AppFlowDeployment", app, namespace, {"spec": spec})


def deployment(kube: KubeCluster, *, workspace: str, cluster: str, app: str) -> dict[str, Any]:
    found = kube.get_sync(
        API_VERSION, "AppFlowDeployment", app, cluster_namespace(workspace, cluster)
    )
    return found or {}

"""Render: the desired state of one AppFlow on one Cluster, as objects and a Revision.

``render(request)`` dispatches to helm (``render.helm``), kustomize
(``render.kustomize``) or plain YAML folders (``render.plain``), all of which end
in the same object checks (``render.documents``). With a ``RenderCache``
unchanged inputs are served from the cache and nothing is run.

Values arrive already merged by the engine (inline < target customization,
cluster templating done); helm layers them over the chart defaults and the
values files. A chart with a kustomize dir is post-rendered by that
kustomization (Fleet's helm + kustomize). Then, for every kind: fleet.yaml's
``namespace`` forces every namespaced object into it (a cluster-scoped one is
an error), the request's object annotations are set, and a render that yields
no object at all is an error: a definition that names a chart or manifests
and deploys nothing is a mistake, never Ready.

Errors are RenderError (or a subclass of AppflowError for an unreachable
repository or cluster) carrying the app and the cluster.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from appflow.errors import AppflowError, RenderError
from appflow.model.objects import Manifest
from appflow.render.cache import RenderCache, render_key
from appflow.render.documents import force_namespace
from appflow.render.kustomize import post_render, render_kustomize
from appflow.render.plain import render_plain
from appflow.render.types import (
    Capabilities,
    HelmChartRef,
    Rendered,
    RenderKind,
    RenderRequest,
    revision_of,
)

__all__ = [
    "Capabilities",
    "HelmChartRef",
    "RenderCache",
    "RenderKind",
    "RenderRequest",
    "Rendered",
    "render",
    "render_key",
    "revision_of",
]


async def render(request: RenderRequest, *, cache: RenderCache | None = None) -> Rendered:
    """Render REQUEST, from CACHE when its inputs were rendered before."""
    try:
        request = await _fetch_chart_archive(request)
        request = await _pin_chart_version(request)
        if cache is None or request.server_render_kubeconfig is not None:
            return await _render(request)
        # render_key reads and digests the values files.
        key = await asyncio.to_thread(render_key, request)
        return await cache.get_or_render(key, lambda: _render(request))
    except AppflowError as err:
        raise err.located(app=request.app, cluster=request.cluster) from err


async def _fetch_chart_archive(request: RenderRequest) -> RenderRequest:
    """A chart given by URL becomes the archive downloaded from it, kept by its digest."""
    chart = request.helm
    if request.kind != "helm" or chart is None or chart.url is None or chart.path is not None:
        return request
    from appflow.render import helm as _helm

    archive = await _helm.fetch_chart_archive(chart.url)
    return replace(request, helm=replace(chart, path=archive))


async def _pin_chart_version(request: RenderRequest) -> RenderRequest:
    """Resolve a repository chart's version constraint to the exact version published now.

    The cache key and the Revision's provenance must name the chart version that
    was rendered, not a constraint that selects a newer one tomorrow.
    """
    chart = request.helm
    if request.kind != "helm" or chart is None or chart.path is not None:
        return request
    # Imported here: pyhelm3 and pydantic cost a fresh process a tenth of a
    # second, and apps of plain YAML or kustomize never need them.
    from appflow.render import helm as _helm

    if _helm.is_exact_version(chart.version):
        return request
    version = await _helm.resolve_chart_version(chart)
    return replace(request, helm=replace(chart, version=version))


async def _render(request: RenderRequest) -> Rendered:
    # Rendered.of digests every object (a canonical JSON of the whole render):
    # like parsing, it runs in a worker thread, never on the event loop.
    notes: list[str] = []
    chart_version: str | None = None
    objects: tuple[Manifest, ...]
    if request.kind == "helm":
        from appflow.render import helm as _helm

        out = await _helm.helm_template(request)
        notes.append(f"chart {out.chart_name} {out.chart_version}".rstrip())
        if request.server_render_kubeconfig is not None:
            notes.append("rendered against the cluster (helm --dry-run=server); not cached")
        if request.kustomize_dir:
            objects = await post_render(
                out.text,
                request.source_dir,
                kustomize_dir=request.kustomize_dir,
                namespace=request.namespace,
                root=request.root,
            )
            notes.append(f"post-rendered by kustomize build {request.kustomize_dir}")
        else:
            objects = out.objects
        chart_version = out.chart_version or None
    elif request.kind == "kustomize":
        objects = await render_kustomize(
            request.source_dir,
            kustomize_dir=request.kustomize_dir,
            namespace=request.namespace,
            root=request.root,
        )
        notes.append(f"kustomize build {request.kustomize_dir or '.'}")
    else:
        objects = await render_plain(
            request.source_dir, overlays=request.yaml_overlays, namespace=request.namespace
        )
        if request.yaml_overlays:
            notes.append(f"overlays {', '.join(request.yaml_overlays)}")
    return await asyncio.to_thread(
        lambda: Rendered.of(_finish(request, objects), notes=notes, chart_version=chart_version)
    )


def _finish(request: RenderRequest, objects: tuple[Manifest, ...]) -> tuple[Manifest, ...]:
    if not objects:
        raise RenderError(
            f"the {_what(request)} rendered no objects, so there is nothing to deploy",
            hint="check the values and the folder; to deploy nothing to some clusters, give "
            "them a target customization with doNotDeploy: true",
        )
    if request.force_namespace and request.namespace:
        objects = force_namespace(objects, request.namespace)
    if request.object_annotations:
        for obj in objects:
            meta = obj["metadata"]
            meta["annotations"] = {**(meta.get("annotations") or {}), **request.object_annotations}
    return objects


def _what(request: RenderRequest) -> str:
    if request.kind == "helm":
        chart = request.helm.describe() if request.helm else "?"
        return f"chart {chart}" + (
            f" post-rendered by {request.kustomize_dir}" if request.kustomize_dir else ""
        )
    if request.kind == "kustomize":
        return f"kustomization {request.kustomize_dir or '.'}"
    return "manifest folder" + (
        f" with overlays {', '.join(request.yaml_overlays)}" if request.yaml_overlays else ""
    )

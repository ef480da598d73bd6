"""Render: the desired state of one AppFlow on one Cluster, as objects and a Revision.

``render(request)`` dispatches to helm (``render.helm``), kustomize
(``render.kustomize``) or plain YAML folders (``render.plain``), all of which end
in the same object checks (``render.documents``). With a ``RenderCache``
unchanged inputs are served from the cache and nothing is run.

Values arrive already merged by the engine (inline < target customization,
cluster templating done); helm layers them over the chart defaults and the
values files. Errors are RenderError (or a subclass of AppflowError for an
unreachable repository or cluster) carrying the app and the cluster.
"""

from __future__ import annotations

from dataclasses import replace

from appflow.errors import AppflowError
from appflow.render.cache import RenderCache, render_key
from appflow.render.kustomize import render_kustomize
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
        request = await _pin_chart_version(request)
        if cache is None or request.server_render_kubeconfig is not None:
            return await _render(request)
        key = render_key(request)
        return await cache.get_or_render(key, lambda: _render(request))
    except AppflowError as err:
        err.located(app=request.app, cluster=request.cluster)
        raise


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
    if request.kind == "helm":
        from appflow.render import helm as _helm

        out = await _helm.helm_template(request)
        notes = [f"chart {out.chart_name} {out.chart_version}".rstrip()]
        if request.server_render_kubeconfig is not None:
            notes.append("rendered against the cluster (helm --dry-run=server); not cached")
        return Rendered.of(out.objects, notes=notes, chart_version=out.chart_version or None)
    if request.kind == "kustomize":
        objects = await render_kustomize(
            request.source_dir, kustomize_dir=request.kustomize_dir, namespace=request.namespace
        )
        return Rendered.of(objects, notes=[f"kustomize build {request.kustomize_dir or '.'}"])
    objects = await render_plain(
        request.source_dir, overlays=request.yaml_overlays, namespace=request.namespace
    )
    notes = [f"overlays {', '.join(request.yaml_overlays)}"] if request.yaml_overlays else []
    return Rendered.of(objects, notes=notes)

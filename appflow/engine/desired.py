"""From an AppDefinition and a Cluster to a RenderRequest: customization, values, namespace.

Values precedence, lowest first: chart defaults < valuesFiles (app's, then the
target customization's) < inline values < the customization's inline values.
Fleet's `${ .ClusterName }` / `${ .ClusterLabels.x }` templates are resolved
per cluster after merging.
"""

from __future__ import annotations

import functools
from pathlib import Path, PurePosixPath

from appflow.errors import ConfigError, Where
from appflow.model.appdef import AppDefinition
from appflow.model.capabilities import Capabilities
from appflow.model.targeting import ClusterGroup, ClusterInfo, customization_for
from appflow.model.values import merge_values, render_templated_values
from appflow.render.types import HelmChartRef, RenderRequest


def _inside(root: Path, relative: str, *, app: str, field: str) -> Path:
    path = (root / relative).resolve()
    if root.resolve() not in (path, *path.parents):
        raise ConfigError(
            f"{relative!r} points outside the repository",
            where=Where(app=app, field=field),
            hint="keep values files and folders inside the repository",
        )
    return path


def render_request(
    app: AppDefinition,
    *,
    repo_root: Path,
    source_digest: str,
    cluster: ClusterInfo,
    groups: dict[str, ClusterGroup],
    capabilities: Capabilities,
    kubeconfig: Path | None = None,
) -> RenderRequest:
    """The RenderRequest of APP for CLUSTER (pure apart from resolving paths)."""
    app_dir = repo_root / PurePosixPath(app.path) if app.path else repo_root
    custom = customization_for(app, cluster, groups)
    namespace = (custom.namespace if custom and custom.namespace else None) or app.namespace
    # What every kind of request shares.
    request = functools.partial(
        RenderRequest,
        app=app.name,
        cluster=cluster.name,
        source_dir=app_dir,
        source_digest=source_digest,
        capabilities=capabilities,
        namespace=namespace,
    )
    if app.kind == "helm":
        helm = app.helm
        assert helm is not None, "a helm app has a helm spec"
        values = merge_values(helm.values, custom.helm_values if custom else None)
        if helm.templating:
            values = render_templated_values(
                values, cluster_name=cluster.name, cluster_labels=cluster.labels
            )
        files = tuple(helm.values_files) + (tuple(custom.helm_values_files) if custom else ())
        values_files = tuple(
            _inside(
                repo_root, str(PurePosixPath(app.path) / f), app=app.name, field="helm.valuesFiles"
            )
            for f in files
        )
        for f in values_files:
            if not f.is_file():
                raise ConfigError(
                    f"values file {f.relative_to(repo_root.resolve())} does not exist",
                    where=Where(app=app.name, cluster=cluster.name, field="helm.valuesFiles"),
                )
        if helm.repo or helm.chart.startswith("oci://"):
            chart = HelmChartRef(repo=helm.repo, name=helm.chart, version=helm.version)
        else:
            chart = HelmChartRef(
                path=_inside(
                    repo_root,
                    str(PurePosixPath(app.path) / helm.chart),
                    app=app.name,
                    field="helm.chart",
                ),
                version=helm.version,
            )
        return request(
            kind="helm",
            helm=chart,
            release_name=helm.release_name,
            values=values,
            values_files=values_files,
            server_render_kubeconfig=kubeconfig if helm.lookup else None,
        )
    if app.kind == "kustomize":
        base = app.kustomize.dir if app.kustomize else "."
        chosen = custom.kustomize_dir if custom and custom.kustomize_dir else base
        return request(kind="kustomize", kustomize_dir=chosen)
    overlays = app.yaml.overlays if app.yaml else ()
    if custom and custom.yaml_overlays:
        overlays = custom.yaml_overlays
    return request(kind="yaml", yaml_overlays=tuple(overlays))

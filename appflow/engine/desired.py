"""Desired state: from an AppDefinition and a Cluster to the objects to sync there.

The RenderRequest first (customization, values, namespace), then the render (secret
inputs decrypted for the cluster, cached by content unless it saw plaintext), then the
app's namespace added when the objects use it.

Values precedence, lowest first. appflow.yaml: chart defaults < valuesFiles
(app's, then the target customization's) < inline values < the customization's
inline values, as helm's -f < --set. fleet.yaml, as Fleet merges them: chart
defaults < inline values < valuesFiles < the customization's inline values <
its valuesFiles. Then, for both, valuesFrom (ConfigMaps and Secrets read from
the target cluster, the app's entries then the customization's, which Fleet
layers last). `${ .ClusterName }` / `${ .ClusterLabels.x }` templates are
resolved per cluster after merging; valuesFrom content is taken as it is.

What is rendered follows Fleet's per-cluster choice: a chart (post-rendered by
the kustomize dir when one applies), else a kustomization (the customization's
dir over the app's), else the folder's manifests with overlays. Namespaces:
fleet.yaml's ``namespace`` (the customization's over the app's) forces every
object into it; otherwise the customization's default namespace over the app's.
"""

from __future__ import annotations

import base64
import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from appflow.engine.connections import Connections
from appflow.engine.policies import check_values_from, lookup_render
from appflow.engine.secrets import SecretsStage
from appflow.engine.sources import Source
from appflow.engine.stages.types import DesiredState, SyncOptions
from appflow.errors import ConfigError, Where
from appflow.model.appdef import AppDefinition, TargetCustomization, ValuesFrom, is_chart_url
from appflow.model.capabilities import Capabilities
from appflow.model.objects import (
    ANNOTATION_PRUNE,
    ANNOTATION_REPLACE,
    ANNOTATION_SHARED,
    ANNOTATION_TAKE_OWNERSHIP,
    Manifest,
)
from appflow.model.ownership import digest
from appflow.model.policy import Policy
from appflow.model.records import ClusterRecord
from appflow.model.targeting import ClusterGroup, ClusterInfo, customization_for
from appflow.model.values import merge_values, render_templated_values
from appflow.render import render
from appflow.render.cache import RenderCache
from appflow.render.types import HelmChartRef, RenderRequest

if TYPE_CHECKING:
    from appflow.kube.client import KubeCluster


_RESOLVED: ContextVar[dict[tuple[Path, str], Path] | None] = ContextVar(
    "appflow_resolved_paths", default=None
)


@contextlib.contextmanager
def paths_resolved_once() -> Iterator[None]:
    """Within this block (one sync rendering one fetched source for many clusters), a path
    checked by ``_inside`` is resolved once, not once per cluster: resolving follows every
    component of the path with a system call, which for a fleet of pull clusters was the
    largest part of a render served from the cache."""
    token = _RESOLVED.set({})
    try:
        yield
    finally:
        _RESOLVED.reset(token)


def _inside(root: Path, relative: str, *, app: str, field: str) -> Path:
    memo = _RESOLVED.get()
    path = memo.get((root, relative)) if memo is not None else None
    if path is not None:
        return path
    path = (root / relative).resolve()
    if root.resolve() not in (path, *path.parents):
        raise ConfigError(
            f"{relative!r} points outside the repository",
            where=Where(app=app, field=field),
            hint="keep values files and folders inside the repository",
        )
    if memo is not None:
        memo[(root, relative)] = path
    return path


def _namespaces(app: AppDefinition, custom: TargetCustomization | None) -> tuple[str, bool]:
    """The app's namespace on a cluster, and whether every object is forced into it."""
    forced = (custom.force_namespace if custom else None) or app.force_namespace
    if forced:
        return forced, True
    return (custom.namespace if custom and custom.namespace else None) or app.namespace, False


def _object_annotations(app: AppDefinition) -> dict[str, str]:
    """What the app's sync policy asks to be marked on each of its objects."""
    marks: dict[str, str] = {}
    if app.sync_policy.replace_immutable:
        marks[ANNOTATION_REPLACE] = "true"
    if app.sync_policy.take_ownership:
        marks[ANNOTATION_TAKE_OWNERSHIP] = "true"
    return marks


def render_request(
    app: AppDefinition,
    *,
    repo_root: Path,
    source_digest: str,
    cluster: ClusterInfo,
    groups: dict[str, ClusterGroup],
    capabilities: Capabilities,
    values_from: Sequence[Mapping[str, Any]] = (),
) -> RenderRequest:
    """The RenderRequest of APP for CLUSTER (pure apart from resolving paths).

    VALUES_FROM are the values read for the cluster by ``read_values_from``.
    """
    app_dir = repo_root / PurePosixPath(app.path) if app.path else repo_root
    custom = customization_for(app, cluster, groups)
    namespace, forced = _namespaces(app, custom)
    kustomize_dir = (custom.kustomize_dir if custom else None) or (
        app.kustomize.dir if app.kustomize else None
    )
    # What every kind of request shares.
    request = functools.partial(
        RenderRequest,
        app=app.name,
        cluster=cluster.name,
        source_dir=app_dir,
        source_digest=source_digest,
        capabilities=capabilities,
        namespace=namespace,
        source_root=repo_root,
        force_namespace=forced,
        object_annotations=_object_annotations(app),
    )
    if app.kind == "helm":
        helm = app.helm
        assert helm is not None, "a helm app has a helm spec"
        values, values_files = _helm_values(app, custom, cluster, repo_root, values_from)
        return request(
            kind="helm",
            helm=_chart_ref(app, repo_root),
            release_name=helm.release_name,
            values=values,
            values_files=values_files,
            skip_schema_validation=helm.skip_schema_validation,
            kustomize_dir=kustomize_dir if kustomize_dir not in (None, "") else None,
        )
    if app.kind == "kustomize" or kustomize_dir:
        # A manifest app whose customization names a kustomize dir is built by
        # kustomize on those clusters, as Fleet decides per cluster.
        return request(kind="kustomize", kustomize_dir=kustomize_dir or ".")
    overlays = app.yaml.overlays if app.yaml else ()
    if custom and custom.yaml_overlays:
        overlays = custom.yaml_overlays
    return request(kind="yaml", yaml_overlays=tuple(overlays))


def _values_files(
    app: AppDefinition, repo_root: Path, cluster: ClusterInfo, names: Sequence[str]
) -> tuple[Path, ...]:
    found = tuple(
        _inside(repo_root, str(PurePosixPath(app.path) / f), app=app.name, field="helm.valuesFiles")
        for f in names
    )
    for f in found:
        if not f.is_file():
            raise ConfigError(
                f"values file {f.relative_to(repo_root.resolve())} does not exist",
                where=Where(app=app.name, cluster=cluster.name, field="helm.valuesFiles"),
            )
    return found


def _helm_values(
    app: AppDefinition,
    custom: TargetCustomization | None,
    cluster: ClusterInfo,
    repo_root: Path,
    values_from: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, Any], tuple[Path, ...]]:
    """The inline values of APP's chart for CLUSTER, and the values files helm reads."""
    helm = app.helm
    assert helm is not None, "a helm app has a helm spec"
    root_files = _values_files(app, repo_root, cluster, helm.values_files)
    custom_files = _values_files(
        app, repo_root, cluster, custom.helm_values_files if custom else ()
    )
    if helm.values_files_win:
        # Fleet merges each level's valuesFiles over its inline values, the
        # target's level over the app's, and only then templates the result.
        values = merge_values(helm.values, *_read_values(root_files, repo_root, app.name))
        if custom:
            values = merge_values(values, custom.helm_values)
            values = merge_values(values, *_read_values(custom_files, repo_root, app.name))
        values_files: tuple[Path, ...] = ()
    else:
        values = merge_values(helm.values, custom.helm_values if custom else None)
        values_files = root_files + custom_files
    if helm.templating:
        values = render_templated_values(
            values, cluster_name=cluster.name, cluster_labels=cluster.labels
        )
    for layer in values_from:
        values = merge_values(values, layer)
    return values, values_files


def _chart_ref(app: AppDefinition, repo_root: Path) -> HelmChartRef:
    helm = app.helm
    assert helm is not None, "a helm app has a helm spec"
    if helm.repo or helm.chart.startswith("oci://"):
        chart = HelmChartRef(repo=helm.repo, name=helm.chart, version=helm.version)
    elif is_chart_url(helm.chart):
        chart = HelmChartRef(url=helm.chart, version=helm.version)
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
    return replace(chart, dependency_update=helm.dependency_update)


def _read_values(files: Sequence[Path], root: Path, app: str) -> list[Mapping[str, Any]]:
    layers: list[Mapping[str, Any]] = []
    for path in files:
        shown = path.relative_to(root.resolve()).as_posix()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(
                f"cannot read values file: {err}", where=Where(app=app, file=shown)
            ) from err
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            raise ConfigError(
                f"values file is not valid YAML: {getattr(err, 'problem', err)}",
                where=Where(app=app, file=shown, line=mark.line + 1 if mark else None),
            ) from err
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(
                "a values file must hold a mapping of values", where=Where(app=app, file=shown)
            )
        if "sops" in data:
            # Merged here, ciphertext would reach the chart as values.
            raise ConfigError(
                "the values file is SOPS-encrypted, and a fleet.yaml app cannot name files to "
                "decrypt",
                where=Where(app=app, file=shown),
                hint="decrypt it with sops before committing, or define the app in an "
                "appflow.yaml with decryption.paths",
            )
        layers.append(data)
    return layers


def values_from_refs(
    app: AppDefinition, cluster: ClusterInfo, groups: dict[str, ClusterGroup]
) -> tuple[tuple[ValuesFrom, ...], str]:
    """The valuesFrom entries that hold for CLUSTER (the app's, then its customization's),
    and the namespace that entries naming none are read from."""
    if app.helm is None:
        return (), app.namespace
    custom = customization_for(app, cluster, groups)
    refs = app.helm.values_from + (custom.helm_values_from if custom else ())
    return refs, _namespaces(app, custom)[0]


async def read_values_from(
    kube: KubeCluster,
    refs: Sequence[ValuesFrom],
    *,
    namespace: str,
    app: str,
    cluster: str,
    file: str | None = None,
) -> list[Mapping[str, Any]]:
    """The values each of REFS holds on the cluster, in order.

    As in Fleet and Flux, a ConfigMap or Secret that is missing, or lacks the
    key, is an error naming it: rendering without the values it holds would
    deploy something other than what was written. A cluster that does not
    answer is a ClusterError, as any other read of it.
    """
    layers: list[Mapping[str, Any]] = []
    for ref in refs:
        ns = ref.namespace or namespace
        where = Where(app=app, cluster=cluster, file=file, field="helm.valuesFrom")
        obj = await kube.get("v1", ref.kind, ref.name, ns)
        if obj is None:
            raise ConfigError(
                f"helm.valuesFrom: {ref.kind} {ns}/{ref.name} does not exist on the cluster",
                where=where,
                hint=f"create it on {cluster}, or remove the entry",
            )
        raw: str | None
        if ref.kind == "Secret":
            encoded = (obj.get("data") or {}).get(ref.key)
            raw = base64.b64decode(encoded).decode("utf-8", "replace") if encoded else None
        else:
            raw = (obj.get("data") or {}).get(ref.key)
        if raw is None:
            raise ConfigError(
                f"helm.valuesFrom: {ref.kind} {ns}/{ref.name} has no key {ref.key!r}",
                where=where,
                hint="the key must hold a YAML document of Helm values",
            )
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(
                f"helm.valuesFrom: key {ref.key!r} of {ref.kind} {ns}/{ref.name} is not YAML: {err}",
                where=where,
            ) from err
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"helm.valuesFrom: key {ref.key!r} of {ref.kind} {ns}/{ref.name} must hold a "
                f"mapping of values, not {type(data).__name__}",
                where=where,
            )
        layers.append(data)
    return layers


def options_for(app: AppDefinition, options: SyncOptions) -> SyncOptions:
    """OPTIONS as the app's helm.timeoutSeconds shapes them: a deadline, or no wait at all."""
    timeout = app.sync_policy.timeout_seconds
    if timeout is None:
        return options
    if timeout <= 0:
        return replace(options, wait=False)
    return replace(options, wait_timeout=float(timeout))


_NOT_DISCOVERED = Capabilities(kube_version="")
"""Stands in for the capabilities of renders that do not use them."""


async def request_for(
    definition: AppDefinition,
    source: Source,
    cluster: ClusterRecord,
    *,
    groups: Mapping[str, ClusterGroup],
    connections: Connections,
    policies: Sequence[Policy] = (),
) -> RenderRequest:
    """The RenderRequest of DEFINITION for CLUSTER (valuesFrom read from the cluster, in
    the namespaces POLICIES let the app read)."""
    # Only helm renders use the cluster's capabilities (.Capabilities, and the
    # render cache's key); plain YAML and kustomize do not wait for discovery.
    capabilities = (
        await connections.capabilities(cluster) if definition.kind == "helm" else _NOT_DISCOVERED
    )
    info = ClusterInfo(name=cluster.name, labels=cluster.labels)
    refs, namespace = values_from_refs(definition, info, dict(groups))
    if refs:
        check_values_from(
            refs, namespace=namespace, policies=policies, app=definition.name, cluster=cluster.name
        )
    return render_request(
        definition,
        repo_root=source.root,
        source_digest=source.digest,
        cluster=info,
        groups=dict(groups),
        capabilities=capabilities,
        values_from=await read_values_from(
            connections.kube(cluster),
            refs,
            namespace=namespace,
            app=definition.name,
            cluster=cluster.name,
            file=definition.definition_file,
        )
        if refs
        else (),
    )


async def render_desired(
    definition: AppDefinition,
    source: Source,
    cluster: ClusterRecord,
    *,
    groups: Mapping[str, ClusterGroup],
    connections: Connections,
    cache: RenderCache,
    secrets: SecretsStage,
    policies: Sequence[Policy] = (),
    release: bool = False,
) -> tuple[RenderRequest, DesiredState]:
    """What DEFINITION puts on CLUSTER, rendered (from the cache when rendered before).

    Secret inputs are decrypted for CLUSTER first (``engine.secrets``); a render that
    saw plaintext skips the cache. A chart that asks for helm lookup renders against
    a view of CLUSTER that POLICIES (the operator's, for this app there) confine, or
    not at all. For Helm release mode (RELEASE) helm installs from the returned
    request, so the objects are not revealed: they only serve health.
    """
    request = await request_for(
        definition, source, cluster, groups=groups, connections=connections, policies=policies
    )
    # The cluster's client only when the chart looks up: a pull-mode cluster of the hub has no
    # connection here, and its renders need none.
    return await render_request_for(
        definition,
        request,
        cluster,
        groups=groups,
        kube=lambda: connections.kube(cluster),
        cache=cache,
        secrets=secrets,
        policies=policies,
        release=release,
    )


async def render_request_for(
    definition: AppDefinition,
    request: RenderRequest,
    cluster: ClusterRecord,
    *,
    groups: Mapping[str, ClusterGroup],
    kube: Callable[[], KubeCluster],
    cache: RenderCache | None,
    secrets: SecretsStage,
    policies: Sequence[Policy] = (),
    release: bool = False,
) -> tuple[RenderRequest, DesiredState]:
    """REQUEST (DEFINITION's for CLUSTER) rendered: its secret inputs decrypted with what
    SECRETS holds for CLUSTER, rendered, revealed, the app's namespace added. The push engine
    (through ``render_desired``) and a pull agent rendering on its cluster
    (``appflow.agent.render``) both render with this; KUBE gives the cluster's client, asked
    for only when the chart uses helm lookup."""
    opened = await secrets.open(definition, request, cluster=cluster, groups=groups)
    async with lookup_render(kube, definition, opened.request, policies) as rendering:
        rendered = await render(rendering, cache=cache if opened.cacheable else None)
    if release:
        objects = rendered.objects
        revision = rendered.revision
    else:
        revealed = await secrets.reveal(opened, rendered.objects, definition=definition)
        objects = with_app_namespace(
            revealed,
            request.namespace,
            labels=definition.namespace_labels,
            annotations=definition.namespace_annotations,
        )
        revision = (
            rendered.revision
            if objects == rendered.objects
            else digest([rendered.revision, request.namespace])
        )
    return opened.request, DesiredState(
        app=definition.name,
        cluster=cluster.name,
        objects=objects,
        revision=opened.revision(objects, revision),
        redactor=opened.redactor,
    )


def with_app_namespace(
    objects: tuple[Manifest, ...],
    namespace: str | None,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> tuple[Manifest, ...]:
    """OBJECTS plus the app's namespace, when they use it and do not define it.

    As Fleet does with defaultNamespace, the namespace is created for the app. It
    is shared: owned by no app, because several apps deploy into one namespace
    and each adds it (one owner would make every other app's sync a conflict),
    and so never pruned, because deleting a namespace deletes everything in it,
    including objects appflow does not own. fleet.yaml's namespaceLabels and
    namespaceAnnotations are set on it (then it is created even where Kubernetes
    made it, as Fleet labels the namespace it deploys to).
    """
    marked = bool(labels or annotations)
    if not namespace or (namespace in ("default", "kube-system") and not marked):
        return objects
    defined = any(
        m.get("kind") == "Namespace" and (m.get("metadata") or {}).get("name") == namespace
        for m in objects
    )
    used = any((m.get("metadata") or {}).get("namespace") == namespace for m in objects)
    if defined or not (used or marked):
        return objects
    metadata: dict[str, object] = {
        "name": namespace,
        "annotations": {
            **(annotations or {}),
            ANNOTATION_SHARED: "true",
            ANNOTATION_PRUNE: "false",
        },
    }
    if labels:
        metadata["labels"] = dict(labels)
    created: Manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
    return (created, *objects)

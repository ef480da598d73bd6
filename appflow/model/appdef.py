"""App definitions: what an ``appflow.yaml`` or ``fleet.yaml`` says, as frozen data.

This module owns the AppDefinition model and the two pure builders that turn a
parsed document into one. Reading files, YAML parsing and JSON Schema
validation live in ``appflow.sources.appdef``; the builders get the parsed
document plus, optionally, a map of where each field was written so that their
errors can name file, line and field path.

fleet.yaml policy (Fleet's documented fields, see rancher/fleet-docs
``ref-fleet-yaml.md``):

* read and honoured: ``name``, ``labels``, ``defaultNamespace``, ``namespace``,
  ``helm.{chart, repo, version, releaseName, values, valuesFiles,
  timeoutSeconds, disablePreProcess, atomic}``, ``kustomize.dir``,
  ``yaml.overlays``, ``targetCustomizations`` (clusterName, clusterGroup,
  clusterSelector; namespace/defaultNamespace, helm values/valuesFiles,
  kustomize.dir, yaml.overlays), ``dependsOn``, ``paused`` (syncPolicy.auto
  false), ``keepResources`` (syncPolicy.prune false), ``correctDrift.enabled``
  (syncPolicy.selfHeal), ``overrideTargets`` (targets), ``rolloutStrategy``
  (maxUnavailable, autoPartitionSize, partitions by clusterSelector or
  clusterGroup).
* accepted with a warning on the AppDefinition, because ignoring them cannot
  deploy something other than what the user wrote: see ``_FLEET_WARN``.
* rejected with a ConfigError naming the field: see ``_FLEET_REJECT``. These
  would change what lands on a cluster, so silently dropping them is unsafe.
* A field set to its "off" value (false, empty, null) is never an error: it
  asks for nothing appflow lacks.
* Fields Fleet does not document are rejected as unknown (most are typos).

Targets: Fleet decides targets in the GitRepo, not in fleet.yaml. In appflow
an AppDefinition without targets goes to every registered cluster; repository
registration may narrow that further.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from appflow.errors import ConfigError, Where

SourceKind = Literal["helm", "kustomize", "yaml"]
Origin = Literal["appflow.yaml", "fleet.yaml", "defaults"]
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
HelmMode = Literal["template", "release"]
CountOrPercent = int | str

JsonPath = tuple[str | int, ...]
Positions = Mapping[JsonPath, tuple[int, int]]
"""Where each field of a document was written: JSON path -> (line, column), 1-based."""

DEFAULT_NAMESPACE = "default"
_PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")


@dataclass(frozen=True)
class LabelRequirement:
    """One matchExpressions entry: ``key operator values``."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector; the empty selector matches everything."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[LabelRequirement, ...] = ()


@dataclass(frozen=True)
class ClusterTarget:
    """A cluster selection; every criterion that is set must hold (Fleet's rule)."""

    name: str
    cluster_name: str | None = None
    cluster_group: str | None = None
    selector: LabelSelector | None = None


@dataclass(frozen=True)
class HelmSpec:
    """How to render a Helm chart. ``chart`` is a path relative to the app folder,
    a chart name in ``repo``, or an ``oci://`` reference; "." is the folder itself."""

    chart: str = "."
    repo: str | None = None
    version: str | None = None
    release_name: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    values_files: tuple[str, ...] = ()
    mode: HelmMode = "template"
    timeout_seconds: int | None = None
    templating: bool = True
    """Whether ``${ }`` templates in values are rendered per cluster (fleet.yaml disablePreProcess)."""
    lookup: bool = False
    """Render with helm's --dry-run=server against the target, so `lookup` sees live objects."""


@dataclass(frozen=True)
class KustomizeSpec:
    """The folder, relative to the app folder, that holds kustomization.yaml."""

    dir: str = "."


@dataclass(frozen=True)
class YamlSpec:
    """Plain manifests; overlays name folders under ``overlays/`` applied in order."""

    overlays: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetCustomization:
    """Overrides for the clusters ``target`` matches; the first matching entry wins."""

    target: ClusterTarget
    namespace: str | None = None
    helm_values: Mapping[str, Any] = field(default_factory=dict)
    helm_values_files: tuple[str, ...] = ()
    kustomize_dir: str | None = None
    yaml_overlays: tuple[str, ...] = ()


@dataclass(frozen=True)
class EncryptedValues:
    """A SOPS-encrypted Helm values file kept as its ciphertext (a catalog install's --values)."""

    name: str
    content: str


@dataclass(frozen=True)
class DecryptionSpec:
    """Which inputs of the app are SOPS-encrypted and decrypted for each cluster.

    ``paths`` are globs or folders (ending in '/') relative to the app folder.
    Every SOPS-encrypted input must be named here and every file named here
    must be encrypted (see engine.secrets). ``values`` are encrypted values
    files held as ciphertext (catalog installs), applied over the other values.
    """

    provider: Literal["sops"] = "sops"
    paths: tuple[str, ...] = ()
    values: tuple[EncryptedValues, ...] = ()


@dataclass(frozen=True)
class SyncPolicy:
    """When and how changes reach clusters."""

    auto: bool = True
    prune: bool = True
    self_heal: bool = False
    force_conflicts: bool = False


@dataclass(frozen=True)
class RolloutPartition:
    """One wave of a rollout: the clusters ``target`` matches."""

    target: ClusterTarget
    max_unavailable: CountOrPercent | None = None


@dataclass(frozen=True)
class RolloutSpec:
    """The order and pace in which clusters receive a new revision."""

    max_unavailable: CountOrPercent = "100%"
    partitions: tuple[RolloutPartition, ...] = ()
    auto_partition_size: CountOrPercent = "25%"
    health_timeout_seconds: int | None = None
    auto_rollback: bool = False


@dataclass(frozen=True)
class Dependency:
    """An AppFlow that must be Ready first: by ``name`` or by label ``selector``."""

    name: str | None = None
    selector: LabelSelector | None = None


@dataclass(frozen=True)
class AppDefinition:
    """One AppFlow as defined in a repository folder."""

    name: str
    path: str
    """Folder relative to the repository root, posix separators; "" is the root."""
    kind: SourceKind
    namespace: str = DEFAULT_NAMESPACE
    labels: Mapping[str, str] = field(default_factory=dict)
    helm: HelmSpec | None = None
    kustomize: KustomizeSpec | None = None
    yaml: YamlSpec | None = None
    targets: tuple[ClusterTarget, ...] = ()
    """Empty means every registered cluster."""
    customizations: tuple[TargetCustomization, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    sync_policy: SyncPolicy = SyncPolicy()
    rollout: RolloutSpec = RolloutSpec()
    decryption: DecryptionSpec | None = None
    origin: Origin = "defaults"
    definition_file: str | None = None
    """The appflow.yaml or fleet.yaml read, relative to the repository root."""
    warnings: tuple[str, ...] = ()
    """Things written in the definition that appflow ignores; shown to the user."""


# --- shared helpers ---------------------------------------------------------


def format_path(path: JsonPath) -> str:
    """('rollout', 'partitions', 0, 'name') -> 'rollout.partitions[0].name'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def locate(positions: Positions | None, path: JsonPath) -> tuple[int | None, int | None]:
    """The line and column of ``path``, or of its nearest ancestor that was recorded."""
    if not positions:
        return None, None
    probe = path
    while True:
        if probe in positions:
            return positions[probe]
        if not probe:
            return None, None
        probe = probe[:-1]


class _Reader:
    """Typed access to one parsed document, raising ConfigError at the right place."""

    def __init__(self, *, file: str, positions: Positions | None) -> None:
        self.file = file
        self.positions = positions
        self.warnings: list[str] = []

    def error(self, path: JsonPath, message: str, *, hint: str | None = None) -> ConfigError:
        line, column = locate(self.positions, path)
        where = Where(file=self.file, line=line, column=column, field=format_path(path) or None)
        return ConfigError(message, where=where, hint=hint)

    def where_text(self, path: JsonPath) -> str:
        line, _ = locate(self.positions, path)
        place = f"{self.file}:{line}" if line is not None else self.file
        return f"{place}: {format_path(path)}"

    def mapping(self, value: Any, path: JsonPath) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(path, f"must be a mapping, not {_type_name(value)}")
        return cast(Mapping[str, Any], value)

    def sequence(self, value: Any, path: JsonPath) -> Sequence[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(path, f"must be a list, not {_type_name(value)}")
        return value

    def string(self, value: Any, path: JsonPath) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(
                path,
                f"must be a string, not {_type_name(value)} {value!r}",
                hint="quote the value in YAML",
            )
        return value

    def strings(self, value: Any, path: JsonPath) -> tuple[str, ...]:
        items = self.sequence(value, path)
        return tuple(cast(str, self.string(item, (*path, i))) for i, item in enumerate(items))

    def boolean(self, value: Any, path: JsonPath, *, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, not {value!r}")
        return value

    def positive_int(self, value: Any, path: JsonPath) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(path, f"must be a whole number of at least 1, not {value!r}")
        return value

    def count_or_percent(self, value: Any, path: JsonPath, *, minimum: int = 0) -> CountOrPercent:
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        if isinstance(value, str) and _PERCENT.match(value):
            return value
        raise self.error(
            path,
            f"must be a number of clusters (>= {minimum}) or a percentage from 0% to 100%, "
            f"not {value!r}",
        )

    def labels(self, value: Any, path: JsonPath) -> dict[str, str]:
        labels = self.mapping(value, path)
        out: dict[str, str] = {}
        for key, val in labels.items():
            text = self.string(val, (*path, key))
            out[str(key)] = text or ""
        return out

    def selector(self, value: Any, path: JsonPath) -> LabelSelector:
        doc = self.mapping(value, path)
        self.only(doc, path, {"matchLabels", "matchExpressions"})
        requirements: list[LabelRequirement] = []
        for i, item in enumerate(
            self.sequence(doc.get("matchExpressions"), (*path, "matchExpressions"))
        ):
            ipath: JsonPath = (*path, "matchExpressions", i)
            expr = self.mapping(item, ipath)
            self.only(expr, ipath, {"key", "operator", "values"})
            key = self.string(expr.get("key"), (*ipath, "key"))
            op = expr.get("operator")
            if not key:
                raise self.error((*ipath, "key"), "is required")
            if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
                raise self.error(
                    (*ipath, "operator"),
                    f"must be one of In, NotIn, Exists, DoesNotExist, not {op!r}",
                )
            values = self.strings(expr.get("values"), (*ipath, "values"))
            if op in ("In", "NotIn") and not values:
                raise self.error((*ipath, "values"), f"{op} needs at least one value")
            if op in ("Exists", "DoesNotExist") and values:
                raise self.error((*ipath, "values"), f"{op} takes no values")
            requirements.append(LabelRequirement(key=key, operator=op, values=values))
        return LabelSelector(
            match_labels=self.labels(doc.get("matchLabels"), (*path, "matchLabels")),
            match_expressions=tuple(requirements),
        )

    def target(self, doc: Mapping[str, Any], path: JsonPath, *, index: int) -> ClusterTarget:
        selector_doc = doc.get("clusterSelector")
        target = ClusterTarget(
            name=self.string(doc.get("name"), (*path, "name")) or f"target{index:03d}",
            cluster_name=self.string(doc.get("clusterName"), (*path, "clusterName")),
            cluster_group=self.string(doc.get("clusterGroup"), (*path, "clusterGroup")),
            # Fleet: `clusterSelector: {}` matches everything, a missing one is no criterion.
            selector=None
            if selector_doc is None
            else self.selector(selector_doc, (*path, "clusterSelector")),
        )
        if target.cluster_name is None and target.cluster_group is None and target.selector is None:
            raise self.error(
                path,
                f"target {target.name!r} selects no cluster",
                hint="set clusterName, clusterGroup or clusterSelector ({} matches every cluster)",
            )
        return target

    def only(self, doc: Mapping[str, Any], path: JsonPath, allowed: set[str]) -> None:
        for key in doc:
            if key not in allowed:
                raise self.error(
                    (*path, key),
                    f"unknown field {key!r}",
                    hint="allowed here: " + ", ".join(sorted(allowed)),
                )

    def dependencies(self, value: Any, path: JsonPath) -> tuple[Dependency, ...]:
        deps: list[Dependency] = []
        for i, item in enumerate(self.sequence(value, path)):
            doc = self.mapping(item, (*path, i))
            self.only(doc, (*path, i), {"name", "selector"})
            name = self.string(doc.get("name"), (*path, i, "name"))
            has_selector = doc.get("selector") is not None
            if (name is None) == (not has_selector):
                raise self.error((*path, i), "give exactly one of name or selector")
            selector = (
                self.selector(doc["selector"], (*path, i, "selector")) if has_selector else None
            )
            deps.append(Dependency(name=name, selector=selector))
        return tuple(deps)


def _type_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__


def _infer_kind(
    reader: _Reader,
    doc: Mapping[str, Any],
    *,
    explicit: Any,
    default_kind: SourceKind,
    helm_implies: bool,
) -> SourceKind:
    """The source kind: explicit, else the one section present, else what the folder holds."""
    sections = [
        k for k in ("helm", "kustomize", "yaml") if doc.get(k) and (k != "helm" or helm_implies)
    ]
    if explicit is not None:
        for other in sections:
            if other != explicit:
                raise reader.error(
                    (other,),
                    f"{other} is set but source is {explicit}",
                    hint=f"remove the {other} section or set source: {other}",
                )
        return cast(SourceKind, explicit)
    if len(sections) > 1:
        raise reader.error(
            (sections[1],),
            f"both {sections[0]} and {sections[1]} are set",
            hint="keep one, or say which with source: helm|kustomize|yaml",
        )
    if sections:
        return cast(SourceKind, sections[0])
    return default_kind


def _specs(
    kind: SourceKind, helm: HelmSpec | None, kustomize: KustomizeSpec | None, yaml: YamlSpec | None
) -> dict[str, Any]:
    return {
        "helm": (helm or HelmSpec()) if kind == "helm" else None,
        "kustomize": (kustomize or KustomizeSpec()) if kind == "kustomize" else None,
        "yaml": (yaml or YamlSpec()) if kind == "yaml" else None,
    }


# --- appflow.yaml -------------------------------------------------------------


def from_appflow_document(
    doc: Mapping[str, Any],
    *,
    path: str,
    file: str,
    default_name: str | None = None,
    default_kind: SourceKind = "yaml",
    positions: Positions | None = None,
) -> AppDefinition:
    """Build an AppDefinition from a parsed ``appflow.yaml``.

    ``doc`` is expected to have passed the JSON Schema; the checks here are the
    ones a schema cannot express. ``default_kind`` is what the folder holds
    (Chart.yaml -> helm, kustomization.yaml -> kustomize) and is used when
    neither ``source`` nor a section says otherwise.
    """
    r = _Reader(file=file, positions=positions)
    kind = _infer_kind(
        r, doc, explicit=doc.get("source"), default_kind=default_kind, helm_implies=True
    )

    helm_doc = r.mapping(doc.get("helm"), ("helm",))
    helm = HelmSpec(
        chart=r.string(helm_doc.get("chart"), ("helm", "chart")) or ".",
        repo=r.string(helm_doc.get("repo"), ("helm", "repo")),
        version=r.string(helm_doc.get("version"), ("helm", "version")),
        release_name=r.string(helm_doc.get("releaseName"), ("helm", "releaseName")),
        values=dict(r.mapping(helm_doc.get("values"), ("helm", "values"))),
        values_files=r.strings(helm_doc.get("valuesFiles"), ("helm", "valuesFiles")),
        mode=cast(HelmMode, helm_doc.get("mode") or "template"),
        timeout_seconds=r.positive_int(helm_doc.get("timeoutSeconds"), ("helm", "timeoutSeconds")),
        lookup=r.boolean(helm_doc.get("lookup"), ("helm", "lookup"), default=False),
    )
    if helm.repo and helm.chart == ".":
        raise r.error(
            ("helm", "chart"), "helm.repo is set, so helm.chart must name the chart in it"
        )
    kustomize_doc = r.mapping(doc.get("kustomize"), ("kustomize",))
    kustomize = KustomizeSpec(dir=r.string(kustomize_doc.get("dir"), ("kustomize", "dir")) or ".")
    yaml_doc = r.mapping(doc.get("yaml"), ("yaml",))
    yaml = YamlSpec(overlays=r.strings(yaml_doc.get("overlays"), ("yaml", "overlays")))

    targets = tuple(
        r.target(r.mapping(item, ("targets", i)), ("targets", i), index=i)
        for i, item in enumerate(r.sequence(doc.get("targets"), ("targets",)))
    )
    customizations: list[TargetCustomization] = []
    for i, item in enumerate(
        r.sequence(doc.get("targetCustomizations"), ("targetCustomizations",))
    ):
        cpath: JsonPath = ("targetCustomizations", i)
        cdoc = r.mapping(item, cpath)
        chelm = r.mapping(cdoc.get("helm"), (*cpath, "helm"))
        ckust = r.mapping(cdoc.get("kustomize"), (*cpath, "kustomize"))
        cyaml = r.mapping(cdoc.get("yaml"), (*cpath, "yaml"))
        customizations.append(
            TargetCustomization(
                target=r.target(cdoc, cpath, index=i),
                namespace=r.string(cdoc.get("namespace"), (*cpath, "namespace")),
                helm_values=dict(r.mapping(chelm.get("values"), (*cpath, "helm", "values"))),
                helm_values_files=r.strings(
                    chelm.get("valuesFiles"), (*cpath, "helm", "valuesFiles")
                ),
                kustomize_dir=r.string(ckust.get("dir"), (*cpath, "kustomize", "dir")),
                yaml_overlays=r.strings(cyaml.get("overlays"), (*cpath, "yaml", "overlays")),
            )
        )

    sync_doc = r.mapping(doc.get("syncPolicy"), ("syncPolicy",))
    sync = SyncPolicy(
        auto=r.boolean(sync_doc.get("auto"), ("syncPolicy", "auto"), default=True),
        prune=r.boolean(sync_doc.get("prune"), ("syncPolicy", "prune"), default=True),
        self_heal=r.boolean(sync_doc.get("selfHeal"), ("syncPolicy", "selfHeal"), default=False),
        force_conflicts=r.boolean(
            sync_doc.get("forceConflicts"), ("syncPolicy", "forceConflicts"), default=False
        ),
    )
    rollout = _rollout(r, r.mapping(doc.get("rollout"), ("rollout",)), ("rollout",))
    decryption_doc = r.mapping(doc.get("decryption"), ("decryption",))
    decryption = (
        DecryptionSpec(paths=r.strings(decryption_doc.get("paths"), ("decryption", "paths")))
        if decryption_doc
        else None
    )

    name = r.string(doc.get("name"), ("name",)) or default_name
    if not name:
        raise r.error(("name",), "the app has no name", hint="set name in appflow.yaml")
    return AppDefinition(
        name=name,
        path=path,
        kind=kind,
        namespace=r.string(doc.get("namespace"), ("namespace",)) or DEFAULT_NAMESPACE,
        labels=r.labels(doc.get("labels"), ("labels",)),
        **_specs(kind, helm, kustomize, yaml),
        targets=targets,
        customizations=tuple(customizations),
        depends_on=r.dependencies(doc.get("dependsOn"), ("dependsOn",)),
        sync_policy=sync,
        rollout=rollout,
        decryption=decryption,
        origin="appflow.yaml",
        definition_file=file,
        warnings=tuple(r.warnings),
    )


def _rollout(
    r: _Reader, doc: Mapping[str, Any], path: JsonPath, *, fleet: bool = False
) -> RolloutSpec:
    partitions: list[RolloutPartition] = []
    for i, item in enumerate(r.sequence(doc.get("partitions"), (*path, "partitions"))):
        ppath: JsonPath = (*path, "partitions", i)
        pdoc = r.mapping(item, ppath)
        if fleet:
            r.only(
                pdoc,
                ppath,
                {"name", "clusterSelector", "clusterGroup", "maxUnavailable"}
                | {"clusterGroupSelector"},
            )
            if pdoc.get("clusterGroupSelector"):
                raise _unsupported(r, (*ppath, "clusterGroupSelector"), _CLUSTER_GROUP_SELECTOR)
            pdoc = {k: v for k, v in pdoc.items() if k != "clusterGroupSelector"}
        target = r.target(pdoc, ppath, index=i)
        if target.cluster_name is not None:
            raise r.error(
                (*ppath, "clusterName"), "partitions select by clusterSelector or clusterGroup"
            )
        raw_max = pdoc.get("maxUnavailable")
        partitions.append(
            RolloutPartition(
                target=target,
                max_unavailable=None
                if raw_max is None
                else r.count_or_percent(raw_max, (*ppath, "maxUnavailable")),
            )
        )
    max_unavailable = doc.get("maxUnavailable")
    auto_size = doc.get("autoPartitionSize")
    return RolloutSpec(
        max_unavailable="100%"
        if max_unavailable is None
        else r.count_or_percent(max_unavailable, (*path, "maxUnavailable")),
        partitions=tuple(partitions),
        auto_partition_size="25%"
        if auto_size is None
        else r.count_or_percent(auto_size, (*path, "autoPartitionSize"), minimum=1),
        health_timeout_seconds=r.positive_int(
            doc.get("healthTimeoutSeconds"), (*path, "healthTimeoutSeconds")
        ),
        auto_rollback=r.boolean(doc.get("autoRollback"), (*path, "autoRollback"), default=False),
    )


# --- fleet.yaml ---------------------------------------------------------------

_CLUSTER_GROUP_SELECTOR = (
    "appflow ClusterGroups carry no labels to select them by; "
    "use clusterGroup with a group name or clusterSelector"
)

_FLEET_REJECT: dict[str, str] = {
    # Each of these changes what lands on a cluster; ignoring it would deploy
    # something other than what the user wrote.
    "namespaceLabels": "create the Namespace object in the app's manifests with its labels",
    "namespaceAnnotations": "create the Namespace object in the app's manifests with its annotations",
    "imageScans": "appflow does not scan image registries; bump image tags in Git",
    "serviceAccount": "appflow applies with the cluster credentials it was registered with",
    "targets": "Fleet replaces fleet.yaml targets with the GitRepo's; use overrideTargets or appflow.yaml targets",
    "helm.valuesFrom": "values from ConfigMaps or Secrets on the cluster are not read; put the values in Git",
    "helm.takeOwnership": "appflow only manages objects it owns; delete or label the existing objects first",
    "helm.force": "annotate the objects with appflow.dev/replace-on-immutable: 'true' instead",
    "helm.skipSchemaValidation": "appflow always validates values against the chart's schema",
    "targetCustomizations[].helm.chart": "per-cluster charts are not supported; use a separate app folder",
    "targetCustomizations[].helm.repo": "per-cluster chart repositories are not supported; use a separate app folder",
    "targetCustomizations[].helm.version": "per-cluster chart versions are not supported; use a separate app folder",
    "targetCustomizations[].helm.releaseName": "the release name is the same on every cluster",
    "targetCustomizations[].doNotDeploy": "narrow overrideTargets or use a clusterSelector with NotIn",
    "rolloutStrategy.maxUnavailablePartitions": "partitions roll out one after the other",
}

_FLEET_WARN: dict[str, str] = {
    # Ignoring these cannot put different objects on a cluster.
    "diff": "appflow compares by server-side apply field ownership, so compare patches are not needed",
    "ignore": "appflow judges health per kind and does not ignore conditions",
    "deleteNamespace": "appflow never deletes namespaces when an app is removed",
    "deleteCRDResources": "appflow never deletes CRDs when an app is removed",
    "forceSyncGeneration": "use `appflow app sync` to force a sync",
    "correctDrift.force": "selfHeal re-applies with server-side apply",
    "correctDrift.keepFailHistory": "appflow keeps its own history",
    "helm.waitForJobs": "appflow's health checks already wait for Jobs",
    "helm.maxHistory": "appflow keeps its own history",
    "helm.disableDNS": "templates are rendered without cluster access",
    "helm.disableDependencyUpdate": "chart dependencies are taken as vendored",
}

_FLEET_TOP = {
    "defaultNamespace", "namespace", "name", "labels", "helm", "kustomize", "yaml",
    "targetCustomizations", "dependsOn", "paused", "rolloutStrategy", "overrideTargets",
    "keepResources", "correctDrift",
}  # fmt: skip
_FLEET_HELM = {
    "chart", "repo", "version", "releaseName", "values", "valuesFiles", "timeoutSeconds",
    "disablePreProcess", "atomic",
}  # fmt: skip
_FLEET_CUSTOMIZATION = {
    "name", "clusterSelector", "clusterGroup", "clusterName", "namespace", "defaultNamespace",
    "helm", "kustomize", "yaml",
}  # fmt: skip


def _policy_key(path: JsonPath) -> str:
    """('targetCustomizations', 2, 'helm', 'chart') -> 'targetCustomizations[].helm.chart'."""
    return ".".join(p if isinstance(p, str) else "[]" for p in path).replace(".[]", "[]")


def _unsupported(r: _Reader, path: JsonPath, hint: str) -> ConfigError:
    return r.error(
        path, f"fleet.yaml field {format_path(path)} is not supported by appflow", hint=hint
    )


def _is_off(value: Any) -> bool:
    return value is None or value is False or value == {} or value == [] or value == ""


def _check_fleet_fields(
    r: _Reader, doc: Mapping[str, Any], path: JsonPath, known: set[str]
) -> None:
    """Reject or warn about each field of ``doc`` that appflow does not honour."""
    for key, value in doc.items():
        fpath: JsonPath = (*path, str(key))
        policy = _policy_key(fpath)
        if key in known:
            continue
        prefix = "targetCustomizations[]."
        if policy.startswith(prefix) and policy not in _FLEET_REJECT and policy not in _FLEET_WARN:
            # A customization's helm section has the same unsupported fields as the root's.
            policy = policy[len(prefix) :]
        if policy in _FLEET_REJECT:
            if not _is_off(value):
                raise _unsupported(r, fpath, _FLEET_REJECT[policy])
        elif policy in _FLEET_WARN:
            if not _is_off(value):
                r.warnings.append(f"{r.where_text(fpath)} is ignored: {_FLEET_WARN[policy]}")
        else:
            raise r.error(
                fpath,
                f"unknown field {key!r} in fleet.yaml",
                hint="check the spelling against Fleet's fleet.yaml reference",
            )


def from_fleet_document(
    doc: Mapping[str, Any],
    *,
    path: str,
    file: str,
    default_name: str | None = None,
    default_kind: SourceKind = "yaml",
    positions: Positions | None = None,
) -> AppDefinition:
    """Build an AppDefinition from a parsed Fleet ``fleet.yaml`` (policy in the module doc)."""
    r = _Reader(file=file, positions=positions)
    _check_fleet_fields(r, doc, (), _FLEET_TOP)

    helm_doc = r.mapping(doc.get("helm"), ("helm",))
    _check_fleet_fields(r, helm_doc, ("helm",), _FLEET_HELM)
    chart = r.string(helm_doc.get("chart"), ("helm", "chart"))
    if chart and "::" in chart:
        raise _unsupported(
            r,
            ("helm", "chart"),
            "go-getter URLs are not read; use helm.repo with a chart name, or oci://",
        )
    kind = _fleet_kind(r, doc, chart=chart, default_kind=default_kind)
    helm = HelmSpec(
        chart=chart or ".",
        repo=r.string(helm_doc.get("repo"), ("helm", "repo")),
        version=_fleet_version(r, helm_doc.get("version")),
        release_name=r.string(helm_doc.get("releaseName"), ("helm", "releaseName")),
        values=dict(r.mapping(helm_doc.get("values"), ("helm", "values"))),
        values_files=r.strings(helm_doc.get("valuesFiles"), ("helm", "valuesFiles")),
        timeout_seconds=r.positive_int(helm_doc.get("timeoutSeconds"), ("helm", "timeoutSeconds")),
        templating=not r.boolean(
            helm_doc.get("disablePreProcess"), ("helm", "disablePreProcess"), default=False
        ),
    )
    kustomize_doc = r.mapping(doc.get("kustomize"), ("kustomize",))
    r.only(kustomize_doc, ("kustomize",), {"dir"})
    kustomize = KustomizeSpec(dir=r.string(kustomize_doc.get("dir"), ("kustomize", "dir")) or ".")
    yaml_doc = r.mapping(doc.get("yaml"), ("yaml",))
    r.only(yaml_doc, ("yaml",), {"overlays"})
    yaml = YamlSpec(overlays=r.strings(yaml_doc.get("overlays"), ("yaml", "overlays")))

    targets: list[ClusterTarget] = []
    for i, item in enumerate(r.sequence(doc.get("overrideTargets"), ("overrideTargets",))):
        tpath: JsonPath = ("overrideTargets", i)
        tdoc = r.mapping(item, tpath)
        r.only(
            tdoc,
            tpath,
            {"name", "clusterSelector", "clusterGroup", "clusterName", "clusterGroupSelector"},
        )
        if tdoc.get("clusterGroupSelector") is not None:
            raise _unsupported(r, (*tpath, "clusterGroupSelector"), _CLUSTER_GROUP_SELECTOR)
        targets.append(r.target(tdoc, tpath, index=i))

    customizations: list[TargetCustomization] = []
    for i, item in enumerate(
        r.sequence(doc.get("targetCustomizations"), ("targetCustomizations",))
    ):
        customizations.append(_fleet_customization(r, item, ("targetCustomizations", i), index=i))

    drift = r.mapping(doc.get("correctDrift"), ("correctDrift",))
    _check_fleet_fields(r, drift, ("correctDrift",), {"enabled"})
    sync = SyncPolicy(
        # A paused bundle is marked OutOfSync until someone confirms it: a manual sync.
        auto=not r.boolean(doc.get("paused"), ("paused",), default=False),
        # keepResources keeps objects when they leave the bundle.
        prune=not r.boolean(doc.get("keepResources"), ("keepResources",), default=False),
        self_heal=r.boolean(drift.get("enabled"), ("correctDrift", "enabled"), default=False),
    )
    strategy = r.mapping(doc.get("rolloutStrategy"), ("rolloutStrategy",))
    _check_fleet_fields(
        r, strategy, ("rolloutStrategy",), {"maxUnavailable", "autoPartitionSize", "partitions"}
    )
    rollout = _rollout(r, strategy, ("rolloutStrategy",), fleet=True)
    atomic = r.boolean(helm_doc.get("atomic"), ("helm", "atomic"), default=False)
    if atomic:
        # helm --atomic rolls a failed upgrade back; appflow's autoRollback does that per cluster.
        rollout = RolloutSpec(
            max_unavailable=rollout.max_unavailable,
            partitions=rollout.partitions,
            auto_partition_size=rollout.auto_partition_size,
            auto_rollback=True,
        )

    namespace = r.string(doc.get("namespace"), ("namespace",))
    default_namespace = r.string(doc.get("defaultNamespace"), ("defaultNamespace",))
    if namespace:
        r.warnings.append(
            f"{r.where_text(('namespace',))}: Fleet forces every object into {namespace!r}; "
            "appflow uses it as the namespace of objects that set none"
        )
    name = r.string(doc.get("name"), ("name",)) or default_name
    if not name:
        raise r.error(("name",), "the app has no name", hint="set name in fleet.yaml")
    return AppDefinition(
        name=name,
        path=path,
        kind=kind,
        namespace=namespace or default_namespace or DEFAULT_NAMESPACE,
        labels=r.labels(doc.get("labels"), ("labels",)),
        **_specs(kind, helm, kustomize, yaml),
        targets=tuple(targets),
        customizations=tuple(customizations),
        depends_on=r.dependencies(doc.get("dependsOn"), ("dependsOn",)),
        sync_policy=sync,
        rollout=rollout,
        origin="fleet.yaml",
        definition_file=file,
        warnings=tuple(r.warnings),
    )


def _fleet_kind(
    r: _Reader, doc: Mapping[str, Any], *, chart: str | None, default_kind: SourceKind
) -> SourceKind:
    """Fleet's choice: a chart (helm.chart or Chart.yaml), else kustomize, else raw YAML.

    A helm section with only values does not make a folder a chart: the
    folder's own content decides, as in Fleet.
    """
    kustomize_dir = r.mapping(doc.get("kustomize"), ("kustomize",)).get("dir")
    if chart or default_kind == "helm":
        if kustomize_dir:
            raise _unsupported(
                r,
                ("kustomize", "dir"),
                "kustomize post-rendering of a Helm chart is not supported; "
                "render the chart in a kustomization with helmCharts instead",
            )
        return "helm"
    if kustomize_dir:
        return "kustomize"
    return default_kind


def _fleet_version(r: _Reader, value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # YAML reads 1.10 as the number 1.1; guessing the text would pin the wrong chart.
        raise r.error(
            ("helm", "version"),
            f"must be a string, not the number {value!r}",
            hint='quote it: version: "1.10"',
        )
    return r.string(value, ("helm", "version"))


def _fleet_customization(
    r: _Reader, item: Any, path: JsonPath, *, index: int
) -> TargetCustomization:
    doc = r.mapping(item, path)
    if doc.get("clusterGroupSelector") is not None:
        raise _unsupported(r, (*path, "clusterGroupSelector"), _CLUSTER_GROUP_SELECTOR)
    _check_fleet_fields(
        r, {k: v for k, v in doc.items() if k != "clusterGroupSelector"}, path, _FLEET_CUSTOMIZATION
    )
    helm_doc = r.mapping(doc.get("helm"), (*path, "helm"))
    _check_fleet_fields(r, helm_doc, (*path, "helm"), {"values", "valuesFiles"})
    kustomize_doc = r.mapping(doc.get("kustomize"), (*path, "kustomize"))
    r.only(kustomize_doc, (*path, "kustomize"), {"dir"})
    yaml_doc = r.mapping(doc.get("yaml"), (*path, "yaml"))
    r.only(yaml_doc, (*path, "yaml"), {"overlays"})
    namespace = r.string(doc.get("namespace"), (*path, "namespace"))
    default_namespace = r.string(doc.get("defaultNamespace"), (*path, "defaultNamespace"))
    return TargetCustomization(
        target=r.target(doc, path, index=index),
        namespace=namespace or default_namespace,
        helm_values=dict(r.mapping(helm_doc.get("values"), (*path, "helm", "values"))),
        helm_values_files=r.strings(helm_doc.get("valuesFiles"), (*path, "helm", "valuesFiles")),
        kustomize_dir=r.string(kustomize_doc.get("dir"), (*path, "kustomize", "dir")),
        yaml_overlays=r.strings(yaml_doc.get("overlays"), (*path, "yaml", "overlays")),
    )

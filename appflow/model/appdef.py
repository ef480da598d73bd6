"""App definitions: what an ``appflow.yaml`` or ``fleet.yaml`` says, as frozen data.

This module owns the AppDefinition model and the two pure builders that turn a
parsed document into one. Reading files, YAML parsing and JSON Schema
validation live in ``appflow.sources.appdef``; the builders get the parsed
document plus, optionally, a map of where each field was written so that their
errors can name file, line and field path.

fleet.yaml policy (Fleet's documented fields, see rancher/fleet-docs
``ref-fleet-yaml.md``):

* read and honoured: ``name``, ``labels``, ``defaultNamespace`` (namespace of
  objects that set none), ``namespace`` (every namespaced object is forced
  into it; a cluster-scoped object is an error), ``namespaceLabels``,
  ``namespaceAnnotations``, ``helm.{chart, repo, version, releaseName, values,
  valuesFiles, valuesFrom, timeoutSeconds, disablePreProcess, atomic,
  disableDependencyUpdate, skipSchemaValidation, takeOwnership, force}``,
  ``kustomize.dir`` (also post-rendering a chart), ``yaml.overlays``,
  ``targetCustomizations`` (clusterName, clusterGroup, clusterSelector;
  namespace/defaultNamespace, helm values/valuesFiles/valuesFrom,
  kustomize.dir, yaml.overlays, doNotDeploy), ``dependsOn`` (with
  acceptedStates), ``paused`` (syncPolicy.auto false), ``keepResources``
  (syncPolicy.keepResources), ``correctDrift.enabled`` (syncPolicy.selfHeal),
  ``overrideTargets`` (targets), ``rolloutStrategy`` (maxUnavailable,
  maxUnavailablePartitions, autoPartitionSize, partitions by clusterSelector
  or clusterGroup).
* accepted with a warning on the AppDefinition, because ignoring them cannot
  deploy something other than what the user wrote: see ``_FLEET_WARN``.
* rejected with a ConfigError naming the field: see ``_FLEET_REJECT``. These
  would change what lands on a cluster, so silently dropping them is unsafe.
  Helm options that appflow reads at the top level only are named as such
  when a target customization sets them.
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
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from appflow.errors import ConfigError, Where

SourceKind = Literal["helm", "kustomize", "yaml"]
Origin = Literal["appflow.yaml", "fleet.yaml", "defaults"]
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
HelmMode = Literal["template", "release"]
OfflinePolicy = Literal["wait", "skip", "release"]
"""What releasing a revision does about Offline pull clusters: wait, skip, release."""
ValuesFromKind = Literal["ConfigMap", "Secret"]
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
class ValuesFrom:
    """Helm values kept in a ConfigMap or Secret on the target cluster, read at render time.

    ``key`` holds a YAML document of values; ``namespace`` None is the app's
    namespace on that cluster (Fleet: "default to namespace of bundle").
    """

    kind: ValuesFromKind
    name: str
    namespace: str | None = None
    key: str = "values.yaml"

    def describe(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name} key {self.key}"


@dataclass(frozen=True)
class HelmSpec:
    """How to render a Helm chart. ``chart`` is a path relative to the app folder (a
    chart folder or a .tgz), a chart name in ``repo``, an ``oci://`` reference or an
    ``http(s)://`` URL of a chart archive; "." is the folder itself."""

    chart: str = "."
    repo: str | None = None
    version: str | None = None
    release_name: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    values_files: tuple[str, ...] = ()
    values_from: tuple[ValuesFrom, ...] = ()
    """Layered over every other value, in order (Fleet: values < valuesFiles < valuesFrom)."""
    values_files_win: bool = False
    """fleet.yaml: valuesFiles are merged over the inline values (as Fleet merges them into
    the bundle); appflow.yaml gives them to helm below the inline values (helm's -f < --set)."""
    mode: HelmMode = "template"
    templating: bool = True
    """Whether ``${ }`` templates in values are rendered per cluster (fleet.yaml disablePreProcess)."""
    lookup: bool = False
    """Ask to render with helm's --dry-run=server against the target, so `lookup` sees live
    objects. Only an operator's policy can allow it (see appflow.model.policy)."""
    dependency_update: bool = True
    """Fetch the chart's missing dependencies; False uses only what charts/ vendors."""
    skip_schema_validation: bool = False
    """Do not check values against the chart's values.schema.json."""


@dataclass(frozen=True)
class KustomizeSpec:
    """The folder, relative to the app folder, that holds kustomization.yaml.

    In a helm app (fleet.yaml's helm + kustomize form) it post-renders the
    chart's output: the objects helm rendered are a resource of that kustomization.
    """

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
    """The namespace of objects that set none, on these clusters."""
    force_namespace: str | None = None
    """fleet.yaml ``namespace``: every namespaced object goes there, on these clusters."""
    helm_values: Mapping[str, Any] = field(default_factory=dict)
    helm_values_files: tuple[str, ...] = ()
    helm_values_from: tuple[ValuesFrom, ...] = ()
    kustomize_dir: str | None = None
    yaml_overlays: tuple[str, ...] = ()
    do_not_deploy: bool = False
    """The clusters this customization matches first get nothing (Fleet's doNotDeploy)."""
    written_at: JsonPath = ()
    """Where the entry was written, when not targetCustomizations[index] (fleet.yaml targets)."""


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
    timeout_seconds: int | None = None
    """How long a waiting sync waits for the app (and each helm operation in release
    mode); zero or less: do not wait (helm.timeoutSeconds, Fleet's meaning)."""
    take_ownership: bool = False
    """Adopt objects another owner created (helm.takeOwnership: helm --take-ownership,
    appflow.dev/take-ownership on every object)."""
    replace_immutable: bool = False
    """Replace objects whose immutable fields change (helm.force:
    appflow.dev/replace-on-immutable on every object)."""
    keep_resources: bool = False
    """Fleet's keepResources: deleting the app leaves its objects on the clusters.
    Objects that leave the desired state are still pruned (that is ``prune``)."""

    @property
    def waits(self) -> bool:
        return self.timeout_seconds is None or self.timeout_seconds > 0


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
    max_unavailable_partitions: CountOrPercent = 0
    """Partitions that may fail to become Ready before the rollout stops (Fleet's
    maxUnavailablePartitions); 0 stops at the first one."""
    offline_targets: OfflinePolicy = "wait"
    """Hub mode: what a staged revision's release does about Offline pull clusters
    (``model.agent.release_decision``)."""


DEPENDENCY_STATES = (
    "Ready", "NotReady", "WaitApplied", "ErrApplied", "OutOfSync", "Modified", "Missing",
    "Orphaned", "Unknown",
)  # fmt: skip
"""Deployment states a dependsOn entry may accept (acceptedStates)."""


@dataclass(frozen=True)
class Dependency:
    """An AppFlow that must be in one of ``accepted_states`` (Ready unless told) first,
    by ``name`` or by label ``selector``."""

    name: str | None = None
    selector: LabelSelector | None = None
    accepted_states: tuple[str, ...] = ("Ready",)


@dataclass(frozen=True)
class AppDefinition:
    """One AppFlow as defined in a repository folder."""

    name: str
    path: str
    """Folder relative to the repository root, posix separators; "" is the root."""
    kind: SourceKind
    namespace: str = DEFAULT_NAMESPACE
    """The namespace of objects that set none (and of the helm release)."""
    force_namespace: str | None = None
    """fleet.yaml ``namespace``: every namespaced object is put there, and a
    cluster-scoped object is an error (Fleet's meaning)."""
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    namespace_annotations: Mapping[str, str] = field(default_factory=dict)
    """Set on the app's namespace, which appflow then creates (fleet.yaml)."""
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


# --- paths a definition names ----------------------------------------------------

PathRole = Literal["chart", "values-file", "kustomize-dir", "overlay"]

REMOTE_CHART_PREFIXES = ("oci://", "http://", "https://")


def is_chart_url(chart: str) -> bool:
    """Whether CHART is an http(s) URL of a chart archive (downloaded, not a folder)."""
    return chart.startswith(("http://", "https://"))


@dataclass(frozen=True)
class NamedPath:
    """A path written in a definition, relative to the app folder, and where it was written."""

    field: JsonPath
    role: PathRole
    value: str


def named_paths(app: AppDefinition) -> list[NamedPath]:
    """Every local path APP's definition names, with the field it was written in.

    appflow.yaml and fleet.yaml use the same field names, and both builders
    keep target customizations in file order, so the fields are the file's.
    Remote charts (a repository, oci://, an archive URL) name no local path.
    """
    out: list[NamedPath] = []
    helm = app.helm
    if helm is not None:
        if helm.repo is None and not helm.chart.startswith(REMOTE_CHART_PREFIXES):
            out.append(NamedPath(("helm", "chart"), "chart", helm.chart))
        out += [
            NamedPath(("helm", "valuesFiles", i), "values-file", f)
            for i, f in enumerate(helm.values_files)
        ]
    if app.kustomize is not None and app.kustomize.dir != ".":
        out.append(NamedPath(("kustomize", "dir"), "kustomize-dir", app.kustomize.dir))
    if app.yaml is not None:
        out += [
            NamedPath(("yaml", "overlays", i), "overlay", name)
            for i, name in enumerate(app.yaml.overlays)
        ]
    for index, custom in enumerate(app.customizations):
        at: JsonPath = custom.written_at or ("targetCustomizations", index)
        out += [
            NamedPath((*at, "helm", "valuesFiles", i), "values-file", f)
            for i, f in enumerate(custom.helm_values_files)
        ]
        if custom.kustomize_dir:
            out.append(NamedPath((*at, "kustomize", "dir"), "kustomize-dir", custom.kustomize_dir))
        out += [
            NamedPath((*at, "yaml", "overlays", i), "overlay", name)
            for i, name in enumerate(custom.yaml_overlays)
        ]
    return out


# --- shared helpers ---------------------------------------------------------


def format_path(path: JsonPath) -> str:
    """('rollout', 'partitions', 0, 'name') -> 'rollout.partitions[0].name'."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            # YAML keys need not be strings: `~: 1` is a key null.
            key = part if isinstance(part, str) else "null" if part is None else str(part)
            text += f".{key}" if text else key
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

    def dependencies(
        self, value: Any, path: JsonPath, *, fleet: bool = False
    ) -> tuple[Dependency, ...]:
        deps: list[Dependency] = []
        for i, item in enumerate(self.sequence(value, path)):
            doc = self.mapping(item, (*path, i))
            self.only(
                doc,
                (*path, i),
                {"name", "selector", "acceptedStates"} if fleet else {"name", "selector"},
            )
            name = self.string(doc.get("name"), (*path, i, "name"))
            has_selector = doc.get("selector") is not None
            if (name is None) == (not has_selector):
                raise self.error((*path, i), "give exactly one of name or selector")
            selector = (
                self.selector(doc["selector"], (*path, i, "selector")) if has_selector else None
            )
            accepted = self.accepted_states(doc.get("acceptedStates"), (*path, i, "acceptedStates"))
            deps.append(Dependency(name=name, selector=selector, accepted_states=accepted))
        return tuple(deps)

    def accepted_states(self, value: Any, path: JsonPath) -> tuple[str, ...]:
        """Fleet's dependsOn[].acceptedStates: the states in which a dependency counts as met."""
        states = self.strings(value, path)
        if not states:
            return ("Ready",)
        out: list[str] = []
        for i, state in enumerate(states):
            # Fleet's Pending is a bundle not yet applied: appflow calls that WaitApplied.
            state = "WaitApplied" if state == "Pending" else state
            if state not in DEPENDENCY_STATES:
                raise self.error(
                    (*path, i),
                    f"{state!r} is not a deployment state",
                    hint="one of " + ", ".join((*DEPENDENCY_STATES, "Pending")),
                )
            out.append(state)
        return tuple(dict.fromkeys(out))

    def values_from(self, value: Any, path: JsonPath) -> tuple[ValuesFrom, ...]:
        """Fleet's helm.valuesFrom: configMapKeyRef / secretKeyRef entries."""
        refs: list[ValuesFrom] = []
        for i, item in enumerate(self.sequence(value, path)):
            ipath: JsonPath = (*path, i)
            doc = self.mapping(item, ipath)
            self.only(doc, ipath, {"configMapKeyRef", "secretKeyRef"})
            present = [k for k in ("configMapKeyRef", "secretKeyRef") if doc.get(k) is not None]
            if len(present) != 1:
                raise self.error(ipath, "give exactly one of configMapKeyRef or secretKeyRef")
            key = present[0]
            rpath: JsonPath = (*ipath, key)
            ref = self.mapping(doc[key], rpath)
            self.only(ref, rpath, {"name", "namespace", "key"})
            name = self.string(ref.get("name"), (*rpath, "name"))
            if not name:
                raise self.error((*rpath, "name"), "is required")
            refs.append(
                ValuesFrom(
                    kind="ConfigMap" if key == "configMapKeyRef" else "Secret",
                    name=name,
                    namespace=self.string(ref.get("namespace"), (*rpath, "namespace")) or None,
                    key=self.string(ref.get("key"), (*rpath, "key")) or "values.yaml",
                )
            )
        return tuple(refs)


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
        lookup=r.boolean(helm_doc.get("lookup"), ("helm", "lookup"), default=False),
    )
    if helm.repo and helm.chart == ".":
        if not helm.repo.startswith("oci://"):
            raise r.error(
                ("helm", "chart"), "helm.repo is set, so helm.chart must name the chart in it"
            )
        # As in fleet.yaml, an OCI repo without a chart name is the chart itself.
        helm = replace(helm, chart=helm.repo, repo=None)
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
        timeout_seconds=r.positive_int(helm_doc.get("timeoutSeconds"), ("helm", "timeoutSeconds")),
        keep_resources=r.boolean(
            sync_doc.get("keepResources"), ("syncPolicy", "keepResources"), default=False
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
        max_unavailable_partitions=0
        if doc.get("maxUnavailablePartitions") is None
        else r.count_or_percent(
            doc["maxUnavailablePartitions"], (*path, "maxUnavailablePartitions")
        ),
        offline_targets=cast(OfflinePolicy, doc.get("offlineTargets") or "wait"),
    )


# --- fleet.yaml ---------------------------------------------------------------

_CLUSTER_GROUP_SELECTOR = (
    "appflow ClusterGroups carry no labels to select them by; "
    "use clusterGroup with a group name or clusterSelector"
)

_FLEET_REJECT: dict[str, str] = {
    # Each of these changes what lands on a cluster; ignoring it would deploy
    # something other than what the user wrote.
    "imageScans": "appflow does not scan image registries; bump image tags in Git",
    "serviceAccount": "appflow applies with the cluster credentials it was registered with",
    "downstreamResources": (
        "it copies ConfigMaps and Secrets from Fleet's management cluster, and appflow has "
        "none; create them on the clusters (or in the app's manifests) and read them with "
        "helm.valuesFrom"
    ),
    "helm.templateValues": "write the templates in helm.values (${ } is rendered per cluster)",
    "targetCustomizations[].helm.chart": "per-cluster charts are not supported; use a separate app folder",
    "targetCustomizations[].helm.repo": "per-cluster chart repositories are not supported; use a separate app folder",
    "targetCustomizations[].helm.version": "per-cluster chart versions are not supported; use a separate app folder",
    "targetCustomizations[].helm.releaseName": "the release name is the same on every cluster",
    "targetCustomizations[].correctDrift": "drift correction is per app: set correctDrift at the top level",
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
}

_FLEET_TOP = {
    "defaultNamespace", "namespace", "name", "labels", "helm", "kustomize", "yaml",
    "targetCustomizations", "targets", "dependsOn", "paused", "rolloutStrategy", "overrideTargets",
    "keepResources", "correctDrift", "namespaceLabels", "namespaceAnnotations",
}  # fmt: skip
_FLEET_HELM = {
    "chart", "repo", "version", "releaseName", "values", "valuesFiles", "valuesFrom",
    "timeoutSeconds", "disablePreProcess", "atomic", "takeOwnership", "force",
    "skipSchemaValidation", "disableDependencyUpdate",
}  # fmt: skip
_FLEET_CUSTOMIZATION_HELM = {"values", "valuesFiles", "valuesFrom"}
_FLEET_CUSTOMIZATION = {
    "name", "clusterSelector", "clusterGroup", "clusterName", "namespace", "defaultNamespace",
    "helm", "kustomize", "yaml", "doNotDeploy",
}  # fmt: skip
_FLEET_ROLLOUT = {"maxUnavailable", "maxUnavailablePartitions", "autoPartitionSize", "partitions"}


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
    r: _Reader,
    doc: Mapping[str, Any],
    path: JsonPath,
    known: set[str],
    *,
    top_level_only: AbstractSet[str] = frozenset(),
) -> None:
    """Reject or warn about each field of ``doc`` that appflow does not honour.

    TOP_LEVEL_ONLY are fields appflow reads at the top of fleet.yaml but not in a
    target customization: named as such, never as a typo.
    """
    for key, value in doc.items():
        fpath: JsonPath = (*path, str(key))
        policy = _policy_key(fpath)
        if policy.startswith("targets[]"):
            policy = "targetCustomizations[]" + policy[len("targets[]") :]
        if key in known:
            continue
        prefix = "targetCustomizations[]."
        if policy.startswith(prefix) and policy not in _FLEET_REJECT and policy not in _FLEET_WARN:
            # A customization's helm section has the same unsupported fields as the root's.
            policy = policy[len(prefix) :]
        if key in top_level_only:
            if not _is_off(value):
                raise r.error(
                    fpath,
                    f"fleet.yaml field {format_path(fpath)} is supported at the top level only",
                    hint=f"set {policy} at the top level of fleet.yaml: it applies to every cluster",
                )
        elif policy in _FLEET_REJECT:
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
    helm = _fleet_helm(r, helm_doc)
    kustomize_doc = r.mapping(doc.get("kustomize"), ("kustomize",))
    r.only(kustomize_doc, ("kustomize",), {"dir"})
    kustomize_dir = r.string(kustomize_doc.get("dir"), ("kustomize", "dir"))
    yaml_doc = r.mapping(doc.get("yaml"), ("yaml",))
    r.only(yaml_doc, ("yaml",), {"overlays"})
    yaml = YamlSpec(overlays=r.strings(yaml_doc.get("overlays"), ("yaml", "overlays")))
    kind = _fleet_kind(helm_doc, kustomize_dir=kustomize_dir, default_kind=default_kind)

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

    # Fleet reads fleet.yaml's `targets` (the older name) as target customizations,
    # ahead of `targetCustomizations`, and numbers them together.
    customizations: list[TargetCustomization] = []
    for key in ("targets", "targetCustomizations"):
        for i, item in enumerate(r.sequence(doc.get(key), (key,))):
            customizations.append(
                _fleet_customization(r, item, (key, i), index=len(customizations))
            )

    drift = r.mapping(doc.get("correctDrift"), ("correctDrift",))
    _check_fleet_fields(r, drift, ("correctDrift",), {"enabled"})
    timeout = helm_doc.get("timeoutSeconds")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)):
        raise r.error(
            ("helm", "timeoutSeconds"), f"must be a whole number of seconds, not {timeout!r}"
        )
    sync = SyncPolicy(
        # A paused bundle is marked OutOfSync until someone confirms it: a manual sync.
        auto=not r.boolean(doc.get("paused"), ("paused",), default=False),
        # Fleet's keepResources keeps the objects when the bundle is deleted; an
        # object that leaves the bundle is still removed.
        keep_resources=r.boolean(doc.get("keepResources"), ("keepResources",), default=False),
        self_heal=r.boolean(drift.get("enabled"), ("correctDrift", "enabled"), default=False),
        # Fleet deploys every bundle as a Helm release, so these helm options hold for
        # kustomize and manifest apps too.
        timeout_seconds=timeout,
        take_ownership=r.boolean(
            helm_doc.get("takeOwnership"), ("helm", "takeOwnership"), default=False
        ),
        replace_immutable=r.boolean(helm_doc.get("force"), ("helm", "force"), default=False),
    )
    strategy = r.mapping(doc.get("rolloutStrategy"), ("rolloutStrategy",))
    _check_fleet_fields(r, strategy, ("rolloutStrategy",), _FLEET_ROLLOUT)
    rollout = _rollout(r, strategy, ("rolloutStrategy",), fleet=True)
    if r.boolean(helm_doc.get("atomic"), ("helm", "atomic"), default=False):
        # helm --atomic rolls a failed upgrade back; appflow's autoRollback does that per cluster.
        rollout = replace(rollout, auto_rollback=True)

    # Fleet: `namespace` forces every object into it; `defaultNamespace` is only
    # the namespace of objects that set none.
    force_namespace = r.string(doc.get("namespace"), ("namespace",)) or None
    default_namespace = r.string(doc.get("defaultNamespace"), ("defaultNamespace",)) or None
    name = r.string(doc.get("name"), ("name",)) or default_name
    if not name:
        raise r.error(("name",), "the app has no name", hint="set name in fleet.yaml")
    # A chart with kustomize.dir (or beside a kustomization.yaml) is post-rendered by it.
    post_render = kustomize_dir or ("." if default_kind == "kustomize" else None)
    return AppDefinition(
        name=name,
        path=path,
        kind=kind,
        namespace=force_namespace or default_namespace or DEFAULT_NAMESPACE,
        force_namespace=force_namespace,
        namespace_labels=r.labels(doc.get("namespaceLabels"), ("namespaceLabels",)),
        namespace_annotations=r.labels(doc.get("namespaceAnnotations"), ("namespaceAnnotations",)),
        labels=r.labels(doc.get("labels"), ("labels",)),
        helm=helm if kind == "helm" else None,
        kustomize=KustomizeSpec(dir=kustomize_dir or ".")
        if kind == "kustomize"
        else (KustomizeSpec(dir=post_render) if kind == "helm" and post_render else None),
        yaml=yaml if kind == "yaml" else None,
        targets=tuple(targets),
        customizations=tuple(customizations),
        depends_on=r.dependencies(doc.get("dependsOn"), ("dependsOn",), fleet=True),
        sync_policy=sync,
        rollout=rollout,
        origin="fleet.yaml",
        definition_file=file,
        warnings=tuple(r.warnings),
    )


def _fleet_helm(r: _Reader, doc: Mapping[str, Any]) -> HelmSpec:
    """The helm section, with Fleet's chart forms made into appflow's.

    Fleet reads `helm.repo` as the chart itself when `helm.chart` is empty
    (``repo: oci://host/path/chart``); a chart URL ending in an archive is
    downloaded; go-getter forms (``git::``, ``s3::``) are not read.
    """
    chart = r.string(doc.get("chart"), ("helm", "chart")) or None
    repo = r.string(doc.get("repo"), ("helm", "repo")) or None
    if chart and ("::" in chart or chart.startswith("git@")):
        raise _unsupported(
            r,
            ("helm", "chart"),
            "go-getter sources are not read; use helm.repo with a chart name, oci://, "
            "or an https:// URL of a chart archive",
        )
    if repo and not chart:
        if not repo.startswith("oci://"):
            raise r.error(
                ("helm", "repo"),
                f"helm.repo {repo} is a Helm repository, so helm.chart must name the chart in it",
                hint="for an OCI registry, helm.repo may be the chart itself: oci://host/path/chart",
            )
        chart, repo = repo, None
    return HelmSpec(
        chart=chart or ".",
        repo=repo,
        version=_fleet_version(r, doc.get("version")),
        release_name=r.string(doc.get("releaseName"), ("helm", "releaseName")),
        values=dict(r.mapping(doc.get("values"), ("helm", "values"))),
        values_files=r.strings(doc.get("valuesFiles"), ("helm", "valuesFiles")),
        values_from=r.values_from(doc.get("valuesFrom"), ("helm", "valuesFrom")),
        values_files_win=True,
        templating=not r.boolean(
            doc.get("disablePreProcess"), ("helm", "disablePreProcess"), default=False
        ),
        dependency_update=not r.boolean(
            doc.get("disableDependencyUpdate"), ("helm", "disableDependencyUpdate"), default=False
        ),
        skip_schema_validation=r.boolean(
            doc.get("skipSchemaValidation"), ("helm", "skipSchemaValidation"), default=False
        ),
    )


def _fleet_kind(
    helm_doc: Mapping[str, Any], *, kustomize_dir: str | None, default_kind: SourceKind
) -> SourceKind:
    """Fleet's choice: a chart (helm.chart, helm.repo or Chart.yaml), else kustomize, else raw YAML.

    A helm section with only values does not make a folder a chart: the
    folder's own content decides, as in Fleet. A chart with a kustomize dir is
    still a chart; the kustomization post-renders it.
    """
    if helm_doc.get("chart") or helm_doc.get("repo") or default_kind == "helm":
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
    _check_fleet_fields(
        r,
        helm_doc,
        (*path, "helm"),
        _FLEET_CUSTOMIZATION_HELM,
        top_level_only=_FLEET_HELM
        - _FLEET_CUSTOMIZATION_HELM
        - {"chart", "repo", "version"}
        - {"releaseName"},
    )
    kustomize_doc = r.mapping(doc.get("kustomize"), (*path, "kustomize"))
    r.only(kustomize_doc, (*path, "kustomize"), {"dir"})
    yaml_doc = r.mapping(doc.get("yaml"), (*path, "yaml"))
    r.only(yaml_doc, (*path, "yaml"), {"overlays"})
    return TargetCustomization(
        target=r.target(doc, path, index=index),
        namespace=r.string(doc.get("defaultNamespace"), (*path, "defaultNamespace")) or None,
        force_namespace=r.string(doc.get("namespace"), (*path, "namespace")) or None,
        helm_values=dict(r.mapping(helm_doc.get("values"), (*path, "helm", "values"))),
        helm_values_files=r.strings(helm_doc.get("valuesFiles"), (*path, "helm", "valuesFiles")),
        helm_values_from=r.values_from(helm_doc.get("valuesFrom"), (*path, "helm", "valuesFrom")),
        kustomize_dir=r.string(kustomize_doc.get("dir"), (*path, "kustomize", "dir")) or None,
        yaml_overlays=r.strings(yaml_doc.get("overlays"), (*path, "yaml", "overlays")),
        do_not_deploy=r.boolean(doc.get("doNotDeploy"), (*path, "doNotDeploy"), default=False),
        written_at=path,
    )

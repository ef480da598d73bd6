"""Catalog installs: an AppFlow whose source is a catalog entry's chart.

    find entry -> resolve version (constraint) -> fetch chart (digest verified)
    -> values: chart defaults < entry defaults < --values files < --set
    -> validate against the schema on every target      [before any cluster is touched]
    -> AppRecord(source="catalog") -> Engine.sync (render, dry-run, apply, health)

The record's ``definition["catalog"]`` holds everything a later sync needs
(the exact version, the chart's digest, the user's values, the targets), so
``Engine.source`` / ``Engine.definition`` rebuild the app without the catalog
(``catalog_source`` and ``catalog_definition`` below). A local entry is
installed from a snapshot of its chart folder: editing ``catalog/`` changes
installs only through an upgrade (by hand, or automatically for installs whose
upgrade policy is ``auto``, see ``apply_auto_upgrades``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from appflow.engine.deployment import SyncOptions
from appflow.engine.secrets import decrypted_values, plain_sensitive_paths, split_encrypted
from appflow.errors import AppflowError, ConfigError, NotFoundError, SourceError, Where
from appflow.model.appdef import (
    AppDefinition,
    ClusterTarget,
    DecryptionSpec,
    EncryptedValues,
    HelmSpec,
    JsonPath,
)
from appflow.model.catalog import (
    CHART_DEFAULT,
    ENTRY_DEFAULT,
    FROM_FORM,
    FROM_SET,
    PREVIOUS,
    CatalogEntry,
    ChartSource,
    ChartVersion,
    TargetChoice,
    UpgradePolicy,
    allows_all,
    layer_origins,
    parse_set,
    question_defaults,
    questions_to_schema,
    resolve_version,
    value_problems,
)
from appflow.model.records import AppRecord, ClusterRecord
from appflow.model.semver import parse_version, sort_versions
from appflow.model.targeting import parse_selector
from appflow.model.values import has_templates, merge_values, render_templated_values
from appflow.render import helm as render_helm
from appflow.render.types import HelmChartRef
from appflow.sources import catalog as source
from appflow.sources.folders import folder_digest
from appflow.store import Store

if TYPE_CHECKING:
    from appflow.engine.engine import AppSyncReport, Engine

log = logging.getLogger("appflow.catalog")


class ValuesRejected(ConfigError):
    """The install's values break the chart's schema; nothing was changed."""

    def __init__(self, app: str, problems: Sequence[tuple[JsonPath, str]]) -> None:
        self.problems = list(problems)
        """Each message with the path of the value it is about (() for the whole install)."""
        self.messages = [m for _, m in self.problems]
        text = "\n".join(f"  - {m}" for m in self.messages)
        super().__init__(
            f"values rejected before any cluster was touched:\n{text}", where=Where(app=app)
        )


# --- entries ------------------------------------------------------------------------------


def load_entries(
    catalog_dir: Path, *, repos: bool = True, max_age: float = source.DEFAULT_INDEX_MAX_AGE
) -> tuple[list[CatalogEntry], list[str]]:
    """The local catalog and the charts of catalog repositories, plus problems to report.

    Repository indexes come from the cache when it is younger than MAX_AGE.
    A broken entry or an unreachable repository is a problem, not a failure.
    """
    entries, problems = source.load_catalog(catalog_dir, check_schema=False)
    notes = [f"{p.folder.name}: {p.error}" for p in problems]
    if repos:
        for repo in source.list_repos():
            if repo.is_oci:
                continue
            try:
                index = source.fetch_index(repo, max_age=max_age).index
            except AppflowError as err:
                cached = source.cached_index(repo)
                notes.append(f"repository {repo.name}: {err}")
                if cached is None:
                    continue
                index = cached
            entries.extend(source.repo_entries(repo, index))
    return entries, notes


def find_entry(
    catalog_dir: Path, name: str, *, max_age: float = source.DEFAULT_INDEX_MAX_AGE
) -> CatalogEntry:
    """Entry NAME: a folder of the catalog, or REPO/CHART of a catalog repository."""
    repo_name, slash, chart = name.partition("/")
    if slash:
        repo = source.get_repo(repo_name)
        if repo.is_oci:
            return CatalogEntry(
                name=name,
                display_name=chart,
                description=f"{chart} from OCI registry {repo.url}",
                chart=ChartSource(oci=f"{repo.url.rstrip('/')}/{chart}"),
                repo=repo.name,
            )
        index = source.fetch_index(repo, max_age=max_age).index
        for entry in source.repo_entries(repo, index):
            if entry.name == name:
                return entry
        raise NotFoundError(
            f"repository {repo_name} has no chart {chart!r}",
            hint=f"see `appflow catalog list --search {chart}`",
        )
    folder = catalog_dir / name
    if not (folder / "app.yaml").is_file():
        raise NotFoundError(
            f"the catalog {catalog_dir} has no app {name!r}", hint="see `appflow catalog list`"
        )
    return source.load_entry(folder)


# --- resolution -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Resolution:
    """Which chart version an install gets, and where its archive is."""

    entry: CatalogEntry
    version: str
    constraint: str | None
    """The install's own --version, if any (the entry's constraint always applies too)."""
    repo: str | None = None
    """Catalog repository name (registered) for archive downloads with its credentials."""
    repo_url: str | None = None
    chart_name: str | None = None
    archive_url: str | None = None
    digest: str | None = None
    oci: str | None = None

    @property
    def kind(self) -> str:
        return self.entry.chart.kind

    def describe(self) -> str:
        return f"{self.entry.name} {self.version}"


def resolve(
    entry: CatalogEntry, *, version: str | None, max_age: float = source.DEFAULT_INDEX_MAX_AGE
) -> Resolution:
    """The highest version allowed by the entry's constraint and VERSION (the install's)."""
    constraints = [*entry.constraints, *([version] if version else [])]
    chart = entry.chart
    if chart.kind == "local":
        chosen = resolve_version(constraints, entry.versions, chart=entry.name)
        return Resolution(entry=entry, version=chosen, constraint=version)
    if chart.kind == "repo":
        assert chart.repo is not None
        assert chart.name is not None
        repo = source.get_repo(entry.repo) if entry.repo else source.repo_for_url(chart.repo)
        index = source.fetch_index(repo, max_age=max_age).index
        versions = index.get(chart.name)
        if not versions:
            raise NotFoundError(
                f"repository {repo.url} has no chart {chart.name!r}",
                where=Where(field="chart.name"),
            )
        chosen = resolve_version(constraints, (v.version for v in versions), chart=entry.name)
        picked: ChartVersion = next(v for v in versions if v.version == chosen)
        return Resolution(
            entry=entry,
            version=chosen,
            constraint=version,
            repo=repo.name,
            repo_url=repo.url,
            chart_name=chart.name,
            archive_url=source.chart_url(repo.url, picked),
            digest=picked.digest,
        )
    assert chart.oci is not None
    # Registries have no index: helm lists the tags and applies the constraint.
    combined = ", ".join(constraints) or None
    chosen = asyncio.run(
        render_helm.resolve_chart_version(HelmChartRef(name=chart.oci, version=combined))
    )
    if not allows_all(constraints, chosen):
        raise ConfigError(
            f"the registry picked {chosen} for {chart.oci}, outside {' and '.join(constraints)}"
        )
    return Resolution(entry=entry, version=chosen, constraint=version, oci=chart.oci)


async def fetch_chart(resolution: Resolution) -> tuple[Path, str]:
    """The chart folder of RESOLUTION (verified) and its digest."""
    entry = resolution.entry
    if resolution.kind == "local":
        assert entry.chart.path is not None
        folder = Path(entry.folder) / entry.chart.path
        chart_dir, digest = await asyncio.to_thread(source.snapshot_chart, folder)
        meta = source.chart_meta(chart_dir)
        if str(meta["version"]) != resolution.version:
            raise SourceError(
                f"the chart of {entry.name} is now version {meta['version']}, not {resolution.version}"
            )
        return chart_dir, digest
    if resolution.kind == "repo":
        assert resolution.archive_url
        assert resolution.repo_url
        repo = (
            source.get_repo(resolution.repo)
            if resolution.repo and not resolution.repo.startswith("url-")
            else source.repo_for_url(resolution.repo_url)
        )
        chart_dir = await asyncio.to_thread(
            source.download_chart,
            repo,
            resolution.archive_url,
            digest=resolution.digest or "",
            chart=resolution.describe(),
        )
        meta = source.chart_meta(chart_dir)
        if str(meta["version"]) != resolution.version or meta["name"] != resolution.chart_name:
            raise SourceError(
                f"the archive of {resolution.describe()} holds chart {meta['name']} {meta['version']}"
            )
        return chart_dir, resolution.digest or ""
    assert resolution.oci is not None
    key = hashlib.sha256(f"{resolution.oci}@{resolution.version}".encode()).hexdigest()
    target = source.charts_dir() / f"oci-{key}"
    found = next((c for c in target.glob("*/Chart.yaml")), None) if target.is_dir() else None
    chart_dir = (
        found.parent
        if found
        else await render_helm.helm_pull(
            resolution.oci, version=resolution.version, destination=target
        )
    )
    return chart_dir, await asyncio.to_thread(folder_digest, chart_dir)


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ValuesInput:
    """The values a user gives an install or upgrade."""

    files: tuple[Path, ...] = ()
    set_values: tuple[str, ...] = ()
    set_strings: tuple[str, ...] = ()
    previous: Mapping[str, Any] | None = None
    """An upgrade's earlier values (reused unless --reset-values)."""
    previous_encrypted: tuple[EncryptedValues, ...] = ()
    """An upgrade's earlier SOPS-encrypted values files, as ciphertext."""
    form: Mapping[str, Any] | None = None
    """Values as data, from the dashboard's install form; they win over everything else."""


@dataclass(frozen=True, kw_only=True)
class Values:
    user: dict[str, Any]
    """What the record keeps: entry defaults < previous < files < --set (no chart defaults)."""
    chart: dict[str, Any]
    origins: dict[Any, str] = field(default_factory=dict)
    encrypted: tuple[EncryptedValues, ...] = ()
    """SOPS-encrypted values files, as ciphertext: applied over ``user`` for each cluster."""


def gather_values(entry: CatalogEntry, chart_dir: Path, given: ValuesInput) -> Values:
    layers: list[tuple[Mapping[str, Any], str]] = [
        (question_defaults(entry.questions), ENTRY_DEFAULT)
    ]
    if given.previous:
        layers.append((given.previous, PREVIOUS))
    plain_files, encrypted = split_encrypted(given.files)
    layers.extend(source.file_values(plain_files))
    if given.set_values:
        layers.append((parse_set(given.set_values), FROM_SET))
    if given.set_strings:
        layers.append((parse_set(given.set_strings, strings=True), "from --set-string"))
    if given.form:
        layers.append((given.form, FROM_FORM))
    chart = source.chart_values(chart_dir)
    return Values(
        user=merge_values(*(values for values, _ in layers)),
        chart=chart,
        origins=layer_origins((chart, CHART_DEFAULT), *layers),
        encrypted=(*given.previous_encrypted, *encrypted),
    )


def values_schema(entry: CatalogEntry, chart_dir: Path) -> dict[str, Any] | None:
    """The entry's values.schema.json, else the chart's own; with questions.yaml's rules added."""
    base = dict(entry.schema) if entry.schema is not None else source.chart_schema(chart_dir)
    if not entry.questions:
        return base
    asked = questions_to_schema(entry.questions)
    if base is None:
        return asked
    # Both must hold; the values schema keeps its own draft, questions are 2020-12.
    return {**base, "allOf": [*cast(list[Any], base.get("allOf") or []), {"allOf": asked["allOf"]}]}


def check_values(
    entry: CatalogEntry,
    chart_dir: Path,
    values: Values,
    targets: Sequence[ClusterRecord],
) -> list[str]:
    """Every schema violation of VALUES, per target (cluster templating differs per target)."""
    return [m for _, m in value_problems_on(entry, chart_dir, values, targets)]


def value_problems_on(
    entry: CatalogEntry,
    chart_dir: Path,
    values: Values,
    targets: Sequence[ClusterRecord],
) -> list[tuple[JsonPath, str]]:
    """As ``check_values``, each message with the path of the value it is about."""
    schema = values_schema(entry, chart_dir)
    problems: list[tuple[JsonPath, str]] = []
    if entry.min_kube_version:
        floor = parse_version(entry.min_kube_version)
        for cluster in targets:
            have = parse_version(cluster.k8s_version or "")
            if floor is not None and have is not None and have.core < floor.core:
                problems.append(
                    (
                        (),
                        f"cluster {cluster.name} runs Kubernetes {cluster.k8s_version}; "
                        f"{entry.name} needs {entry.min_kube_version} or newer",
                    )
                )
    if schema is None:
        return problems
    merged = merge_values(values.chart, values.user)
    per_cluster: dict[str, list[tuple[JsonPath, str]]] = {}
    if has_templates(values.user):
        for cluster in targets:
            rendered = render_templated_values(
                merged, cluster_name=cluster.name, cluster_labels=cluster.labels
            )
            per_cluster[cluster.name] = value_problems(rendered, schema, origins=values.origins)
    else:
        found = value_problems(merged, schema, origins=values.origins)
        per_cluster = {c.name: found for c in targets} or {"": found}
    distinct = {tuple(v) for v in per_cluster.values()}
    if len(distinct) <= 1:
        problems.extend(next(iter(per_cluster.values()), []))
    else:
        for target, found in sorted(per_cluster.items()):
            problems.extend((path, f"on cluster {target}: {m}") for path, m in found)
    return problems


# --- the app record ---------------------------------------------------------------------------


def targets_of(choice: TargetChoice) -> tuple[ClusterTarget, ...]:
    if choice.all:
        return ()
    if choice.clusters:
        return tuple(ClusterTarget(name=f"cluster-{c}", cluster_name=c) for c in choice.clusters)
    if choice.group:
        return (ClusterTarget(name=f"group-{choice.group}", cluster_group=choice.group),)
    assert choice.selector is not None
    return (ClusterTarget(name="selector", selector=parse_selector(choice.selector)),)


def catalog_data(app: AppRecord) -> dict[str, Any]:
    data = (app.definition or {}).get("catalog")
    if not isinstance(data, dict):
        raise ConfigError(
            "the app record has no catalog install data",
            where=Where(app=app.name),
            hint="reinstall it with `appflow catalog install`",
        )
    return data


def encrypted_values(data: Mapping[str, Any]) -> tuple[EncryptedValues, ...]:
    return tuple(
        EncryptedValues(name=str(e["name"]), content=str(e["content"]))
        for e in data.get("encryptedValues") or []
    )


def catalog_definition(app: AppRecord) -> AppDefinition:
    """The AppDefinition of a catalog install, rebuilt from its record."""
    data = catalog_data(app)
    chart = data["chart"]
    oci = chart.get("kind") == "oci"
    return AppDefinition(
        name=app.name,
        path="",
        kind="helm",
        namespace=data.get("namespace") or "default",
        helm=HelmSpec(
            chart=".",
            version=data["version"] if oci else None,
            release_name=app.name,
            values=data.get("values") or {},
        ),
        targets=targets_of(TargetChoice.from_data(data.get("targets") or {})),
        decryption=DecryptionSpec(values=encrypted)
        if (encrypted := encrypted_values(data))
        else None,
        origin="defaults",
        definition_file=f"catalog:{data['entry']}",
    )


async def catalog_source(app: AppRecord) -> tuple[Path, str, str]:
    """The chart folder a catalog install renders from, its digest key and its source ref."""
    data = catalog_data(app)
    chart = data["chart"]
    kind = chart.get("kind")
    digest = str(chart.get("digest") or "")
    ref = f"catalog:{data['entry']}@{data['version']}"
    if kind == "local":
        folder = Path(chart.get("snapshot") or "")
        if not (folder / "Chart.yaml").is_file():
            # The cache was cleared: the entry folder still holds it if unchanged.
            original = Path(chart["folder"])
            if original.is_dir() and await asyncio.to_thread(folder_digest, original) == digest:
                folder, _ = await asyncio.to_thread(source.snapshot_chart, original)
            else:
                raise SourceError(
                    f"the chart {data['entry']} {data['version']} was installed from is gone "
                    "from the cache and the catalog entry changed since",
                    where=Where(app=app.name),
                    hint=f"appflow catalog upgrade {app.name}",
                )
        return folder, f"catalog:{digest}", ref
    if kind == "repo":
        repo_name = chart.get("repoName")
        repo = (
            source.get_repo(repo_name)
            if repo_name and not str(repo_name).startswith("url-")
            else source.repo_for_url(chart["repo"])
        )
        folder = await asyncio.to_thread(
            source.download_chart, repo, chart["url"], digest=digest, chart=ref
        )
        return folder, f"catalog:{digest}", ref
    # The entry must say OCI: a bare CatalogEntry defaults to a local chart folder.
    resolution = Resolution(
        entry=CatalogEntry(
            name=data["entry"],
            display_name="",
            description="",
            chart=ChartSource(oci=chart["oci"]),
        ),
        version=data["version"],
        constraint=None,
        oci=chart["oci"],
    )
    folder, digest = await fetch_chart(resolution)
    return folder, f"catalog:{digest}", ref


# --- install, upgrade, uninstall --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class InstallRequest:
    entry: str
    name: str | None = None
    version: str | None = None
    targets: TargetChoice = field(default_factory=lambda: TargetChoice(all=True))
    namespace: str | None = None
    values: ValuesInput = field(default_factory=ValuesInput)
    upgrade_policy: UpgradePolicy | None = None
    catalog_dir: Path = field(default_factory=source.default_catalog_dir)
    options: SyncOptions = field(default_factory=SyncOptions)


@dataclass(kw_only=True)
class Planned:
    """An install or upgrade checked and ready to record and sync."""

    record: AppRecord
    resolution: Resolution
    targets: list[ClusterRecord]


def _record(
    name: str,
    resolution: Resolution,
    *,
    chart_dir: Path,
    digest: str,
    values: Mapping[str, Any],
    targets: TargetChoice,
    namespace: str,
    policy: str,
    existing: AppRecord | None,
    encrypted: Sequence[EncryptedValues] = (),
) -> AppRecord:
    entry = resolution.entry
    chart: dict[str, Any] = {"kind": resolution.kind, "digest": digest}
    if resolution.kind == "local":
        assert entry.chart.path is not None
        chart.update(folder=str(Path(entry.folder) / entry.chart.path), snapshot=str(chart_dir))
    elif resolution.kind == "repo":
        chart.update(
            repo=resolution.repo_url,
            repoName=resolution.repo,
            name=resolution.chart_name,
            url=resolution.archive_url,
        )
    else:
        chart.update(oci=resolution.oci)
    definition = {
        "catalog": {
            "entry": entry.name,
            "repo": entry.repo,
            "folder": entry.folder,
            "chart": chart,
            "version": resolution.version,
            "constraint": resolution.constraint,
            "entryConstraint": " ".join(entry.constraints) or None,
            "values": dict(values),
            "targets": targets.to_data(),
            "namespace": namespace,
            "upgradePolicy": policy,
            **(
                {"encryptedValues": [{"name": e.name, "content": e.content} for e in encrypted]}
                if encrypted
                else {}
            ),
        },
        "syncPolicy": {"auto": True, "prune": True, "selfHeal": False, "forceConflicts": False},
        "namespace": namespace,
        "kind": "helm",
    }
    if existing is not None:
        from appflow.model.records import utc_now

        # An upgrade is the user's new desired state: it ends a rollback's pause.
        return replace(existing, definition=definition, paused=False, updated_at=utc_now())
    return AppRecord(name=name, source="catalog", path=entry.name, definition=definition)


async def _plan(
    engine: Engine,
    *,
    name: str,
    entry: CatalogEntry,
    version: str | None,
    targets: TargetChoice,
    namespace: str,
    values_input: ValuesInput,
    policy: str,
    existing: AppRecord | None,
) -> Planned:
    resolution = await asyncio.to_thread(resolve, entry, version=version)
    chart_dir, digest = await fetch_chart(resolution)
    values = gather_values(entry, chart_dir, values_input)
    record = _record(
        name,
        resolution,
        chart_dir=chart_dir,
        digest=digest,
        values=values.user,
        targets=targets,
        namespace=namespace,
        policy=policy,
        existing=existing,
        encrypted=values.encrypted,
    )
    chosen = engine.targets(catalog_definition(record))
    if not chosen:
        raise ConfigError(
            f"{targets.describe()} matches no registered cluster; nothing to install on",
            where=Where(app=name),
            hint="see `appflow cluster list`",
        )
    problems: list[tuple[JsonPath, str]] = [
        (
            tuple(path.split(".")),
            f"{path} is marked sensitive in the values schema: give it in a SOPS-encrypted values "
            "file (appflow secret encrypt), never in plain text, which the install record would keep",
        )
        for path in plain_sensitive_paths(values_schema(entry, chart_dir), values.user)
    ]
    # Encrypted values are decrypted on every target now: a target without the key fails here.
    secret = await decrypted_values(
        engine.secrets, values.encrypted, app=name, targets=chosen, groups=engine.groups()
    )
    for plain in secret or [{}]:
        with_secret = replace(values, user=merge_values(values.user, plain))
        problems += [
            p for p in value_problems_on(entry, chart_dir, with_secret, chosen) if p not in problems
        ]
    if problems:
        raise ValuesRejected(name, problems)
    return Planned(record=record, resolution=resolution, targets=chosen)


async def install(
    engine: Engine, request: InstallRequest, *, progress: Any = lambda _: None
) -> tuple[Planned, AppSyncReport]:
    """Install REQUEST's entry: everything is checked on every target before any change."""
    request.targets.check()
    entry = find_entry(request.catalog_dir, request.entry)
    name = request.name or entry.name.rsplit("/", 1)[-1]
    try:
        existing = engine.store.get_app(name)
    except NotFoundError:
        existing = None
    if existing is not None:
        raise ConfigError(
            f"an app named {name!r} exists already ({existing.source})",
            where=Where(app=name),
            hint=f"upgrade it with `appflow catalog upgrade {name}` or pick --name",
        )
    progress(f"{name}: resolving {entry.name}")
    planned = await _plan(
        engine,
        name=name,
        entry=entry,
        version=request.version,
        targets=request.targets,
        namespace=request.namespace or name,
        values_input=request.values,
        policy=request.upgrade_policy or entry.upgrade_policy,
        existing=None,
    )
    engine.store.put_app(planned.record)
    report = await engine.sync(name, options=request.options, progress=progress)
    if report.blocked and not engine.store.list_deployments(app=name):
        # Nothing reached a cluster: leave no half-installed app behind.
        with contextlib.suppress(NotFoundError):
            engine.store.delete_app(name, with_deployments=True)
    return planned, report


@dataclass(frozen=True, kw_only=True)
class UpgradeRequest:
    name: str
    version: str | None = None
    values: ValuesInput = field(default_factory=ValuesInput)
    reset_values: bool = False
    upgrade_policy: UpgradePolicy | None = None
    catalog_dir: Path = field(default_factory=source.default_catalog_dir)
    options: SyncOptions = field(default_factory=SyncOptions)


async def upgrade(
    engine: Engine, request: UpgradeRequest, *, progress: Any = lambda _: None
) -> tuple[Planned, AppSyncReport]:
    """Upgrade install NAME: the highest version its constraint (or --version) allows now."""
    app = engine.store.get_app(request.name)
    if app.source != "catalog":
        raise ConfigError(
            f"app {request.name} is not a catalog install (its source is {app.source})",
            where=Where(app=request.name),
        )
    data = catalog_data(app)
    entry_name = str(data["entry"])
    entry = find_entry(request.catalog_dir, entry_name, max_age=0.0)
    constraint = request.version or data.get("constraint")
    given = request.values
    if not request.reset_values:
        given = ValuesInput(
            files=given.files,
            set_values=given.set_values,
            set_strings=given.set_strings,
            previous=data.get("values") or {},
            previous_encrypted=encrypted_values(data),
        )
    progress(f"{request.name}: resolving {entry_name}")
    planned = await _plan(
        engine,
        name=request.name,
        entry=entry,
        version=constraint,
        targets=TargetChoice.from_data(data.get("targets") or {}),
        namespace=str(data.get("namespace") or request.name),
        values_input=given,
        policy=request.upgrade_policy or str(data.get("upgradePolicy") or "manual"),
        existing=app,
    )
    engine.store.put_app(planned.record)
    report = await engine.sync(request.name, options=request.options, progress=progress)
    return planned, report


async def uninstall(engine: Engine, name: str, *, progress: Any = lambda _: None) -> AppSyncReport:
    """Remove install NAME from every cluster, then forget it (kept when a cluster failed)."""
    app = engine.store.get_app(name)
    if app.source != "catalog":
        raise ConfigError(
            f"app {name} is not a catalog install; use `appflow app delete {name}`",
            where=Where(app=name),
        )
    report = await engine.uninstall(name, progress=progress)
    if report.ok:
        with contextlib.suppress(NotFoundError):
            engine.store.delete_app(name, with_deployments=True)
    return report


# --- installs and upgrades available -----------------------------------------------------------


def available_version(app: AppRecord, catalog_dir: Path) -> str | None:
    """The highest version install APP could move to within its constraints, from what is
    known without a network call (the catalog folder, cached indexes); None if none is newer."""
    data = catalog_data(app)
    entry_name = str(data["entry"])
    versions: Sequence[str] = ()
    constraints: list[str] = [c for c in (data.get("entryConstraint"), data.get("constraint")) if c]
    if "/" in entry_name:
        repo_name, _, chart = entry_name.partition("/")
        with contextlib.suppress(AppflowError):
            repo = source.get_repo(repo_name)
            index = source.cached_index(repo) or {}
            versions = [v.version for v in index.get(chart, ())]
    elif data["chart"].get("kind") == "repo":
        repo = source.repo_for_url(data["chart"]["repo"])
        index = source.cached_index(repo) or {}
        versions = [v.version for v in index.get(data["chart"]["name"], ())]
    else:
        try:
            entry = source.load_entry(catalog_dir / entry_name)
        except AppflowError:
            return None
        versions = entry.versions
        constraints = [
            *entry.constraints,
            *([data["constraint"]] if data.get("constraint") else []),
        ]
    current = parse_version(str(data["version"]))
    for candidate in sort_versions(versions):
        parsed = parse_version(candidate)
        if parsed is None or current is None or parsed <= current:
            break
        if allows_all(constraints, candidate):
            return candidate
    if data["chart"].get("kind") == "local" and data.get("folder"):
        # Same version, edited chart: an upgrade picks up the new content.
        folder = Path(data["chart"]["folder"])
        if folder.is_dir() and folder_digest(folder) != data["chart"].get("digest"):
            return f"{data['version']} (changed)"
    return None


def installs(store: Store, catalog_dir: Path) -> list[dict[str, Any]]:
    """Every catalog install: entry, version, constraint, policy, per-cluster state."""
    rows = []
    for app in store.list_apps():
        if app.source != "catalog":
            continue
        data = (app.definition or {}).get("catalog") or {}
        deployments = store.list_deployments(app=app.name)
        rows.append(
            {
                "name": app.name,
                "entry": data.get("entry"),
                "version": data.get("version"),
                "constraint": data.get("constraint"),
                "upgradePolicy": data.get("upgradePolicy"),
                "namespace": data.get("namespace"),
                "targets": TargetChoice.from_data(data.get("targets") or {}).describe(),
                "available": available_version(app, catalog_dir) if data else None,
                "clusters": {d.cluster: d.state for d in deployments},
                "ready": sum(1 for d in deployments if d.state == "Ready"),
                "paused": app.paused,
            }
        )
    return rows


async def apply_auto_upgrades(
    engine: Engine, catalog_dir: Path, *, progress: Any = lambda _: None
) -> list[AppSyncReport]:
    """Upgrade every install whose policy is ``auto`` and for which a newer chart is known."""
    reports = []
    for app in engine.store.list_apps():
        if app.source != "catalog" or app.paused:
            continue
        data = (app.definition or {}).get("catalog") or {}
        if data.get("upgradePolicy") != "auto":
            continue
        if available_version(app, catalog_dir) is None:
            continue
        try:
            _, report = await upgrade(
                engine, UpgradeRequest(name=app.name, catalog_dir=catalog_dir), progress=progress
            )
        except AppflowError as err:
            engine.store.add_event(
                kind="failure",
                app=app.name,
                trigger="poll",
                outcome="upgrade-refused",
                message=f"automatic catalog upgrade refused: {err}",
            )
            continue
        reports.append(report)
    return reports


# --- live updates (tasks the daemon runs) ------------------------------------------------------


async def watch_catalog(engine: Engine, catalog_dir: Path, *, stop: asyncio.Event) -> None:
    """Upgrade ``auto`` installs when files under CATALOG_DIR change (watchfiles)."""
    import watchfiles

    if not catalog_dir.is_dir():
        return
    async for _changes in watchfiles.awatch(catalog_dir, stop_event=stop, debounce=800):
        await apply_auto_upgrades(engine, catalog_dir)


async def poll_catalog_repos(
    engine: Engine, catalog_dir: Path, *, stop: asyncio.Event, interval: float | None = None
) -> None:
    """Re-read each catalog repository's index at its poll interval; upgrade ``auto`` installs."""
    while not stop.is_set():
        repos = [r for r in source.list_repos() if not r.is_oci]
        for repo in repos:
            try:
                fetched = await asyncio.to_thread(
                    source.fetch_index, repo, max_age=float(repo.poll_interval_seconds)
                )
            except AppflowError as err:
                log.warning("catalog repository %s: %s", repo.name, err)
                continue
            if fetched.status == "downloaded":
                await apply_auto_upgrades(engine, catalog_dir)
        wait = interval or min([float(r.poll_interval_seconds) for r in repos] or [300.0])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)


# --- the catalog as a Helm repository ------------------------------------------------------------


class CatalogPublisher:
    """The local catalog packaged as a Helm repository: ``index.yaml`` plus ``.tgz`` charts.

    Charts are packaged with ``helm package`` into OUT_DIR, again only when their
    folder changed; ``refresh`` is cheap when nothing under the catalog did (one
    stat walk), so a server may call it on every index request.
    """

    def __init__(self, catalog_dir: Path, out_dir: Path) -> None:
        self.catalog_dir = catalog_dir
        self.out_dir = out_dir
        self._signature: str | None = None
        self._lock = asyncio.Lock()
        self.problems: list[str] = []

    def _stat_signature(self) -> str:
        h = hashlib.sha256()
        if self.catalog_dir.is_dir():
            for path in sorted(self.catalog_dir.rglob("*")):
                with contextlib.suppress(OSError):
                    st = path.stat()
                    h.update(f"{path}:{st.st_mtime_ns}:{st.st_size}\n".encode())
        return h.hexdigest()

    async def refresh(self) -> Path:
        """Package what changed and rewrite index.yaml if needed; the index path."""
        async with self._lock:
            signature = await asyncio.to_thread(self._stat_signature)
            index = self.out_dir / "index.yaml"
            if signature == self._signature and index.is_file():
                return index
            await self._publish()
            self._signature = signature
            return index

    async def _publish(self) -> None:
        import datetime

        import yaml

        from appflow.model.catalog import index_document

        self.out_dir.mkdir(parents=True, exist_ok=True)
        entries, problems = await asyncio.to_thread(source.load_catalog, self.catalog_dir)
        self.problems = [f"{p.folder.name}: {p.error}" for p in problems]
        charts: list[ChartVersion] = []
        keep: set[str] = {"index.yaml"}
        for entry in entries:
            if entry.chart.kind != "local" or entry.chart.path is None:
                continue
            folder = Path(entry.folder) / entry.chart.path
            meta = source.chart_meta(folder)
            digest = await asyncio.to_thread(folder_digest, folder)
            archive = self.out_dir / f"{meta['name']}-{meta['version']}.tgz"
            stamp = self.out_dir / f".{entry.name}.digest"
            if not archive.is_file() or not stamp.is_file() or stamp.read_text() != digest:
                try:
                    archive = await render_helm.helm_package(folder, self.out_dir)
                except AppflowError as err:
                    self.problems.append(f"{entry.name}: {err}")
                    continue
                stamp.write_text(digest)
            keep.update({archive.name, stamp.name})
            sha = hashlib.sha256(archive.read_bytes()).hexdigest()
            created = datetime.datetime.fromtimestamp(archive.stat().st_mtime, datetime.UTC)
            icon = entry.icon
            if icon and not icon.startswith(("http://", "https://")):
                icon = f"icons/{entry.name}/{icon}"
            charts.append(
                ChartVersion(
                    name=str(meta["name"]),
                    version=str(meta["version"]),
                    app_version=str(meta.get("appVersion") or ""),
                    description=entry.description,
                    keywords=entry.keywords,
                    icon=icon,
                    home=entry.home,
                    urls=(archive.name,),
                    digest=sha,
                    created=created.isoformat().replace("+00:00", "Z"),
                )
            )
        for stale in self.out_dir.iterdir():
            if stale.name not in keep and stale.is_file():
                stale.unlink()
        now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        document = index_document(charts, generated=now)
        tmp = self.out_dir / "index.yaml.tmp"
        tmp.write_text(yaml.safe_dump(document, sort_keys=False))
        tmp.replace(self.out_dir / "index.yaml")

    def icon(self, entry: str, name: str) -> Path | None:
        """The icon file of ENTRY, if NAME is it (no other file of the catalog is served)."""
        folder = self.catalog_dir / entry
        try:
            loaded = source.load_entry(folder)
        except AppflowError:
            return None
        if loaded.icon != name or name.startswith("/") or ".." in Path(name).parts:
            return None
        path = folder / name
        return path if path.is_file() else None

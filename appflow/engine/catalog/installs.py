"""Install, upgrade and uninstall catalog apps; what is installed and what could be.

    find entry -> resolve version (constraint) -> fetch chart (digest verified)
    -> values: chart defaults < entry defaults < --values files < --set
    -> validate against the schema on every target      [before any cluster is touched]
    -> AppRecord(source="catalog", catalog=CatalogInstall) -> Engine.sync

A local entry is installed from a snapshot of its chart folder: editing ``catalog/``
changes installs only through an upgrade (by hand, or automatically for installs whose
upgrade policy is ``auto``, see ``appflow.engine.catalog.live``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from appflow.engine.catalog.entries import Resolution, fetch_chart, find_entry, resolve
from appflow.engine.catalog.source import catalog_data, catalog_definition
from appflow.engine.catalog.values import (
    ValuesInput,
    ValuesRejected,
    gather_values,
    value_problems_on,
    values_schema,
)
from appflow.engine.engine import Engine
from appflow.engine.report import AppSyncReport
from appflow.engine.secrets import decrypted_values, plain_sensitive_paths
from appflow.engine.stages.types import Progress, SyncOptions, quiet
from appflow.errors import AppflowError, ConfigError, NotFoundError, Where
from appflow.model.appdef import EncryptedValues, JsonPath
from appflow.model.catalog import CatalogEntry, allows_all
from appflow.model.codec import JsonObject
from appflow.model.records import (
    AppRecord,
    CatalogInstall,
    CatalogRepoRecord,
    ClusterRecord,
    InstalledChart,
    TargetChoice,
    UpgradePolicy,
    utc_now,
)
from appflow.model.semver import parse_version, sort_versions
from appflow.model.values import merge_values
from appflow.sources import catalog as source
from appflow.sources.folders import folder_digest
from appflow.store import Store


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
    if resolution.kind == "local":
        assert entry.chart.path is not None
        chart = InstalledChart(
            kind="local",
            digest=digest,
            folder=str(Path(entry.folder) / entry.chart.path),
            snapshot=str(chart_dir),
        )
    elif resolution.kind == "repo":
        chart = InstalledChart(
            kind="repo",
            digest=digest,
            repo=resolution.repo_url,
            repo_name=resolution.repo,
            name=resolution.chart_name,
            url=resolution.archive_url,
        )
    else:
        chart = InstalledChart(kind="oci", digest=digest, oci=resolution.oci)
    install = CatalogInstall(
        entry=entry.name,
        repo=entry.repo,
        folder=entry.folder,
        chart=chart,
        version=resolution.version,
        constraint=resolution.constraint,
        entry_constraint=" ".join(entry.constraints) or None,
        values=cast(JsonObject, dict(values)),
        targets=targets,
        namespace=namespace,
        upgrade_policy=cast(UpgradePolicy, policy),
        encrypted_values=tuple(encrypted),
    )
    if existing is not None:
        # An upgrade is the user's new desired state: it ends a rollback's pause.
        return replace(existing, catalog=install, pinned_revision=None, updated_at=utc_now())
    return AppRecord(name=name, source="catalog", path=entry.name, catalog=install)


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
    repos: Sequence[CatalogRepoRecord],
) -> Planned:
    resolution = await resolve(entry, version=version, repos=repos)
    chart_dir, digest = await fetch_chart(resolution, repos=repos)
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
    chosen = await asyncio.to_thread(engine.targets, catalog_definition(record))
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
    groups = await asyncio.to_thread(engine.groups)
    secret = await decrypted_values(
        engine.secrets, values.encrypted, app=name, targets=chosen, groups=groups
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
    engine: Engine, request: InstallRequest, *, progress: Progress = quiet
) -> tuple[Planned, AppSyncReport]:
    """Install REQUEST's entry: everything is checked on every target before any change."""
    request.targets.check()
    repos = await asyncio.to_thread(engine.store.list_catalog_repos)
    entry = await asyncio.to_thread(find_entry, request.catalog_dir, request.entry, repos=repos)
    name = request.name or entry.name.rsplit("/", 1)[-1]
    try:
        existing = await asyncio.to_thread(engine.store.get_app, name)
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
        repos=repos,
    )
    await engine.recorder.app(planned.record)
    report = await engine.sync(name, options=request.options, progress=progress)
    if report.blocked and not await asyncio.to_thread(engine.store.list_deployments, app=name):
        # Nothing reached a cluster: leave no half-installed app behind.
        await engine.recorder.forget_app(name)
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
    engine: Engine, request: UpgradeRequest, *, progress: Progress = quiet
) -> tuple[Planned, AppSyncReport]:
    """Upgrade install NAME: the highest version its constraint (or --version) allows now."""
    app = await asyncio.to_thread(engine.store.get_app, request.name)
    if app.source != "catalog":
        raise ConfigError(
            f"app {request.name} is not a catalog install (its source is {app.source})",
            where=Where(app=request.name),
        )
    data = catalog_data(app)
    entry_name = data.entry
    repos = await asyncio.to_thread(engine.store.list_catalog_repos)
    entry = await asyncio.to_thread(
        find_entry, request.catalog_dir, entry_name, repos=repos, max_age=0.0
    )
    constraint = request.version or data.constraint
    given = request.values
    if not request.reset_values:
        given = ValuesInput(
            files=given.files,
            set_values=given.set_values,
            set_strings=given.set_strings,
            previous=data.values,
            previous_encrypted=data.encrypted_values,
        )
    progress(f"{request.name}: resolving {entry_name}")
    planned = await _plan(
        engine,
        name=request.name,
        entry=entry,
        version=constraint,
        targets=data.targets,
        namespace=data.namespace or request.name,
        values_input=given,
        policy=request.upgrade_policy or data.upgrade_policy,
        existing=app,
        repos=repos,
    )
    await engine.recorder.app(planned.record)
    report = await engine.sync(request.name, options=request.options, progress=progress)
    return planned, report


async def uninstall(engine: Engine, name: str, *, progress: Progress = quiet) -> AppSyncReport:
    """Remove install NAME from every cluster, then forget it (kept when a cluster failed)."""
    app = await asyncio.to_thread(engine.store.get_app, name)
    if app.source != "catalog":
        raise ConfigError(
            f"app {name} is not a catalog install; use `appflow app delete {name}`",
            where=Where(app=name),
        )
    report = await engine.uninstall(name, progress=progress)
    if report.ok:
        await engine.recorder.forget_app(name)
    return report


def available_version(
    app: AppRecord, catalog_dir: Path, *, repos: Sequence[CatalogRepoRecord]
) -> str | None:
    """The highest version install APP could move to within its constraints, from what is
    known without a network call (the catalog folder, cached indexes of REPOS); None if none
    is newer."""
    data = catalog_data(app)
    entry_name = data.entry
    versions: Sequence[str] = ()
    constraints: list[str] = [c for c in (data.entry_constraint, data.constraint) if c]
    if "/" in entry_name:
        repo_name, _, chart = entry_name.partition("/")
        with contextlib.suppress(AppflowError):
            repo = source.get_repo(repos, repo_name)
            index = source.cached_index(repo) or {}
            versions = [v.version for v in index.get(chart, ())]
    elif data.chart.kind == "repo":
        repo = source.repo_for_url(repos, data.chart.repo or "")
        index = source.cached_index(repo) or {}
        versions = [v.version for v in index.get(data.chart.name or "", ())]
    else:
        try:
            entry = source.load_entry(catalog_dir / entry_name)
        except AppflowError:
            return None
        versions = entry.versions
        constraints = [*entry.constraints, *([data.constraint] if data.constraint else [])]
    current = parse_version(data.version)
    for candidate in sort_versions(versions):
        parsed = parse_version(candidate)
        if parsed is None or current is None or parsed <= current:
            break
        if allows_all(constraints, candidate):
            return candidate
    if data.chart.kind == "local" and data.folder and data.chart.folder:
        # Same version, edited chart: an upgrade picks up the new content.
        folder = Path(data.chart.folder)
        if folder.is_dir() and folder_digest(folder) != data.chart.digest:
            return f"{data.version} (changed)"
    return None


def installs(store: Store, catalog_dir: Path) -> list[dict[str, Any]]:
    """Every catalog install: entry, version, constraint, policy, per-cluster state."""
    rows = []
    repos = store.list_catalog_repos()
    for app in store.list_apps():
        if app.catalog is None:
            continue
        data = app.catalog
        deployments = store.list_deployments(app=app.name)
        rows.append(
            {
                "name": app.name,
                "entry": data.entry,
                "version": data.version,
                "constraint": data.constraint,
                "upgradePolicy": data.upgrade_policy,
                "namespace": data.namespace,
                "targets": data.targets.describe(),
                "available": available_version(app, catalog_dir, repos=repos),
                "clusters": {d.cluster: d.state for d in deployments},
                "ready": sum(1 for d in deployments if d.state == "Ready"),
                "paused": app.paused,
            }
        )
    return rows

"""Catalog entries and chart versions: find an entry, pick its version, fetch its chart.

Entries come from the catalog folder (``catalog/<app>/``) and from registered catalog
repositories (REPO/CHART); a version constraint (the entry's and the install's, all of
which must hold) picks the highest published version, and the chart is fetched with its
digest verified (a local entry is snapshotted, content-addressed, into the cache).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appflow.errors import AppflowError, ConfigError, NotFoundError, SourceError, Where
from appflow.model.catalog import (
    CatalogEntry,
    ChartSource,
    ChartVersion,
    allows_all,
    resolve_version,
)
from appflow.model.giturl import redact_url
from appflow.model.records import CatalogRepoRecord
from appflow.render import helm as render_helm
from appflow.render.types import HelmChartRef
from appflow.sources import catalog as source
from appflow.sources.folders import folder_digest


def load_entries(
    catalog_dir: Path,
    *,
    repos: Sequence[CatalogRepoRecord] = (),
    max_age: float = source.DEFAULT_INDEX_MAX_AGE,
) -> tuple[list[CatalogEntry], list[str]]:
    """The local catalog and the charts of catalog repositories REPOS, plus problems to report.

    Repository indexes come from the cache when it is younger than MAX_AGE.
    A broken entry or an unreachable repository is a problem, not a failure.
    """
    entries, problems = source.load_catalog(catalog_dir, check_schema=False)
    notes = [f"{p.folder.name}: {p.error}" for p in problems]
    for repo in repos:
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
    catalog_dir: Path,
    name: str,
    *,
    repos: Sequence[CatalogRepoRecord],
    max_age: float = source.DEFAULT_INDEX_MAX_AGE,
) -> CatalogEntry:
    """Entry NAME: a folder of the catalog, or REPO/CHART of one of the catalog REPOS."""
    repo_name, slash, chart = name.partition("/")
    if slash:
        repo = source.get_repo(repos, repo_name)
        if repo.is_oci:
            return CatalogEntry(
                name=name,
                display_name=chart,
                description=f"{chart} from OCI registry {redact_url(repo.url)}",
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


async def resolve(
    entry: CatalogEntry,
    *,
    version: str | None,
    repos: Sequence[CatalogRepoRecord],
    max_age: float = source.DEFAULT_INDEX_MAX_AGE,
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
        repo = source.repo_for_chart(repos, entry.repo, chart.repo)
        fetched = await asyncio.to_thread(source.fetch_index, repo, max_age=max_age)
        versions = fetched.index.get(chart.name)
        if not versions:
            raise NotFoundError(
                f"repository {redact_url(repo.url)} has no chart {chart.name!r}",
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
    chosen = await render_helm.resolve_chart_version(HelmChartRef(name=chart.oci, version=combined))
    if not allows_all(constraints, chosen):
        raise ConfigError(
            f"the registry picked {chosen} for {chart.oci}, outside {' and '.join(constraints)}"
        )
    return Resolution(entry=entry, version=chosen, constraint=version, oci=chart.oci)


async def fetch_chart(
    resolution: Resolution, *, repos: Sequence[CatalogRepoRecord]
) -> tuple[Path, str]:
    """The chart folder of RESOLUTION (verified, signing in to its repository among REPOS)
    and its digest."""
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
        repo = source.repo_for_chart(repos, resolution.repo, resolution.repo_url)
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

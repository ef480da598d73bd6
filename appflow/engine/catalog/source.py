"""The catalog's source resolver: a catalog install's chart and definition, from its record.

An AppRecord of source ``catalog`` holds everything a sync needs (``CatalogInstall``: the
exact version, the chart's digest, the user's values, the targets), so a sync rebuilds
the app from the record without the catalog. Importing this module registers the
resolver with the engine (``appflow.engine.sources.RESOLVERS``); the engine itself never
imports the catalog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from appflow.engine.sources import RESOLVERS, Source
from appflow.errors import ConfigError, SourceError, Where
from appflow.model.appdef import AppDefinition, ClusterTarget, DecryptionSpec, HelmSpec
from appflow.model.records import (
    AppRecord,
    CatalogChart,
    CatalogInstall,
    CatalogRepoRecord,
    RepoRecord,
    TargetChoice,
)
from appflow.model.targeting import parse_selector
from appflow.sources.folders import folder_digest

if TYPE_CHECKING:
    from appflow.store import Store

# The catalog's adapters (httpx for repositories, helm for OCI) are imported by the
# functions that need them: a sync of an app from git does not pay for them.


def targets_of(choice: TargetChoice) -> tuple[ClusterTarget, ...]:
    if choice.all:
        return ()
    if choice.clusters:
        return tuple(ClusterTarget(name=f"cluster-{c}", cluster_name=c) for c in choice.clusters)
    if choice.group:
        return (ClusterTarget(name=f"group-{choice.group}", cluster_group=choice.group),)
    assert choice.selector is not None
    return (ClusterTarget(name="selector", selector=parse_selector(choice.selector)),)


def catalog_data(app: AppRecord) -> CatalogInstall:
    if app.catalog is None:
        raise ConfigError(
            "the app record has no catalog install data",
            where=Where(app=app.name),
            hint="reinstall it with `appflow catalog install`",
        )
    return app.catalog


def catalog_definition(app: AppRecord) -> AppDefinition:
    """The AppDefinition of a catalog install, rebuilt from its record."""
    data = catalog_data(app)
    return AppDefinition(
        name=app.name,
        path="",
        kind="helm",
        namespace=data.namespace or "default",
        helm=HelmSpec(
            chart=".",
            version=data.version if data.chart.kind == "oci" else None,
            release_name=app.name,
            values=data.values,
        ),
        targets=targets_of(data.targets),
        decryption=DecryptionSpec(values=data.encrypted_values) if data.encrypted_values else None,
        origin="defaults",
        definition_file=f"catalog:{data.entry}",
    )


async def catalog_source(
    app: AppRecord, *, repos: Sequence[CatalogRepoRecord]
) -> tuple[Path, str, CatalogChart]:
    """The chart folder a catalog install renders from, its digest key and its source ref
    (a chart from a catalog repository is downloaded with its credentials, among REPOS)."""
    data = catalog_data(app)
    chart = data.chart
    digest = chart.digest
    ref = CatalogChart(entry=data.entry, version=data.version)
    if chart.kind == "local":
        folder = Path(chart.snapshot or "")
        if not (folder / "Chart.yaml").is_file():
            # The cache was cleared: the entry folder still holds it if unchanged.
            original = Path(chart.folder or "")
            if original.is_dir() and await asyncio.to_thread(folder_digest, original) == digest:
                from appflow.sources import catalog as source

                folder, _ = await asyncio.to_thread(source.snapshot_chart, original)
            else:
                raise SourceError(
                    f"the chart {data.entry} {data.version} was installed from is gone "
                    "from the cache and the catalog entry changed since",
                    where=Where(app=app.name),
                    hint=f"appflow catalog upgrade {app.name}",
                )
        return folder, f"catalog:{digest}", ref
    if chart.kind == "repo":
        from appflow.sources import catalog as source

        repo = source.repo_for_chart(repos, chart.repo_name, chart.repo or "")
        folder = await asyncio.to_thread(
            source.download_chart, repo, chart.url or "", digest=digest, chart=str(ref)
        )
        return folder, f"catalog:{digest}", ref
    from appflow.engine.catalog.entries import Resolution, fetch_chart
    from appflow.model.catalog import CatalogEntry, ChartSource

    # The entry must say OCI: a bare CatalogEntry defaults to a local chart folder.
    resolution = Resolution(
        entry=CatalogEntry(
            name=data.entry,
            display_name="",
            description="",
            chart=ChartSource(oci=chart.oci),
        ),
        version=data.version,
        constraint=None,
        oci=chart.oci,
    )
    folder, digest = await fetch_chart(resolution, repos=repos)
    return folder, f"catalog:{digest}", ref


class CatalogResolver:
    """Resolves apps whose source is a catalog install."""

    async def fetch(
        self, app: AppRecord, repo: RepoRecord | None, *, commit: str | None, store: Store
    ) -> Source:
        repos = await asyncio.to_thread(store.list_catalog_repos)
        root, content, ref = await catalog_source(app, repos=repos)
        return Source(root=root, digest=content, ref=ref)

    async def definition(self, app: AppRecord, source: Source) -> AppDefinition:
        return catalog_definition(app)


RESOLVERS.register("catalog", CatalogResolver())

"""The fleet overview as pages: which apps x clusters a filter selects, one page at a time.

Pure: the store is read by the caller in two steps, so that a fleet of thousands of apps
never loads more than one page of deployments. ``select`` picks the cluster columns and
the apps of the page from records that are cheap to list (apps, clusters, groups, and
the names of apps with a deployment in the wanted state); ``grid`` builds the rows of
that page from the deployment summaries of its apps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from appflow.errors import ConfigError, Where
from appflow.model.records import (
    DEPLOYMENT_STATES,
    AppRecord,
    ClusterGroupRecord,
    ClusterRecord,
    DeploymentSummary,
    ResourceCounts,
)
from appflow.model.targeting import parse_selector, selector_matches

T = TypeVar("T")

MAX_PER_PAGE = 200
"""Rows (and cluster columns) one page may hold, whatever the query asks."""


@dataclass(frozen=True, kw_only=True)
class OverviewQuery:
    """A filter over the apps x clusters grid, and which page of it."""

    state: str = ""
    """Only apps with a deployment in this state (on the clusters shown)."""
    selector: str = ""
    """Only clusters whose labels match (kubectl selector syntax): the columns shown."""
    group: str = ""
    """Only the clusters of this group."""
    repo: str = ""
    """Only apps from this repository ("catalog" for catalog installs)."""
    search: str = ""
    """Only apps whose name contains this (case-insensitive)."""
    page: int = 1
    per_page: int = 50
    cluster_page: int = 1
    clusters_per_page: int = 50

    def __post_init__(self) -> None:
        if self.state and self.state not in DEPLOYMENT_STATES:
            raise ConfigError(
                f"{self.state!r} is not one of {', '.join(DEPLOYMENT_STATES)}",
                where=Where(field="state"),
            )
        for name in ("page", "per_page", "cluster_page", "clusters_per_page"):
            value = getattr(self, name)
            if value < 1 or (name.endswith("per_page") and value > MAX_PER_PAGE):
                limit = f"1..{MAX_PER_PAGE}" if name.endswith("per_page") else "1 or more"
                raise ConfigError(f"must be {limit}, not {value}", where=Where(field=name))


@dataclass(frozen=True, kw_only=True)
class Pages:
    """Where a page sits in a list: 1-based page number, page count, items in all."""

    page: int
    pages: int
    total: int
    first: int
    """1-based index of the page's first item (0 when the list is empty)."""
    last: int


def paginate(items: Sequence[T], page: int, per_page: int) -> tuple[list[T], Pages]:
    """The PAGE-th slice of PER_PAGE items; a page past the end gives the last page."""
    pages = max(1, math.ceil(len(items) / per_page))
    page = min(max(1, page), pages)
    start = (page - 1) * per_page
    chosen = list(items[start : start + per_page])
    return chosen, Pages(
        page=page,
        pages=pages,
        total=len(items),
        first=start + 1 if chosen else 0,
        last=start + len(chosen),
    )


@dataclass(frozen=True, kw_only=True)
class Selection:
    """The cluster columns and apps of one page of the grid."""

    clusters: list[ClusterRecord]
    cluster_pages: Pages
    apps: list[AppRecord]
    app_pages: Pages


def columns(
    clusters: Sequence[ClusterRecord], groups: Sequence[ClusterGroupRecord], query: OverviewQuery
) -> list[ClusterRecord]:
    """The clusters QUERY's selector and group keep, in name order."""
    chosen = sorted(clusters, key=lambda c: c.name)
    if query.selector:
        selector = parse_selector(query.selector)
        chosen = [c for c in chosen if selector_matches(selector, c.labels)]
    if query.group:
        found = [g for g in groups if g.name == query.group]
        if not found:
            raise ConfigError(f"no cluster group named {query.group!r}", where=Where(field="group"))
        selector = parse_selector(found[0].selector)
        chosen = [c for c in chosen if selector_matches(selector, c.labels)]
    return chosen


def select(
    *,
    apps: Sequence[AppRecord],
    clusters: Sequence[ClusterRecord],
    groups: Sequence[ClusterGroupRecord],
    query: OverviewQuery,
    in_state: Iterable[tuple[str, str]] = (),
) -> Selection:
    """The page QUERY asks for. IN_STATE: (app, cluster) of the deployments in
    ``query.state`` (only read when the query filters by state)."""
    shown = columns(clusters, groups, query)
    kept = sorted(apps, key=lambda a: a.name)
    if query.repo:
        kept = [
            a
            for a in kept
            if a.repo == query.repo or (query.repo == "catalog" and a.source == "catalog")
        ]
    if query.search:
        needle = query.search.lower()
        kept = [a for a in kept if needle in a.name.lower()]
    if query.state:
        names = {c.name for c in shown}
        matching = {app for app, cluster in in_state if cluster in names}
        kept = [a for a in kept if a.name in matching]
    page_apps, app_pages = paginate(kept, query.page, query.per_page)
    page_clusters, cluster_pages = paginate(shown, query.cluster_page, query.clusters_per_page)
    return Selection(
        clusters=page_clusters, cluster_pages=cluster_pages, apps=page_apps, app_pages=app_pages
    )


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One app on one cluster, as the grid shows it."""

    state: str
    revision: int | None
    message: str
    failing: int
    offline: bool = False
    """The cluster is Offline: STATE is only the last known one, never taken as current."""


@dataclass(frozen=True, kw_only=True)
class Row:
    """One app's line of the grid: a cell per cluster column (None: not deployed there)."""

    app: AppRecord
    cells: list[Cell | None]
    counts: dict[str, int] = field(default_factory=dict)
    """Deployments per state, over all the app's clusters (not only the columns shown)."""
    resources: dict[str, int] = field(default_factory=dict)
    """Fleet's resource counts (ready, desiredReady, modified...), summed over its clusters."""


def grid(selection: Selection, summaries: Iterable[DeploymentSummary]) -> list[Row]:
    """The rows of SELECTION's page, from the deployment summaries of its apps."""
    by_app: dict[str, dict[str, DeploymentSummary]] = {}
    for s in summaries:
        by_app.setdefault(s.app, {})[s.cluster] = s
    rows = []
    for app in selection.apps:
        mine = by_app.get(app.name, {})
        counts: dict[str, int] = {}
        total = ResourceCounts()
        for s in mine.values():
            counts[s.state] = counts.get(s.state, 0) + 1
            total += s.resource_counts
        resources = total.as_dict()
        cells: list[Cell | None] = []
        for cluster in selection.clusters:
            d = mine.get(cluster.name)
            cells.append(
                None
                if d is None
                else Cell(
                    state=d.state,
                    revision=d.applied_revision,
                    message=d.message,
                    failing=d.failing,
                    offline=cluster.state == "Offline",
                )
            )
        rows.append(Row(app=app, cells=cells, counts=counts, resources=resources))
    return rows

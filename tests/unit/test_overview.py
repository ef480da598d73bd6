"""Pages of the apps x clusters grid (appflow.model.overview): filters and pagination."""

from __future__ import annotations

import pytest

from appflow.errors import ConfigError
from appflow.model.overview import OverviewQuery, grid, paginate, select
from appflow.model.records import (
    AppRecord,
    ClusterGroupRecord,
    ClusterRecord,
    DeploymentSummary,
    ResourceCounts,
)

APPS = [
    AppRecord(name=f"app-{i:02d}", source="git", repo="retail" if i % 2 else "lab", path="p")
    for i in range(12)
]
CLUSTERS = [
    ClusterRecord(
        name=f"c-{i}", kind="eve-k", labels={"env": "prod" if i % 2 else "dev", "site": f"s{i}"}
    )
    for i in range(5)
]
GROUPS = [ClusterGroupRecord(name="prod", selector="env=prod")]


def summary(app: str, cluster: str, state: str = "Ready") -> DeploymentSummary:
    return DeploymentSummary(
        app=app,
        cluster=cluster,
        state=state,  # type: ignore[arg-type]
        applied_revision=2,
        message="",
        resource_counts=ResourceCounts(ready=3, desired_ready=3),
        failing=0,
    )


def test_paginate_clamps_the_page_and_says_where_it_is() -> None:
    items, pages = paginate(list(range(23)), 3, 10)
    assert items == [20, 21, 22]
    assert (pages.page, pages.pages, pages.total, pages.first, pages.last) == (3, 3, 23, 21, 23)
    items, pages = paginate(list(range(23)), 9, 10)
    assert pages.page == 3
    assert items == [20, 21, 22]
    items, pages = paginate([], 1, 10)
    assert items == []
    assert (pages.pages, pages.first, pages.last) == (1, 0, 0)


def test_filters_pick_columns_by_labels_and_group_and_apps_by_repo_search_and_state() -> None:
    by_selector = select(
        apps=APPS, clusters=CLUSTERS, groups=GROUPS, query=OverviewQuery(selector="env=prod")
    )
    assert [c.name for c in by_selector.clusters] == ["c-1", "c-3"]
    by_group = select(
        apps=APPS, clusters=CLUSTERS, groups=GROUPS, query=OverviewQuery(group="prod")
    )
    assert [c.name for c in by_group.clusters] == ["c-1", "c-3"]
    by_repo = select(
        apps=APPS,
        clusters=CLUSTERS,
        groups=GROUPS,
        query=OverviewQuery(repo="retail", search="APP-0"),
    )
    assert [a.name for a in by_repo.apps] == ["app-01", "app-03", "app-05", "app-07", "app-09"]
    in_state = [("app-04", "c-0"), ("app-06", "c-1"), ("app-08", "c-3")]
    by_state = select(
        apps=APPS,
        clusters=CLUSTERS,
        groups=GROUPS,
        query=OverviewQuery(state="Modified", group="prod"),
        in_state=in_state,
    )
    assert [a.name for a in by_state.apps] == ["app-06", "app-08"], (
        "only states on the columns shown"
    )


def test_pages_of_apps_and_of_cluster_columns() -> None:
    chosen = select(
        apps=APPS,
        clusters=CLUSTERS,
        groups=GROUPS,
        query=OverviewQuery(page=2, per_page=5, cluster_page=2, clusters_per_page=2),
    )
    assert [a.name for a in chosen.apps] == ["app-05", "app-06", "app-07", "app-08", "app-09"]
    assert [c.name for c in chosen.clusters] == ["c-2", "c-3"]
    assert chosen.app_pages.pages == 3
    assert chosen.cluster_pages.pages == 3


def test_rows_hold_a_cell_per_column_and_fleet_counts() -> None:
    chosen = select(apps=APPS[:2], clusters=CLUSTERS[:3], groups=GROUPS, query=OverviewQuery())
    rows = grid(
        chosen,
        [summary("app-00", "c-0"), summary("app-00", "c-2", "Modified"), summary("app-00", "c-9")],
    )
    first, second = rows
    assert [c.state if c else None for c in first.cells] == ["Ready", None, "Modified"]
    assert first.counts == {"Ready": 2, "Modified": 1}, "counted over all its clusters"
    assert {k: v for k, v in first.resources.items() if v} == {"ready": 9, "desiredReady": 9}
    assert second.cells == [None, None, None]


def test_bad_queries_name_their_field() -> None:
    with pytest.raises(ConfigError, match="'Sleepy' is not one of"):
        OverviewQuery(state="Sleepy")
    with pytest.raises(ConfigError) as err:
        OverviewQuery(per_page=500)
    assert err.value.where.field == "per_page"
    with pytest.raises(ConfigError, match="no cluster group named 'nope'"):
        select(apps=APPS, clusters=CLUSTERS, groups=GROUPS, query=OverviewQuery(group="nope"))


def test_a_cell_on_an_offline_cluster_is_never_current() -> None:
    clusters = [
        ClusterRecord(name="up", kind="eve-k", state="Online"),
        ClusterRecord(name="gone", kind="eve-k", state="Offline"),
    ]
    chosen = select(apps=APPS[:1], clusters=clusters, groups=[], query=OverviewQuery())
    (row,) = grid(chosen, [summary("app-00", "up"), summary("app-00", "gone")])
    assert [c.offline if c else None for c in row.cells] == [True, False]  # "gone" sorts first
    assert [c.state if c else None for c in row.cells] == ["Ready", "Ready"]

"""``appflow hub import``: a standalone store's fleet onto a hub, through the two Stores.

Clusters (their kubeconfigs into Secrets), cluster groups, repositories, apps and catalog
installs are read from the source ``Store`` and written to the ``HubStore`` with the same
records: the mapping of each is the hub store's, nothing is spelled twice. The source is only
read. An app of a local folder is uploaded as a source snapshot, a catalog install of a local
chart with its chart's files, so the hub's controllers render exactly what standalone did;
their first sync of an app already on its clusters therefore changes nothing there.

Everything is checked before the first write: a name the hub already uses, a missing
kubeconfig or app folder is reported, all of them at once, and nothing is imported.
Revisions, sync history and events stay in the standalone store (the hub starts its own).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from appflow.errors import ConfigError
from appflow.hub.store import HubStore
from appflow.model.records import (
    AppRecord,
    CatalogRepoRecord,
    ClusterGroupRecord,
    ClusterRecord,
    RepoRecord,
)
from appflow.store import Store


@dataclass(kw_only=True)
class Imported:
    """What an import wrote (by name)."""

    clusters: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    repos: list[str] = field(default_factory=list)
    catalog_repos: list[str] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)
    installs: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class _Fleet:
    clusters: list[ClusterRecord]
    groups: list[ClusterGroupRecord]
    repos: list[RepoRecord]
    catalog_repos: list[CatalogRepoRecord]
    apps: list[AppRecord]


def _read(source: Store) -> _Fleet:
    return _Fleet(
        clusters=source.list_clusters(),
        groups=source.list_groups(),
        repos=source.list_repos(),
        catalog_repos=source.list_catalog_repos(),
        apps=source.list_apps(),
    )


def _problems(fleet: _Fleet, target: HubStore) -> list[str]:
    """Everything that would make the import fail, found before any write."""
    problems: list[str] = []
    taken = {
        "cluster": {c.name for c in target.list_clusters()},
        "group": {g.name for g in target.list_groups()},
        "repo": {r.name for r in target.list_repos()},
        "catalog repository": {r.name for r in target.list_catalog_repos()},
        "app": {a.name for a in target.list_apps()},
    }
    named: list[tuple[str, str]] = [
        *(("cluster", c.name) for c in fleet.clusters),
        *(("group", g.name) for g in fleet.groups),
        *(("repo", r.name) for r in fleet.repos),
        *(("catalog repository", r.name) for r in fleet.catalog_repos),
        *(("app", a.name) for a in fleet.apps),
    ]
    problems += [
        f"the hub has a {kind} named {name} already" for kind, name in named if name in taken[kind]
    ]
    for c in fleet.clusters:
        if not c.kubeconfig_path or not Path(c.kubeconfig_path).is_file():
            problems.append(f"cluster {c.name}: its kubeconfig {c.kubeconfig_path} is missing")
    for a in fleet.apps:
        if a.source == "local":
            folder = Path(a.local_path or "") / a.path
            if not folder.is_dir():
                problems.append(f"app {a.name}: its folder {folder} is missing")
    return problems


async def import_store(source: Store, target: HubStore) -> Imported:
    """Copy SOURCE's clusters, groups, repos, catalog repositories and apps to TARGET; what
    was written."""
    fleet = await asyncio.to_thread(_read, source)
    problems = await asyncio.to_thread(_problems, fleet, target)
    if problems:
        raise ConfigError(
            "nothing was imported:\n" + "\n".join(f"  - {p}" for p in problems),
            hint="remove or rename what the hub has already, or fix the standalone store",
        )
    done = Imported()
    for cluster in fleet.clusters:
        await asyncio.to_thread(target.put_cluster, cluster)
        done.clusters.append(cluster.name)
    for group in fleet.groups:
        await asyncio.to_thread(target.put_group, group)
        done.groups.append(group.name)
    for repo in fleet.repos:
        await asyncio.to_thread(target.put_repo, repo)
        done.repos.append(repo.name)
    for catalog_repo in fleet.catalog_repos:
        # Before the installs that name it; its password and CA stay files of this machine.
        await asyncio.to_thread(target.put_catalog_repo, catalog_repo)
        done.catalog_repos.append(catalog_repo.name)
    for app in fleet.apps:
        await asyncio.to_thread(target.put_app, app)
        (done.installs if app.source == "catalog" else done.apps).append(app.name)
    return done

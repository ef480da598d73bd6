"""What the store knows about one app and the fleet, read in one go for one sync.

A sync reads the app, its repository, the clusters and groups, the app's Deployments and
its rollout; reading them together, in one worker thread, keeps the event loop free and
gives the sync one consistent view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from appflow.errors import NotFoundError
from appflow.model.appdef import AppDefinition
from appflow.model.objects import Manifest
from appflow.model.records import (
    AppRecord,
    ClusterRecord,
    DeploymentRecord,
    RepoRecord,
    RolloutRecord,
)
from appflow.model.targeting import (
    ClusterGroup,
    ClusterInfo,
    parse_selector,
    select_clusters,
    unmatched_targets,
)
from appflow.store import Store


@dataclass(frozen=True, kw_only=True)
class FleetState:
    """The registered clusters and cluster groups."""

    clusters: dict[str, ClusterRecord]
    groups: dict[str, ClusterGroup]

    def targets(self, definition: AppDefinition, only: Sequence[str] = ()) -> list[ClusterRecord]:
        """The clusters DEFINITION targets (those among ONLY, when given), by name."""
        for name in only:
            if name not in self.clusters:
                raise NotFoundError(f"no cluster named {name!r}", hint="see `appflow cluster list`")
        chosen = select_clusters(definition, self._infos(), self.groups)
        return [self.clusters[c.name] for c in chosen if not only or c.name in only]

    def unmatched(self, definition: AppDefinition) -> list[str]:
        """DEFINITION's targets that match no registered cluster."""
        return list(unmatched_targets(definition, self._infos(), self.groups))

    def _infos(self) -> list[ClusterInfo]:
        return [ClusterInfo(name=c.name, labels=c.labels) for c in self.clusters.values()]


@dataclass(frozen=True, kw_only=True)
class AppState:
    """One app as the store knows it, with the fleet it may go to."""

    app: AppRecord
    repo: RepoRecord | None
    fleet: FleetState
    deployments: dict[str, DeploymentRecord]
    """The app's Deployments by cluster name."""
    rollout: RolloutRecord | None


def read_fleet(store: Store) -> FleetState:
    return FleetState(
        clusters={c.name: c for c in store.list_clusters()},
        groups={
            g.name: ClusterGroup(name=g.name, selector=parse_selector(g.selector))
            for g in store.list_groups()
        },
    )


def read_app_state(store: Store, name: str) -> AppState:
    """App NAME's state (NotFoundError when there is no such app)."""
    app = store.get_app(name)
    try:
        rollout: RolloutRecord | None = store.get_rollout(name)
    except NotFoundError:
        rollout = None
    return AppState(
        app=app,
        repo=store.get_repo(app.repo) if app.repo and app.source == "git" else None,
        fleet=read_fleet(store),
        deployments={d.cluster: d for d in store.list_deployments(app=name)},
        rollout=rollout,
    )


async def load_app_state(store: Store, name: str) -> AppState:
    return await asyncio.to_thread(read_app_state, store, name)


def deployed_objects(store: Store, deployment: DeploymentRecord) -> list[Manifest]:
    """The rendered objects of the revision DEPLOYMENT has on its cluster: the one applied,
    else the one its last sync tried (its hooks are what an app delete and a test run)."""
    number = deployment.applied_revision or deployment.desired_revision
    if number is None:
        return []
    return list(store.get_revision(deployment.app, number).rendered.get(deployment.cluster, []))

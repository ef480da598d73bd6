"""The HTTP API under ``/api/v1``: read the fleet's records, and queue syncs and fetches.

Every route needs ``Authorization: Bearer <token>`` (``appflow token create``); tokens
are looked up by their SHA-256. Reads are plain ``def`` routes, which FastAPI runs in
its thread pool, because the store blocks. Routes that queue work are ``async``: they
call ``Triggers`` on the event loop the daemon runs the server on (its queues are
asyncio queues), and do their store lookups in a thread.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from appflow.errors import ConfigError
from appflow.model.status import status_grid
from appflow.model.targeting import parse_selector, selector_matches
from appflow.server.auth import actor_of, bearer_authorization
from appflow.server.schemas import (
    AppDeployment,
    AppDetail,
    AppSummary,
    Cluster,
    Deployment,
    ErrorBody,
    Event,
    Failing,
    Group,
    Queued,
    Repo,
    Status,
    SyncEntry,
)
from appflow.server.service import FleetService

SQLITE_MAX_INT = 2**63 - 1

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad input."},
    401: {"model": ErrorBody, "description": "No token, or not a valid one."},
    403: {"model": ErrorBody, "description": "A read-only token asked for a change."},
    404: {"model": ErrorBody, "description": "No such record."},
    422: {"model": ErrorBody, "description": "A parameter is malformed."},
}


def api_router(*, service: FleetService, require_token: bool) -> APIRouter:
    """The ``/api/v1`` routes over SERVICE's store, queuing work on its triggers."""
    store = service.store
    triggers = service.triggers
    authorize = bearer_authorization(store)

    router = APIRouter(
        prefix="/api/v1",
        dependencies=[Depends(authorize)] if require_token else [],
        responses=ERROR_RESPONSES,
    )

    # -- clusters and groups ----------------------------------------------------------------

    @router.get("/clusters", tags=["clusters"], summary="List clusters")
    def list_clusters() -> list[Cluster]:
        return [Cluster.of(c) for c in store.list_clusters()]

    @router.get("/clusters/{name}", tags=["clusters"], summary="Show a cluster")
    def get_cluster(name: str) -> Cluster:
        return Cluster.of(store.get_cluster(name))

    @router.get("/groups", tags=["clusters"], summary="List cluster groups and their members")
    def list_groups() -> list[Group]:
        clusters = store.list_clusters()
        groups = []
        for g in store.list_groups():
            try:
                selector = parse_selector(g.selector)
                members = [c.name for c in clusters if selector_matches(selector, c.labels)]
            except ConfigError:
                members = []  # a stored selector that no longer parses matches nothing
            groups.append(Group(name=g.name, selector=g.selector, clusters=members))
        return groups

    # -- repos ------------------------------------------------------------------------------

    @router.get("/repos", tags=["repos"], summary="List repositories")
    def list_repos() -> list[Repo]:
        return [Repo.of(r) for r in store.list_repos()]

    @router.post(
        "/repos/{name}/refresh",
        tags=["repos"],
        status_code=202,
        summary="Fetch a repository now and sync the apps it changed",
    )
    async def refresh_repo(request: Request, name: str) -> Queued:
        actor_of(request).require_write("fetch repositories")
        await asyncio.to_thread(store.get_repo, name)
        triggers.trigger_repo(name, trigger="user")
        return Queued(repo=name)

    # -- apps -------------------------------------------------------------------------------

    @router.get("/apps", tags=["apps"], summary="List apps")
    def list_apps() -> list[AppSummary]:
        deployments = store.list_deployments()
        out = []
        for a in store.list_apps():
            mine = [d for d in deployments if d.app == a.name]
            out.append(
                AppSummary(
                    name=a.name,
                    source=a.source,
                    repo=a.repo,
                    path=a.path,
                    paused=a.paused,
                    clusters=len(mine),
                    ready=sum(1 for d in mine if d.state == "Ready"),
                )
            )
        return out

    @router.get("/apps/{name}", tags=["apps"], summary="Show an app and its deployments")
    def get_app(name: str) -> AppDetail:
        a = store.get_app(name)
        latest = store.latest_revision(name)
        return AppDetail(
            name=a.name,
            source=a.source,
            repo=a.repo,
            localPath=a.local_path,
            path=a.path,
            paused=a.paused,
            pinnedRevision=a.pinned_revision,
            latestRevision=latest.number if latest else None,
            deployments=[
                AppDeployment(
                    cluster=d.cluster,
                    state=d.state,
                    appliedRevision=d.applied_revision,
                    message=d.message,
                    resources=d.resource_counts.as_dict(),
                    failing=[Failing.of(f) for f in d.failing],
                )
                for d in store.list_deployments(app=name)
            ],
        )

    @router.get("/apps/{name}/history", tags=["apps"], summary="An app's syncs, newest first")
    def app_history(name: str, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[SyncEntry]:
        store.get_app(name)
        revisions = {r.number: r for r in store.list_revisions(name)}
        return [
            SyncEntry(
                id=s.id,
                revision=s.revision,
                source=str(revisions[s.revision].source_ref)[:12]
                if s.revision in revisions
                else "-",
                cluster=s.cluster,
                trigger=s.trigger,
                actor=s.actor,
                started=s.started_at,
                finished=s.finished_at,
                outcome=s.outcome,
                counts=s.counts,
                message=s.message,
            )
            for s in store.list_syncs(name, limit=limit)
        ]

    @router.post(
        "/apps/{name}/sync",
        tags=["apps"],
        status_code=202,
        summary="Sync an app now (on one cluster, or on all its targets)",
    )
    async def sync_app(request: Request, name: str, cluster: str | None = None) -> Queued:
        await service.sync(actor_of(request), name, cluster=cluster)
        return Queued(app=name, cluster=cluster)

    # -- deployments, status, events --------------------------------------------------------

    @router.get("/deployments", tags=["status"], summary="List deployments (app x cluster)")
    def list_deployments(app: str | None = None, cluster: str | None = None) -> list[Deployment]:
        return [Deployment.of(d) for d in store.list_deployments(app=app, cluster=cluster)]

    @router.get("/status", tags=["status"], summary="The apps x clusters grid")
    def status() -> Status:
        return Status.model_validate(
            status_grid(store.list_apps(), store.list_clusters(), store.list_deployments())
        )

    @router.get(
        "/events",
        tags=["status"],
        summary="Events oldest first: after since_id, or the newest limit",
    )
    def list_events(
        app: str | None = None,
        cluster: str | None = None,
        since_id: Annotated[int | None, Query(ge=0, le=SQLITE_MAX_INT)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[Event]:
        return [
            Event.of(e)
            for e in store.list_events(app=app, cluster=cluster, since_id=since_id, limit=limit)
        ]

    return router

"""The API routes the dashboard added: the grid page by page, diffs, the object tree,
rollback, rollout pause/resume, and the catalog (install, upgrade, uninstall, target match).

Each route is a thin shell over ``FleetService``, the same code the dashboard's pages and
buttons call, so a script and a person see and do the same. Routes that change anything
need a token that is not read-only (403 otherwise) and are recorded as events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from appflow.model.overview import MAX_PER_PAGE, OverviewQuery
from appflow.model.plan import Action, Plan
from appflow.model.records import RolloutRecord, TargetChoice
from appflow.server.api import ERROR_RESPONSES
from appflow.server.auth import actor_of, bearer_authorization
from appflow.server.service import FleetService, report_problems


class Cell(BaseModel):
    state: str
    revision: int | None
    message: str
    failing: int


class OverviewRow(BaseModel):
    name: str
    counts: dict[str, int] = Field(description="Deployments per state, over all its clusters.")
    resources: dict[str, int] = Field(description="Fleet's resource counts, summed.")
    cells: dict[str, Cell] = Field(description="Per cluster column (absent: not deployed).")


class OverviewPage(BaseModel):
    """One page of the apps x clusters grid."""

    clusters: list[str]
    apps: list[OverviewRow]
    page: int
    pages: int
    total_apps: int
    cluster_page: int
    cluster_pages: int
    total_clusters: int


class ChangeEntry(BaseModel):
    object: str
    action: str
    reason: str
    diff: str = Field(description="Unified YAML diff; Secret values are <redacted>.")


class ClusterPlan(BaseModel):
    summary: str
    changes: list[ChangeEntry] = Field(description="Objects that would change (not unchanged).")


class ObjectEntry(BaseModel):
    apiVersion: str
    kind: str
    namespace: str
    name: str
    health: str
    action: str = Field(description="What the last finished sync did with it.")


class SyncOutcome(BaseModel):
    """How an action that ran to the clusters went."""

    ok: bool
    revision: int | None
    clusters: dict[str, str] = Field(description="Deployment state per cluster.")
    problems: list[str]


class Rollout(BaseModel):
    app: str
    revision: int | None
    state: str
    message: str
    current: int
    partitions: list[dict[str, Any]]
    states: dict[str, str] = Field(description="Deployment state per cluster.")


class Targets(BaseModel):
    clusters: list[str] = Field(default_factory=list)
    group: str | None = None
    selector: str | None = None
    all: bool = False

    def choice(self) -> TargetChoice:
        return TargetChoice(
            clusters=tuple(self.clusters), group=self.group, selector=self.selector, all=self.all
        )


class InstallBody(BaseModel):
    entry: str
    name: str | None = None
    version: str | None = None
    namespace: str | None = None
    targets: Targets
    values: dict[str, Any] = Field(default_factory=dict)


class UpgradeBody(BaseModel):
    version: str | None = None
    values: dict[str, Any] = Field(
        default_factory=dict, description="The install's values; they replace the earlier ones."
    )


def plans_out(plans: dict[str, Plan]) -> dict[str, ClusterPlan]:
    return {
        cluster: ClusterPlan(
            summary=plan.summary(),
            changes=[
                ChangeEntry(object=str(c.ref), action=c.action.value, reason=c.reason, diff=c.diff)
                for c in plan.changes
                if c.action is not Action.UNCHANGED
            ],
        )
        for cluster, plan in plans.items()
    }


def outcome(report: Any) -> SyncOutcome:
    return SyncOutcome(
        ok=bool(report.ok),
        revision=report.revision.number if report.revision else None,
        clusters={r.cluster: r.state for r in report.results},
        problems=report_problems(report),
    )


def actions_router(*, service: FleetService, require_token: bool) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1",
        dependencies=[Depends(bearer_authorization(service.store))] if require_token else [],
        responses=ERROR_RESPONSES,
    )

    @router.get("/overview", tags=["status"], summary="One page of the apps x clusters grid")
    def overview(
        state: str = "",
        selector: str = "",
        group: str = "",
        repo: str = "",
        q: str = "",
        page: Annotated[int, Query(ge=1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 50,
        cluster_page: Annotated[int, Query(ge=1)] = 1,
        clusters_per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 50,
    ) -> OverviewPage:
        view = service.overview(
            OverviewQuery(
                state=state,
                selector=selector,
                group=group,
                repo=repo,
                search=q,
                page=page,
                per_page=per_page,
                cluster_page=cluster_page,
                clusters_per_page=clusters_per_page,
            )
        )
        names = [c.name for c in view.selection.clusters]
        return OverviewPage(
            clusters=names,
            apps=[
                OverviewRow(
                    name=r.app.name,
                    counts=r.counts,
                    resources=r.resources,
                    cells={n: Cell(**vars(c)) for n, c in zip(names, r.cells, strict=True) if c},
                )
                for r in view.rows
            ],
            page=view.selection.app_pages.page,
            pages=view.selection.app_pages.pages,
            total_apps=view.selection.app_pages.total,
            cluster_page=view.selection.cluster_pages.page,
            cluster_pages=view.selection.cluster_pages.pages,
            total_clusters=view.selection.cluster_pages.total,
        )

    @router.get(
        "/apps/{name}/diff",
        tags=["apps"],
        summary="What a sync would change, per cluster (as `appflow app diff`)",
    )
    async def diff(name: str, cluster: str | None = None) -> dict[str, ClusterPlan]:
        return plans_out(await service.diff(name, cluster=cluster))

    @router.get(
        "/apps/{name}/revisions/{to}/diff",
        tags=["apps"],
        summary="What a rollback to revision TO would change, per cluster",
    )
    async def rollback_preview(name: str, to: int) -> dict[str, ClusterPlan]:
        return plans_out(await service.diff_revision(name, to=to))

    @router.get(
        "/apps/{name}/objects", tags=["apps"], summary="The objects an app owns, per cluster"
    )
    def objects(name: str) -> dict[str, list[ObjectEntry]]:
        view = service.app(name, history=1, events=1)
        return {
            cluster: [
                ObjectEntry(
                    apiVersion=o.api_version,
                    kind=o.ref.kind,
                    namespace=o.ref.namespace,
                    name=o.ref.name,
                    health=o.health,
                    action=o.action,
                )
                for o in rows
            ]
            for cluster, rows in view.objects.items()
        }

    @router.post(
        "/apps/{name}/rollback",
        tags=["apps"],
        summary="Re-apply revision TO as it was rendered; pauses auto-sync",
    )
    async def rollback(request: Request, name: str, to: int) -> SyncOutcome:
        return outcome(await service.rollback(actor_of(request), name, to=to))

    @router.get("/rollouts", tags=["rollouts"], summary="Every app's latest rollout")
    def rollouts() -> list[Rollout]:
        return [_rollout(v.rollout, v.states) for v in service.rollouts()]

    @router.post("/rollouts/{name}/pause", tags=["rollouts"], summary="Pause before the next batch")
    def pause(request: Request, name: str) -> Rollout:
        return _rollout(service.pause_rollout(actor_of(request), name), {})

    @router.post("/rollouts/{name}/resume", tags=["rollouts"], summary="Resume, and sync the app")
    async def resume(request: Request, name: str) -> Rollout:
        return _rollout(await service.resume_rollout(actor_of(request), name), {})

    @router.get("/catalog/installs", tags=["catalog"], summary="Catalog installs and their state")
    def installs() -> list[dict[str, Any]]:
        return service.installs()

    @router.get("/catalog/match", tags=["catalog"], summary="Clusters an install would go to")
    def match(
        cluster: Annotated[list[str] | None, Query()] = None,
        group: str | None = None,
        selector: str | None = None,
        all: bool = False,
    ) -> list[str]:
        return service.match(
            TargetChoice(clusters=tuple(cluster or ()), group=group, selector=selector, all=all)
        )

    @router.post(
        "/catalog/installs",
        tags=["catalog"],
        summary="Install a catalog app; values checked on every target before any change",
    )
    async def install(request: Request, body: InstallBody) -> SyncOutcome:
        report = await service.install(
            actor_of(request),
            entry=body.entry,
            name=body.name,
            version=body.version,
            targets=body.targets.choice(),
            namespace=body.namespace,
            values=body.values,
        )
        return outcome(report)

    @router.post("/catalog/installs/{name}/upgrade", tags=["catalog"], summary="Upgrade an install")
    async def upgrade(request: Request, name: str, body: UpgradeBody) -> SyncOutcome:
        report = await service.upgrade(
            actor_of(request), name, version=body.version, values=body.values
        )
        return outcome(report)

    @router.delete("/catalog/installs/{name}", tags=["catalog"], summary="Uninstall everywhere")
    async def uninstall(request: Request, name: str) -> SyncOutcome:
        return outcome(await service.uninstall(actor_of(request), name))

    return router


def _rollout(r: RolloutRecord, states: Mapping[str, str]) -> Rollout:
    return Rollout(**r.to_data(), states=dict(states))

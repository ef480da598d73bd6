"""The shapes the HTTP API answers with, as Pydantic models, so the OpenAPI document is exact.

Shapes follow the CLI's ``-o json`` output where the CLI has one (``status``, ``app show``,
``app history``), so a script can move between the two. Nothing here carries a
credential or where one is kept: no kubeconfig path, no repository auth, no webhook
secret (only whether one is set), and repository URLs with any password redacted.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from appflow.model.giturl import redact_url
from appflow.model.records import (
    ClusterRecord,
    DeploymentRecord,
    EventRecord,
    FailingObject,
    RepoRecord,
)


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, and what to do about it."""

    error: str
    hint: str | None = None


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    ready: bool


class Queued(BaseModel):
    """Work was queued; it runs in the background (see events and history)."""

    queued: bool = True
    app: str | None = None
    repo: str | None = None
    cluster: str | None = None


class WebhookResult(BaseModel):
    """What a webhook delivery led to: ``queued`` (repos to fetch), ``ignored``, ``pong``."""

    result: str = Field(examples=["queued", "ignored", "pong"])
    reason: str | None = None
    repos: list[str] = Field(default_factory=list)


class Cluster(BaseModel):
    name: str
    kind: str
    labels: dict[str, str]
    context: str | None
    state: str
    state_reason: str
    k8s_version: str | None
    distribution: str | None
    mode: str | None
    node_count: int | None
    last_seen: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, c: ClusterRecord) -> Cluster:
        # kubeconfig_path is left out on purpose: credentials are never shown, nor where.
        return cls(
            name=c.name,
            kind=c.kind,
            labels=c.labels,
            context=c.context,
            state=c.state,
            state_reason=c.state_reason,
            k8s_version=c.k8s_version,
            distribution=c.distribution,
            mode=c.mode,
            node_count=c.node_count,
            last_seen=c.last_seen,
            created_at=c.created_at,
        )


class Group(BaseModel):
    name: str
    selector: str
    clusters: list[str] = Field(description="The clusters the selector matches now.")


class Repo(BaseModel):
    name: str
    url: str
    ref: str
    paths: list[str]
    poll_interval_seconds: int
    webhook_secret: bool = Field(description="Whether a webhook secret is set (never the secret).")
    last_commit: str | None
    last_fetched: datetime | None

    @classmethod
    def of(cls, r: RepoRecord) -> Repo:
        return cls(
            name=r.name,
            url=redact_url(r.url),
            ref=r.ref,
            paths=list(r.paths),
            poll_interval_seconds=r.poll_interval_seconds,
            webhook_secret=r.webhook_secret_ref is not None,
            last_commit=r.last_commit,
            last_fetched=r.last_fetched,
        )


class AppSummary(BaseModel):
    name: str
    source: str
    repo: str | None
    path: str
    paused: bool
    clusters: int = Field(description="Clusters the app is deployed to.")
    ready: int = Field(description="Of those, how many are Ready.")


class Failing(BaseModel):
    object: str
    message: str

    @classmethod
    def of(cls, f: FailingObject) -> Failing:
        return cls(object=f.object, message=f.message)


class AppDeployment(BaseModel):
    cluster: str
    state: str
    appliedRevision: int | None
    message: str
    resources: dict[str, int]
    failing: list[Failing]


class AppDetail(BaseModel):
    """As `appflow app show NAME -o json`."""

    name: str
    source: str
    repo: str | None
    localPath: str | None
    path: str
    paused: bool
    pinnedRevision: int | None = Field(
        description="The revision a rollback pinned the app to (`appflow app resume` unpins)."
    )
    latestRevision: int | None
    deployments: list[AppDeployment]


class SyncEntry(BaseModel):
    """One sync of the app's history, as `appflow app history NAME -o json`."""

    id: int
    revision: int | None
    source: str = Field(description="Source commit (12 characters) or chart version.")
    cluster: str
    trigger: str
    actor: str = Field(
        default="",
        description="Who asked: the API or dashboard token's name, or cli; empty for "
        "appflow's own triggers (poll, webhook, selfHeal...).",
    )
    started: datetime
    finished: datetime | None
    outcome: str
    counts: dict[str, int]
    message: str


class Deployment(BaseModel):
    app: str
    cluster: str
    desired_revision: int | None
    applied_revision: int | None
    state: str
    message: str
    resource_counts: dict[str, int]
    failing: list[Failing]
    inventory: list[str] = Field(description="The objects this deployment owns on the cluster.")
    updated_at: datetime

    @classmethod
    def of(cls, d: DeploymentRecord) -> Deployment:
        return cls(
            app=d.app,
            cluster=d.cluster,
            desired_revision=d.desired_revision,
            applied_revision=d.applied_revision,
            state=d.state,
            message=d.message,
            resource_counts=d.resource_counts.as_dict(),
            failing=[Failing.of(f) for f in d.failing],
            inventory=[e.to_line() for e in d.inventory],
            updated_at=d.updated_at,
        )


class StatusCluster(BaseModel):
    name: str
    state: str
    reason: str


class StatusDeployment(BaseModel):
    state: str
    revision: int | None = Field(description="The revision last applied completely.")
    desiredRevision: int | None = Field(
        description="The revision being applied; while WaitApplied, the one a sync did not finish."
    )
    message: str
    failing: list[str]
    resources: dict[str, int] = Field(
        description="Objects per state: ready, desiredReady, notReady, missing, modified, orphaned, unknown, waitApplied."
    )


class StatusApp(BaseModel):
    name: str
    counts: dict[str, int] = Field(description="Deployments per state.")
    resources: dict[str, int] = Field(
        description="Objects per state, summed over the app's clusters."
    )
    deployments: dict[str, StatusDeployment] = Field(description="Per cluster name.")


class Status(BaseModel):
    """The apps x clusters grid, as `appflow status -o json`."""

    clusters: list[StatusCluster]
    apps: list[StatusApp]


class Event(BaseModel):
    id: int
    time: datetime
    kind: str
    message: str
    app: str | None
    cluster: str | None
    trigger: str | None
    commit: str | None
    outcome: str | None

    @classmethod
    def of(cls, e: EventRecord) -> Event:
        return cls(
            id=e.id,
            time=e.time,
            kind=e.kind,
            message=e.message,
            app=e.app,
            cluster=e.cluster,
            trigger=e.trigger,
            commit=e.commit,
            outcome=e.outcome,
        )

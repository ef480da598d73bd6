"""The records appflow keeps about its fleet: clusters, sources, apps, revisions, history.

Pure frozen dataclasses, no I/O. The embedded SQLite store (``appflow.store.sqlite``) and,
later, the hub store (custom resources) both persist exactly these types, so nothing here
may know how or where a record is kept. Every field is typed: nested data is a record of
its own (a sync policy, catalog install data, a Helm release reference, resource counts,
inventory entries, a source reference), and ``appflow.model.codec`` maps each one to JSON
and back without a custom encoder. The only free-form data is what users write as free
form (Helm values), typed as ``JsonValue``.

Enumerated fields are ``Literal`` types so mypy checks callers; ``__post_init__`` checks them
again at run time because values also arrive from flags, JSON and the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

from appflow.errors import ConfigError, NotFoundError, Where
from appflow.model.appdef import Dependency, EncryptedValues, RolloutSpec, SyncPolicy
from appflow.model.codec import JsonObject, to_json
from appflow.model.inventory import InventoryEntry

ClusterKind = Literal["eve-k", "imported"]
ClusterState = Literal["Online", "Init", "Suspect", "Offline", "Error"]
AppSource = Literal["git", "local", "catalog"]
DeploymentState = Literal[
    "Ready",
    "NotReady",
    "WaitApplied",
    "ErrApplied",
    "OutOfSync",
    "Modified",
    "Missing",
    "Orphaned",
    "Unknown",
]
SyncTrigger = Literal["user", "poll", "webhook", "selfHeal", "rollback", "watch"]
SyncOutcome = Literal["running", "succeeded", "failed", "interrupted"]
"""``interrupted``: the process that ran the sync died before it finished (set on recovery)."""

CLUSTER_KINDS: tuple[str, ...] = get_args(ClusterKind)
CLUSTER_STATES: tuple[str, ...] = get_args(ClusterState)
APP_SOURCES: tuple[str, ...] = get_args(AppSource)
DEPLOYMENT_STATES: tuple[str, ...] = get_args(DeploymentState)
SYNC_TRIGGERS: tuple[str, ...] = get_args(SyncTrigger)
CLI_ACTOR = "cli"
"""SyncRecord.actor of a sync the command line asked for (`appflow sync`)."""
SYNC_OUTCOMES: tuple[str, ...] = get_args(SyncOutcome)

RenderedObjects = dict[str, list[JsonObject]]
"""Rendered output of one revision: cluster name -> the objects applied to that cluster
(Kubernetes objects are free-form JSON)."""

UpgradePolicy = Literal["manual", "auto"]
UPGRADE_POLICIES: tuple[str, ...] = get_args(UpgradePolicy)
ChartKind = Literal["local", "repo", "oci"]
RepoAuthKind = Literal["none", "ssh", "basic", "token"]
REPO_AUTH_KINDS: tuple[str, ...] = get_args(RepoAuthKind)


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (every record time is)."""
    return datetime.now(UTC)


def _check_name(value: str, what: str) -> None:
    if not value or value != value.strip():
        raise ConfigError(f"{what} name {value!r} is empty or has surrounding spaces")


def _check_choice(value: str, choices: tuple[str, ...], *, field_name: str) -> None:
    if value not in choices:
        raise ConfigError(
            f"{value!r} is not one of {', '.join(choices)}",
            where=Where(field=field_name),
        )


def _check_aware(value: datetime | None, *, field_name: str) -> None:
    # Naive datetimes are ambiguous once stored; every time in a record is UTC-aware.
    if value is not None and value.tzinfo is None:
        raise ConfigError(
            "time has no timezone; use appflow.model.records.utc_now()",
            where=Where(field=field_name),
        )


# -- source references: what a revision was rendered from -----------------------------------


@dataclass(frozen=True, kw_only=True)
class GitCommit:
    """A revision rendered from a git checkout at COMMIT."""

    kind: Literal["git"] = "git"
    commit: str

    def __str__(self) -> str:
        return self.commit


@dataclass(frozen=True, kw_only=True)
class LocalContent:
    """A revision rendered from a local folder whose files digest to DIGEST (shortened)."""

    kind: Literal["local"] = "local"
    digest: str

    def __str__(self) -> str:
        return f"local:{self.digest}"


@dataclass(frozen=True, kw_only=True)
class CatalogChart:
    """A revision rendered from catalog entry ENTRY's chart at VERSION."""

    kind: Literal["catalog"] = "catalog"
    entry: str
    version: str

    def __str__(self) -> str:
        return f"catalog:{self.entry}@{self.version}"


SourceRef = GitCommit | LocalContent | CatalogChart
"""Where a revision came from; ``str()`` gives the short form the CLI shows."""


# -- what a deployment holds besides its inventory ------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ResourceCounts:
    """A Deployment's objects per state, in Fleet's and ZEDEDA's terms."""

    desired_ready: int = 0
    ready: int = 0
    not_ready: int = 0
    wait_applied: int = 0
    err_applied: int = 0
    out_of_sync: int = 0
    modified: int = 0
    missing: int = 0
    orphaned: int = 0
    unknown: int = 0

    def as_dict(self) -> dict[str, int]:
        """camelCase name -> count, as the API and ``-o json`` show them."""
        return cast(dict[str, int], to_json(self))

    def __add__(self, other: ResourceCounts) -> ResourceCounts:
        return ResourceCounts(
            **{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__}
        )


@dataclass(frozen=True, kw_only=True)
class ReleaseRevision:
    """The Helm release revision a successful sync of an appflow revision produced."""

    revision: int
    helm_revision: int


HELM_HISTORY = 20
"""Revisions remembered per release: Helm itself keeps 10 by default, so older ones
could not be rolled back to anyway."""


@dataclass(frozen=True, kw_only=True)
class HelmReleaseRef:
    """The Helm release behind a release-mode Deployment (``helm: {mode: release}``)."""

    namespace: str
    name: str
    revision: int
    """Helm's revision of the release as last synced."""
    history: tuple[ReleaseRevision, ...] = ()
    """Newest last: which Helm revision each appflow revision became (for rollback)."""

    def helm_revision_of(self, revision: int) -> int | None:
        """The Helm revision appflow revision REVISION became on this cluster, if known."""
        found = [h.helm_revision for h in self.history if h.revision == revision]
        return found[-1] if found else None

    def recorded(self, *, revision: int | None, helm_revision: int) -> HelmReleaseRef:
        """This release after a successful sync of REVISION made HELM_REVISION."""
        history = self.history
        if revision is not None:
            history = (
                *(h for h in history if h.revision != revision),
                ReleaseRevision(revision=revision, helm_revision=helm_revision),
            )[-HELM_HISTORY:]
        return HelmReleaseRef(
            namespace=self.namespace, name=self.name, revision=helm_revision, history=history
        )


@dataclass(frozen=True, kw_only=True)
class HookRecord:
    """What a Deployment remembers of its hooks, so that a revision's hooks run once per
    cluster (see ``appflow.model.hooks.sync_operation``)."""

    revision: str = ""
    """The revision whose sync hooks all ran on the cluster."""
    install_failed: bool = False
    """The app's first sync there failed: the next one is an install again."""

    def encode(self) -> str:
        """The one-string form kept before hook state had a field of its own (still the
        pull agent's, among its fingerprints under ``appflow.model.hooks.HOOKS_KEY``)."""
        return "install-failed" if self.install_failed else self.revision

    @classmethod
    def decode(cls, text: str | None) -> HookRecord | None:
        """The record ``encode`` wrote (None for nothing)."""
        if not text:
            return None
        if text == "install-failed":
            return cls(install_failed=True)
        return cls(revision=text)


# -- catalog installs ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TargetChoice:
    """Where an install goes: named clusters, a cluster group, a selector, or every cluster."""

    clusters: tuple[str, ...] = ()
    group: str | None = None
    selector: str | None = None
    all: bool = False

    def check(self) -> None:
        chosen = sum(bool(x) for x in (self.clusters, self.group, self.selector, self.all))
        if chosen != 1:
            raise ConfigError(
                "say where to install: exactly one of --cluster C (repeatable), --group G, "
                "--selector k=v or --all"
            )

    def describe(self) -> str:
        if self.clusters:
            return ",".join(self.clusters)
        if self.group:
            return f"group {self.group}"
        if self.selector:
            return f"selector {self.selector}"
        return "all clusters"


@dataclass(frozen=True, kw_only=True)
class InstalledChart:
    """The exact chart a catalog install renders: where it came from and its digest."""

    kind: ChartKind
    digest: str
    folder: str | None = None
    """local: the entry's chart folder."""
    snapshot: str | None = None
    """local: the content-addressed copy rendered from (in the cache)."""
    repo: str | None = None
    """repo: the Helm repository URL."""
    repo_name: str | None = None
    """repo: the registered catalog repository, if any."""
    name: str | None = None
    """repo: the chart's name in the repository."""
    url: str | None = None
    """repo: the archive's URL."""
    oci: str | None = None
    """oci: ``oci://host/path/chart`` without a tag."""


@dataclass(frozen=True, kw_only=True)
class CatalogInstall:
    """Everything a later sync of a catalog install needs, without the catalog."""

    entry: str
    chart: InstalledChart
    version: str
    repo: str | None = None
    """The catalog repository the entry came from (REPO/CHART entries)."""
    folder: str | None = None
    """The entry's folder, for local entries."""
    constraint: str | None = None
    """The install's own --version constraint."""
    entry_constraint: str | None = None
    """The entry's version constraint when installed."""
    values: JsonObject = field(default_factory=dict)
    """The user's values: entry defaults < previous < files < --set (no chart defaults)."""
    targets: TargetChoice = field(default_factory=lambda: TargetChoice(all=True))
    namespace: str = "default"
    upgrade_policy: UpgradePolicy = "manual"
    encrypted_values: tuple[EncryptedValues, ...] = ()
    """SOPS-encrypted values files, as ciphertext (decrypted per cluster when it syncs)."""

    def __post_init__(self) -> None:
        _check_choice(self.upgrade_policy, UPGRADE_POLICIES, field_name="upgradePolicy")


@dataclass(frozen=True, kw_only=True)
class ClusterRecord:
    """A sync target: an EVE-k cluster or an imported conformant cluster.

    The kubeconfig itself lives in the data folder with mode 0600; the record keeps only its
    path, so a dump of the store never contains credentials.
    """

    name: str
    kind: ClusterKind
    labels: dict[str, str] = field(default_factory=dict)
    kubeconfig_path: str | None = None
    context: str | None = None
    state: ClusterState = "Init"
    state_reason: str = ""
    k8s_version: str | None = None
    distribution: str | None = None
    """Kubernetes distribution as detected, e.g. ``k3s``."""
    mode: str | None = None
    """Control-plane layout, e.g. ``single-node``, ``ha-3``, ``ha-2+tiebreaker``."""
    node_count: int | None = None
    last_seen: datetime | None = None
    created_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _check_name(self.name, "cluster")
        _check_choice(self.kind, CLUSTER_KINDS, field_name="kind")
        _check_choice(self.state, CLUSTER_STATES, field_name="state")
        _check_aware(self.last_seen, field_name="last_seen")
        _check_aware(self.created_at, field_name="created_at")


@dataclass(frozen=True, kw_only=True)
class ClusterGroupRecord:
    """A named label selector over clusters (kubectl selector syntax, e.g. ``region=eu,tier!=lab``)."""

    name: str
    selector: str

    def __post_init__(self) -> None:
        _check_name(self.name, "cluster group")


@dataclass(frozen=True, kw_only=True)
class RepoCredentials:
    """How appflow signs in to a private repository: where its secret is kept, never the secret.

    ``secret_file`` is a file of its own in the data folder (mode 0600, written by
    `appflow repo add`): the SSH private key (``ssh``), the password (``basic``) or the
    token (``token``). ``known_hosts_file`` holds the SSH server keys to trust (without
    one, the user's ``~/.ssh/known_hosts``).
    """

    kind: RepoAuthKind = "none"
    username: str | None = None
    """The user for ``basic``; for ``token`` the user the token is sent as (default
    x-access-token); for ``ssh`` the user when the URL names none (default git)."""
    secret_file: str | None = None
    known_hosts_file: str | None = None

    def __post_init__(self) -> None:
        _check_choice(self.kind, REPO_AUTH_KINDS, field_name="auth.kind")
        if (self.kind == "none") != (self.secret_file is None):
            raise ConfigError(
                "credentials need a secret file, and only credentials have one",
                where=Where(field="auth.secretFile"),
            )
        if self.kind == "basic" and not self.username:
            raise ConfigError(
                "basic credentials need a username", where=Where(field="auth.username")
            )
        if self.known_hosts_file is not None and self.kind != "ssh":
            raise ConfigError(
                "only SSH credentials take a known_hosts file",
                where=Where(field="auth.knownHostsFile"),
            )

    def describe(self) -> str:
        """What kind of credentials these are, for listings (never where they are kept)."""
        if self.kind == "basic":
            return f"basic ({self.username})"
        return self.kind


@dataclass(frozen=True, kw_only=True)
class RepoRecord:
    """A GitRepo source: where to fetch, which ref, which folders hold apps, how to sign in."""

    name: str
    url: str
    ref: str = "main"
    """Branch, tag, commit or semver range to follow."""
    paths: tuple[str, ...] = ()
    auth: RepoCredentials = field(default_factory=RepoCredentials)
    poll_interval_seconds: int = 60
    webhook_secret_ref: str | None = None
    last_commit: str | None = None
    last_fetched: datetime | None = None
    created_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _check_name(self.name, "repo")
        if self.poll_interval_seconds < 0:
            raise ConfigError(
                "poll interval must not be negative", where=Where(field="poll_interval_seconds")
            )
        _check_aware(self.last_fetched, field_name="last_fetched")
        _check_aware(self.created_at, field_name="created_at")


@dataclass(frozen=True, kw_only=True)
class CatalogRepoRecord:
    """A Helm HTTP repository or an OCI registry path the catalog lists charts from.

    Holds where the password and CA files are, never a secret itself.
    """

    name: str
    url: str
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    poll_interval_seconds: int = 300
    created_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(
                f"catalog repository name {self.name!r} must be non-empty and have no '/'",
                where=Where(field="name"),
            )
        if self.poll_interval_seconds < 0:
            raise ConfigError(
                "poll interval must not be negative", where=Where(field="poll_interval_seconds")
            )
        _check_aware(self.created_at, field_name="created_at")

    @property
    def is_oci(self) -> bool:
        return self.url.startswith("oci://")


@dataclass(frozen=True, kw_only=True)
class AppRecord:
    """An AppFlow: what to deploy (source, path), what its definition last said, pinned or not.

    ``repo`` names a RepoRecord when ``source`` is ``git``; ``local_path`` is the folder when
    ``source`` is ``local``; ``path`` is the app folder inside the repo, or the catalog entry.
    The definition itself stays in its source; the record keeps what decisions made without
    the source need (policy, labels, dependsOn) as it was when last read.
    """

    name: str
    source: AppSource
    repo: str | None = None
    local_path: str | None = None
    path: str = ""
    policy: SyncPolicy = field(default_factory=SyncPolicy)
    """The sync policy of the definition as last read (the daemon decides with it)."""
    labels: dict[str, str] = field(default_factory=dict)
    """The definition's labels as last read (dependsOn selectors match them)."""
    depends_on: tuple[Dependency, ...] = ()
    """The definition's dependsOn as last read (ordering and cycles, without the source)."""
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    """The definition's rollout strategy as last read (what the dashboard shows of it)."""
    catalog: CatalogInstall | None = None
    """What was installed, for ``source == "catalog"``: the record is the definition."""
    pinned_revision: int | None = None
    """Set by ``app rollback``: the app stays at this revision, whatever its source says,
    until ``app resume`` (no automatic sync, and a manual one is refused with that hint)."""
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _check_name(self.name, "app")
        _check_choice(self.source, APP_SOURCES, field_name="source")
        if self.source == "git" and not self.repo:
            raise ConfigError(
                "an app from git needs a repo", where=Where(app=self.name, field="repo")
            )
        if self.source == "local" and not self.local_path:
            raise ConfigError(
                "a local app needs a local path", where=Where(app=self.name, field="local_path")
            )
        if self.source == "catalog" and self.catalog is None:
            raise ConfigError(
                "a catalog app needs its install data",
                where=Where(app=self.name, field="catalog"),
                hint="reinstall it with `appflow catalog install`",
            )
        _check_aware(self.created_at, field_name="created_at")
        _check_aware(self.updated_at, field_name="updated_at")

    @property
    def paused(self) -> bool:
        """No sync moves the app (it is pinned to a revision)."""
        return self.pinned_revision is not None


@dataclass(frozen=True, kw_only=True)
class RevisionRecord:
    """One rendered state of an app: numbered per app by the store, identified by its digest.

    ``rendered`` is exactly what was applied per cluster, so a rollback re-applies it without
    fetching or rendering anything.
    """

    app: str
    number: int
    digest: str
    source_ref: SourceRef
    """The source commit, local folder content, or catalog chart version rendered."""
    rendered: RenderedObjects = field(default_factory=dict, repr=False)
    message: str = ""
    created_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if self.number < 1:
            raise ConfigError(
                "revision numbers start at 1", where=Where(app=self.app, field="number")
            )
        _check_aware(self.created_at, field_name="created_at")


@dataclass(frozen=True, kw_only=True)
class FailingObject:
    """One object of a deployment that failed to apply or is unhealthy, and why."""

    object: str
    message: str


@dataclass(frozen=True, kw_only=True)
class DeploymentRecord:
    """One AppFlow on one Cluster: which revision is wanted and applied, what it owns, its state."""

    app: str
    cluster: str
    desired_revision: int | None = None
    applied_revision: int | None = None
    state: DeploymentState = "Unknown"
    message: str = ""
    inventory: tuple[InventoryEntry, ...] = ()
    """Every object this deployment owns (the store's mirror of the cluster's inventory)."""
    applied: dict[str, str] = field(default_factory=dict)
    """Per encoded ObjectRef, the fingerprint of what appflow last applied and saw
    (desired digest, the digest of appflow's managed fields, uid): when the live
    object still matches it, a re-sync skips the object without a dry run."""
    release: HelmReleaseRef | None = None
    """The Helm release, for a release-mode app (Helm owns its objects: no inventory)."""
    hooks: HookRecord | None = None
    """What the app's hooks did here last (None: the app has no hooks, or none ran yet)."""
    resource_counts: ResourceCounts = field(default_factory=ResourceCounts)
    failing: tuple[FailingObject, ...] = ()
    updated_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _check_choice(self.state, DEPLOYMENT_STATES, field_name="state")
        _check_aware(self.updated_at, field_name="updated_at")


@dataclass(frozen=True, kw_only=True)
class DeploymentSummary:
    """What a status grid shows of a Deployment, without its inventory and fingerprints:
    a fleet of 50,000 Deployments is listed in a tenth of the time full records take."""

    app: str
    cluster: str
    state: DeploymentState
    applied_revision: int | None
    message: str
    resource_counts: ResourceCounts
    failing: int
    """How many objects fail (their messages are in the full record)."""

    @classmethod
    def of(cls, d: DeploymentRecord) -> DeploymentSummary:
        return cls(
            app=d.app,
            cluster=d.cluster,
            state=d.state,
            applied_revision=d.applied_revision,
            message=d.message,
            resource_counts=d.resource_counts,
            failing=len(d.failing),
        )


@dataclass(frozen=True, kw_only=True)
class SyncRecord:
    """One sync of an app to a cluster, from start to outcome (the app's history)."""

    id: int
    app: str
    cluster: str
    revision: int | None
    """None when the sync failed before a revision existed (e.g. the render failed)."""
    trigger: SyncTrigger
    started_at: datetime
    actor: str = ""
    """Who asked: the API or dashboard token's name, or "cli" for the command line; empty
    for what appflow started itself (the trigger says what: poll, webhook, selfHeal...)."""
    finished_at: datetime | None = None
    outcome: SyncOutcome = "running"
    counts: dict[str, int] = field(default_factory=dict)
    """Objects per action: created, configured, unchanged, pruned."""
    message: str = ""
    objects: dict[str, str] = field(default_factory=dict)
    """Per encoded ObjectRef, the action this sync took on it (created, configured, ...)."""

    @property
    def asked_by(self) -> str:
        """Who or what started it, as history shows it: the actor, else the trigger."""
        return self.actor or self.trigger

    def __post_init__(self) -> None:
        _check_choice(self.trigger, SYNC_TRIGGERS, field_name="trigger")
        _check_choice(self.outcome, SYNC_OUTCOMES, field_name="outcome")
        _check_aware(self.started_at, field_name="started_at")
        _check_aware(self.finished_at, field_name="finished_at")


@dataclass(frozen=True, kw_only=True)
class SyncLock:
    """One writer's hold on an app on a cluster: only one process syncs (app, cluster) at once.

    TOKEN tells one hold from another (a process may hold several, one per sync);
    HEARTBEAT_AT is renewed while the sync runs, so a hold whose owner died, or stopped
    renewing, can be taken over (see ``Store.acquire_sync_lock``).
    """

    app: str
    cluster: str
    token: str
    pid: int
    host: str
    started_at: datetime
    heartbeat_at: datetime

    def __post_init__(self) -> None:
        _check_aware(self.started_at, field_name="started_at")
        _check_aware(self.heartbeat_at, field_name="heartbeat_at")

    @property
    def holder(self) -> str:
        """'PID/host since T', as messages name the holder."""
        since = self.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.pid}/{self.host} since {since}"


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    """Something that happened, for the event feed: a sync, a failure, drift, a prune...

    ``app`` or ``cluster`` is None for events about only one of them (a cluster going
    Offline). ``kind`` is an open set: sync, failure, drift, selfHeal, rollout, prune, ...
    """

    id: int
    time: datetime
    kind: str
    message: str
    app: str | None = None
    cluster: str | None = None
    trigger: str | None = None
    commit: str | None = None
    outcome: str | None = None

    def __post_init__(self) -> None:
        _check_aware(self.time, field_name="time")

    def to_data(self) -> dict[str, Any]:
        """As `appflow events -o json` and the dashboard's event stream show it."""
        return {
            "id": self.id,
            "time": self.time.isoformat(timespec="seconds"),
            "kind": self.kind,
            "app": self.app,
            "cluster": self.cluster,
            "trigger": self.trigger,
            "commit": self.commit,
            "outcome": self.outcome,
            "message": self.message,
        }


RolloutState = Literal["Progressing", "Paused", "Failed", "RolledBack", "Complete"]
ROLLOUT_STATES: tuple[str, ...] = get_args(RolloutState)
PartitionState = Literal["Pending", "Progressing", "Ready", "Failed"]


@dataclass(frozen=True, kw_only=True)
class RolloutPartitionRecord:
    """One partition of a rollout and how far it got."""

    name: str
    clusters: tuple[str, ...]
    max_unavailable: int
    state: PartitionState = "Pending"
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class RolloutRecord:
    """Where an app's progressive rollout of a revision stands."""

    app: str
    revision: int | None
    state: RolloutState
    partitions: tuple[RolloutPartitionRecord, ...]
    current: int = 0
    """Index of the partition being delivered (len(partitions) when done)."""
    message: str = ""
    updated_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _check_choice(self.state, ROLLOUT_STATES, field_name="state")
        _check_aware(self.updated_at, field_name="updated_at")

    def to_data(self) -> dict[str, Any]:
        """As `appflow rollout status -o json` and the API show it."""
        return {
            "app": self.app,
            "revision": self.revision,
            "state": self.state,
            "message": self.message,
            "current": self.current,
            "partitions": [
                {
                    "name": p.name,
                    "clusters": list(p.clusters),
                    "maxUnavailable": p.max_unavailable,
                    "state": p.state,
                    "message": p.message,
                }
                for p in self.partitions
            ],
        }


def no_rollout(app: str) -> NotFoundError:
    """What every store says of an app without a rollout record."""
    return NotFoundError(
        "the app has no rollout",
        where=Where(app=app),
        hint="rollouts are made by syncs of apps with a rollout strategy",
    )


TokenScope = Literal["admin", "read-only"]
"""``read-only`` tokens may read everything the API and the dashboard show, and change nothing."""
TOKEN_SCOPES: tuple[str, ...] = get_args(TokenScope)


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    """An API bearer token, without the token: the store keeps only its SHA-256."""

    id: int
    name: str
    scope: TokenScope = "admin"
    created_at: datetime = field(default_factory=utc_now)
    last_used: datetime | None = None
    expires_at: datetime | None = None
    """None: the token does not expire (until revoked)."""

    @property
    def read_only(self) -> bool:
        return self.scope == "read-only"

    def __post_init__(self) -> None:
        _check_name(self.name, "token")
        _check_choice(self.scope, TOKEN_SCOPES, field_name="scope")
        _check_aware(self.created_at, field_name="created_at")
        _check_aware(self.last_used, field_name="last_used")
        _check_aware(self.expires_at, field_name="expires_at")

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

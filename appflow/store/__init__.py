"""The store: where appflow keeps its records, behind one interface.

``Store`` is what the engine, the daemon and the CLI program against. The embedded default
is ``SqliteStore`` (one SQLite file in the data folder, see ``open_store``); the hub mode will
keep the same records (``appflow.model.records``) as custom resources behind the same
Protocol. Methods are synchronous and thread-safe: async callers use ``asyncio.to_thread``.

Errors: a missing record raises NotFoundError naming it and the command that lists what
exists; anything else that goes wrong in the store raises StoreError.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from appflow.model.policy import Policy, PolicyScope
from appflow.model.records import (
    AppRecord,
    CatalogRepoRecord,
    ClusterGroupRecord,
    ClusterRecord,
    DeploymentRecord,
    DeploymentSummary,
    EventRecord,
    RenderedObjects,
    RepoRecord,
    RevisionRecord,
    RolloutRecord,
    SourceRef,
    SyncLock,
    SyncOutcome,
    SyncRecord,
    SyncTrigger,
    TokenRecord,
    TokenScope,
)
from appflow.store.sqlite import SqliteStore, default_store_path, open_store

__all__ = ["SqliteStore", "Store", "default_store_path", "open_store"]


class Store(Protocol):
    """appflow's records: clusters, groups, repos, catalog repos, apps, revisions,
    deployments, history."""

    def close(self) -> None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside the block commit together or not at all."""
        ...

    # clusters
    def put_cluster(self, cluster: ClusterRecord) -> ClusterRecord: ...
    def get_cluster(self, name: str) -> ClusterRecord: ...
    def list_clusters(self) -> list[ClusterRecord]: ...
    def delete_cluster(self, name: str, *, with_deployments: bool = False) -> None: ...

    # cluster groups
    def put_group(self, group: ClusterGroupRecord) -> ClusterGroupRecord: ...
    def get_group(self, name: str) -> ClusterGroupRecord: ...
    def list_groups(self) -> list[ClusterGroupRecord]: ...
    def delete_group(self, name: str) -> None: ...

    # repos
    def put_repo(self, repo: RepoRecord) -> RepoRecord: ...
    def get_repo(self, name: str) -> RepoRecord: ...
    def record_fetch(self, name: str, *, commit: str) -> None: ...
    def list_repos(self) -> list[RepoRecord]: ...
    def delete_repo(self, name: str) -> None: ...

    # catalog repositories (Helm repositories and OCI registries the catalog lists)
    def put_catalog_repo(self, repo: CatalogRepoRecord) -> CatalogRepoRecord: ...
    def get_catalog_repo(self, name: str) -> CatalogRepoRecord: ...
    def list_catalog_repos(self) -> list[CatalogRepoRecord]: ...
    def delete_catalog_repo(self, name: str) -> None: ...

    # apps
    def put_app(self, app: AppRecord) -> AppRecord: ...
    def get_app(self, name: str) -> AppRecord: ...
    def list_apps(self) -> list[AppRecord]: ...
    def delete_app(self, name: str, *, with_deployments: bool = False) -> None: ...

    # revisions
    def add_revision(
        self,
        app: str,
        *,
        digest: str,
        source_ref: SourceRef,
        rendered: RenderedObjects,
        message: str = "",
    ) -> RevisionRecord: ...
    def get_revision(self, app: str, number: int) -> RevisionRecord: ...
    def list_revisions(self, app: str, *, with_rendered: bool = False) -> list[RevisionRecord]: ...
    def latest_revision(self, app: str, *, with_rendered: bool = True) -> RevisionRecord | None: ...

    # deployments
    def put_deployment(self, deployment: DeploymentRecord) -> DeploymentRecord: ...
    def get_deployment(self, app: str, cluster: str) -> DeploymentRecord: ...
    def list_deployments(
        self, *, app: str | None = None, cluster: str | None = None
    ) -> list[DeploymentRecord]: ...
    def list_deployment_summaries(
        self, *, apps: Sequence[str] | None = None, states: Sequence[str] | None = None
    ) -> list[DeploymentSummary]:
        """The grid's view of deployments (of APPS and in STATES, or all), ordered by app,
        cluster; a store without a cheaper query returns ``DeploymentSummary.of`` of each."""
        ...

    def delete_deployment(self, app: str, cluster: str) -> None: ...

    # sync history
    def put_rollout(self, rollout: RolloutRecord) -> RolloutRecord: ...

    def get_rollout(self, app: str) -> RolloutRecord: ...

    def start_sync(
        self,
        app: str,
        cluster: str,
        *,
        revision: int | None,
        trigger: SyncTrigger,
        actor: str = "",
    ) -> SyncRecord: ...
    def finish_sync(
        self,
        sync_id: int,
        *,
        outcome: SyncOutcome,
        counts: dict[str, int] | None = None,
        message: str = "",
        objects: dict[str, str] | None = None,
    ) -> SyncRecord: ...
    def get_sync(self, sync_id: int) -> SyncRecord: ...
    def list_syncs(
        self, app: str, *, cluster: str | None = None, limit: int = 50
    ) -> list[SyncRecord]: ...
    def running_syncs(self) -> list[SyncRecord]: ...
    def recover_interrupted(self) -> list[SyncRecord]: ...

    # one writer per app and cluster (hub mode's store is to keep these as Leases)
    def acquire_sync_lock(
        self, app: str, cluster: str, *, token: str, stale_after: float, mine: frozenset[str]
    ) -> SyncLock:
        """The hold of TOKEN when it got it, else the current holder's."""
        ...

    def renew_sync_locks(self, tokens: Collection[str]) -> set[str]: ...
    def release_sync_lock(self, app: str, cluster: str, *, token: str) -> None: ...

    # events
    def add_event(
        self,
        *,
        kind: str,
        message: str,
        app: str | None = None,
        cluster: str | None = None,
        trigger: str | None = None,
        commit: str | None = None,
        outcome: str | None = None,
        time: datetime | None = None,
    ) -> EventRecord: ...
    def list_events(
        self,
        *,
        app: str | None = None,
        cluster: str | None = None,
        since_id: int | None = None,
        limit: int = 100,
    ) -> list[EventRecord]: ...

    # API tokens (only their SHA-256 is kept; see appflow.model.tokens)
    def add_token(
        self,
        name: str,
        *,
        token_hash: str,
        scope: TokenScope = "admin",
        expires_at: datetime | None = None,
    ) -> TokenRecord: ...
    def list_tokens(self) -> list[TokenRecord]: ...
    def delete_token(self, name: str) -> None: ...
    def use_token(self, token_hash: str, *, now: datetime | None = None) -> TokenRecord | None:
        """The token with this hash, or None; records its use (best-effort, never waiting)."""
        ...

    def session_key(self) -> bytes:
        """The dashboard's session-signing key: made once, the same for every server that
        reads this store (so a browser stays signed in whichever of them answers)."""
        ...

    # webhook deliveries (the generic receiver's replay guard)
    def remember_deliveries(self, keys: list[str], *, now: float, ttl_seconds: float) -> bool:
        """True if any of KEYS was seen within the TTL (a replay); otherwise remember them."""
        ...

    # operator policies: guard rails per cluster, group or repo
    def put_policy(self, policy: Policy) -> Policy: ...
    def get_policy(self, scope: PolicyScope, name: str) -> Policy: ...
    def list_policies(self) -> list[Policy]: ...
    def delete_policy(self, scope: PolicyScope, name: str) -> None: ...


if TYPE_CHECKING:
    # mypy proves here that SqliteStore implements the whole Protocol.
    def _sqlite_is_a_store(store: SqliteStore) -> Store:
        return store

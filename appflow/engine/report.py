"""What one sync (or rollback, or uninstall) of an app across its targets did."""

from __future__ import annotations

from dataclasses import dataclass, field

from appflow.engine.stages.types import SyncResult
from appflow.errors import AppflowError
from appflow.model.records import RevisionRecord


@dataclass(kw_only=True)
class AppSyncReport:
    """What one sync of an app across its targets did.

    Failures on a cluster are kept apart by what a retry can do: ``unreachable``
    holds retryable errors (the cluster did not answer: the daemon backs off
    and tries again), ``failed`` terminal ones (a refused inventory write, a
    Helm release that cannot install: reported once, not retried until
    something changes). ``blocked`` holds the refusals that stopped the whole
    sync before any write.
    """

    app: str
    revision: RevisionRecord | None = None
    """The revision synced (its ``rendered`` may be left empty when it is not new)."""
    results: list[SyncResult] = field(default_factory=list, repr=False)
    """Left out of repr: asyncio.run's SIGINT handling formats the finished task's
    result, and thousands of planned changes took a no-op sync 20 ms to print."""
    unreachable: dict[str, AppflowError] = field(default_factory=dict)
    """Clusters that failed with a retryable error."""
    failed: dict[str, AppflowError] = field(default_factory=dict)
    """Clusters that failed with an error no retry can fix."""
    blocked: list[AppflowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    """Clusters skipped because a dependency is not Ready there, and why."""
    held: dict[str, str] = field(default_factory=dict)
    """Clusters not synced because the app's rollout is paused before them, and why."""
    rollout_failed: str = ""
    rolled_back: list[SyncResult] = field(default_factory=list, repr=False)

    def cluster_failed(self, cluster: str, err: AppflowError) -> None:
        """Record ERR for CLUSTER as retryable or terminal."""
        (self.unreachable if err.retryable else self.failed)[cluster] = err

    @property
    def ok(self) -> bool:
        return (
            not self.blocked
            and not self.unreachable
            and not self.failed
            and not self.rollout_failed
            and all(r.ok for r in self.results)
        )

    @property
    def ready(self) -> bool:
        return (
            self.ok
            and not self.waiting
            and not self.held
            and all(r.state == "Ready" for r in self.results)
        )

    @property
    def retry(self) -> bool:
        """Whether trying again later may get further (a cluster did not answer)."""
        return bool(self.unreachable)

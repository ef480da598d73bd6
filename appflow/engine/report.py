"""What one sync (or rollback, or uninstall) of an app across its targets did."""

from __future__ import annotations

from dataclasses import dataclass, field

from appflow.engine.stages.types import SyncResult
from appflow.errors import AppflowError
from appflow.model.plan import Action
from appflow.model.records import RevisionRecord
from appflow.model.summary import (
    ClusterSummary,
    ObjectNote,
    RolledBack,
    SyncSummary,
    hook_note,
)


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
    """Clusters that failed with a retryable error (did not answer, or a change the
    store could not record)."""
    failed: dict[str, AppflowError] = field(default_factory=dict)
    """Clusters that failed with an error no retry can fix."""
    blocked: list[AppflowError] = field(default_factory=list)
    busy: dict[str, AppflowError] = field(default_factory=dict)
    """Clusters where another process was syncing the app (not touched; retry later)."""
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
            and not self.busy
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
        return bool(self.unreachable or self.busy)

    def summary(self) -> SyncSummary:
        """What the CLI shows of this report (the same wherever the sync ran)."""
        return SyncSummary(
            app=self.app,
            revision=self.revision.number if self.revision else None,
            warnings=tuple(self.warnings),
            blocked=tuple(str(e) for e in self.blocked),
            unreachable={c: str(e) for c, e in self.unreachable.items()},
            failed={c: str(e) for c, e in self.failed.items()},
            busy={c: str(e) for c, e in self.busy.items()},
            held=dict(self.held),
            waiting=dict(self.waiting),
            rollout_failed=self.rollout_failed,
            rolled_back=tuple(
                RolledBack(cluster=r.cluster, state=r.state) for r in self.rolled_back
            ),
            clusters=tuple(_cluster_summary(r) for r in self.results),
            ok=self.ok,
            ready=self.ready,
        )


def _cluster_summary(result: SyncResult) -> ClusterSummary:
    return ClusterSummary(
        cluster=result.cluster,
        state=result.state,
        counts={a.value: n for a, n in result.plan.counts().items()},
        health=f"{result.health.status.value}: {result.health.message}",
        errors=tuple(str(e) for e in result.errors),
        seconds=result.seconds,
        helm_revision=None if result.release is None else result.release.revision,
        failing=tuple(ObjectNote(object=f.object, message=f.message) for f in result.failing),
        kept=tuple(
            ObjectNote(object=str(c.ref), message=c.reason) for c in result.plan.of(Action.SKIP)
        ),
        kept_on_purpose=_kept_on_purpose(result),
        pruned=len(result.pruned),
        taken_from={
            owner: tuple(str(ref) for ref in refs) for owner, refs in result.taken_from.items()
        },
        hooks=tuple(hook_note(h) for h in result.hooks),
        partial=result.partial,
    )


def _kept_on_purpose(result: SyncResult) -> dict[str, int]:
    kept: dict[str, int] = {}
    for change in result.plan.of(Action.KEEP):
        kept[change.reason] = kept.get(change.reason, 0) + 1
    return kept

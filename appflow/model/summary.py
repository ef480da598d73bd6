"""`appflow sync`: what it asks, and what a sync did as it shows it; plain data, the same
wherever the sync ran.

``appflow sync`` prints a ``SyncSummary``, whether the sync ran in the CLI's own process or
in a running ``appflow serve`` that took it over (the summary then comes back over the
daemon's local socket as JSON, through ``appflow.model.codec``), so both print exactly the
same. The engine makes it from its ``AppSyncReport`` (``appflow.engine.report``).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appflow.model.hooks import HookRun


@dataclass(frozen=True, kw_only=True)
class SyncAsk:
    """What `appflow sync` was asked to do (its arguments and flags)."""

    names: tuple[str, ...] = ()
    all_apps: bool = False
    clusters: tuple[str, ...] = ()
    force_conflicts: bool = False
    take_ownership: bool = False
    """Move desired objects other apps own to the app (``--take-ownership``)."""
    wait: bool = False
    timeout: float = 300.0
    lock_timeout: float = 300.0
    """Seconds to wait for another writer of the same app on a cluster (0: fail at once)."""


@dataclass(frozen=True, kw_only=True)
class ObjectNote:
    """An object and what was said about it (why it is failing, or why it was kept)."""

    object: str
    message: str


@dataclass(frozen=True, kw_only=True)
class HookNote:
    """A hook the sync ran on a cluster, and how it went (``appflow.model.hooks.HookRun``)."""

    hook: str
    name: str
    outcome: str
    message: str = ""
    deleted: bool = False
    text: str = ""
    """The line the CLI prints for it."""


def hook_note(run: HookRun) -> HookNote:
    return HookNote(
        hook=run.hook,
        name=run.name,
        outcome=run.outcome.value,
        message=run.message,
        deleted=run.deleted,
        text=str(run),
    )


@dataclass(frozen=True, kw_only=True)
class ClusterSummary:
    """What the sync did on one cluster."""

    cluster: str
    state: str
    counts: dict[str, int] = field(default_factory=dict)
    """Objects per plan action (created, configured, unchanged, pruned, ...), in plan order."""
    health: str = ""
    """'<status>: <message>'."""
    errors: tuple[str, ...] = ()
    seconds: float = 0.0
    helm_revision: int | None = None
    """Helm release mode: the release revision the sync made."""
    failing: tuple[ObjectNote, ...] = ()
    kept: tuple[ObjectNote, ...] = ()
    """Objects prune left in place, and why."""
    kept_on_purpose: dict[str, int] = field(default_factory=dict)
    """Why -> how many objects out of the desired state stay by choice (pruning off,
    keepResources): one line per reason, not per object."""
    pruned: int = 0
    """Objects actually deleted (not those judged no longer the app's at deletion)."""
    taken_from: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Previous owner -> the objects this sync took from it."""
    hooks: tuple[HookNote, ...] = ()
    """The hooks that ran, in the order they ran."""
    partial: str = ""
    """When the sync failed after it wrote to the cluster: what it wrote, said plainly."""


@dataclass(frozen=True, kw_only=True)
class RolledBack:
    """A cluster an auto-rollback returned, and its state afterwards."""

    cluster: str
    state: str


@dataclass(frozen=True, kw_only=True)
class SyncSummary:
    """One app's sync across its targets."""

    app: str
    revision: int | None = None
    warnings: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()
    """Refusals that stopped the sync before any change."""
    unreachable: dict[str, str] = field(default_factory=dict)
    """Clusters that failed with an error a retry may fix."""
    failed: dict[str, str] = field(default_factory=dict)
    """Clusters that failed with an error no retry fixes."""
    busy: dict[str, str] = field(default_factory=dict)
    """Clusters another writer of the app held (not touched; try again later)."""
    held: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)
    rollout_failed: str = ""
    rolled_back: tuple[RolledBack, ...] = ()
    clusters: tuple[ClusterSummary, ...] = ()
    ok: bool = True
    ready: bool = True

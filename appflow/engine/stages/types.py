"""What the sync stages take and give: options, desired state, a prepared sync, its result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from appflow.errors import AppflowError, Where
from appflow.model.health import Health
from appflow.model.hooks import Hook, HookRun, Operation
from appflow.model.inventory import Inventory
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.ownership import OwnershipCheck
from appflow.model.plan import Plan
from appflow.model.records import (
    DeploymentState,
    FailingObject,
    HelmReleaseRef,
    HookRecord,
    ResourceCounts,
)
from appflow.model.redact import Redactor

Progress = Callable[[str], None]
"""Receives one line of what is happening now (the CLI shows it in a spinner)."""


def quiet(_: str) -> None:
    """A Progress that shows nothing."""


@dataclass(frozen=True, kw_only=True)
class SyncOptions:
    """How one sync behaves; the app's syncPolicy fills the defaults."""

    prune: bool = True
    force_conflicts: bool = False
    take_ownership: bool = False
    """Take desired objects other apps own (``--take-ownership``); see check_ownership."""
    keep: str = ""
    """Why prune candidates stay this time (an app deleted with keepResources): the plan
    says kept, with this reason. Pruning turned off keeps them too."""
    with_diffs: bool = False
    wait: bool = False
    wait_timeout: float = 300.0
    """Seconds to wait for health, and for each hook to finish."""
    crd_timeout: float = 60.0
    rollback: bool = False
    """The sync is a rollback: Helm's pre-rollback and post-rollback hooks run, not the
    upgrade ones."""
    lock_timeout: float = 300.0
    """How long to wait for another writer of the same app and cluster (the engine
    holds the lock around the stages; they never see it)."""


@dataclass(frozen=True, kw_only=True)
class DesiredState:
    """The rendered objects of one AppFlow for one Cluster."""

    app: str
    cluster: str
    objects: tuple[Manifest, ...]
    revision: str
    """Digest of the rendered objects."""
    redactor: Redactor | None = None
    """What hides Secret data in diffs and, when it knows secret values (decrypted, or marked
    sensitive), in everything recorded of these objects (see engine.secrets)."""

    @property
    def sensitive(self) -> bool:
        return self.redactor is not None and self.redactor.sensitive

    @property
    def recorded(self) -> tuple[Manifest, ...]:
        """The objects as the store may keep them."""
        if self.redactor is None or not self.redactor.sensitive:
            return self.objects
        return tuple(self.redactor.redact(m) for m in self.objects)


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """A planned sync: what will be applied, kept and pruned, and what is known of live state."""

    desired: DesiredState
    objects: tuple[Manifest, ...]
    """Desired objects with appflow's ownership marks."""
    digests: dict[ObjectRef, str]
    plan: Plan
    live: dict[ObjectRef, Manifest | None]
    old_inventory: Inventory
    namespaced: dict[tuple[str, str], bool]
    deferred: tuple[ObjectRef, ...]
    """Custom resources whose CRD this sync creates: dry-run once the CRD is Established."""
    takeover: frozenset[ObjectRef] = frozenset()
    """Objects whose fields appflow takes back from hand edits (applied with force)."""
    inventory_on_cluster: bool = False
    """The cluster's inventory ConfigMap holds old_inventory exactly, in the current format
    (old_inventory is the union of it and the store's mirror)."""
    fingerprints: dict[str, str]
    hooks: tuple[Hook, ...] = ()
    """The desired state's hooks: run at their moments, never applied as objects."""
    hook_operation: Operation | None = None
    """What this sync is for its hooks (install, upgrade, rollback); None: they already
    ran for this revision on this cluster, and none runs."""
    hook_record: HookRecord | None = None
    """What the Deployment remembered of its hooks before this sync."""
    ownership: OwnershipCheck = field(default_factory=OwnershipCheck)
    """Desired objects this sync takes from other apps (it has no conflicts: those block)."""

    @cached_property
    def refs(self) -> tuple[ObjectRef, ...]:
        """The identity of each of ``objects``, in their order (computed once, as
        new_inventory: a steady plan is reused)."""
        return tuple(ObjectRef.of(m) for m in self.objects)

    @cached_property
    def recorded_fingerprints(self) -> dict[str, str]:
        """The fingerprints this sync records before it applies anything: those of
        ``fingerprints`` that are of desired objects, by encoded ref (a copy, each time)."""
        return {
            key: self.fingerprints[key]
            for key in (ref.encode() for ref in self.digests)
            if key in self.fingerprints
        }

    @cached_property
    def new_inventory(self) -> Inventory:
        """What the app owns once every desired object is applied (computed once: apply,
        its write-ahead and the final inventory all ask, and a steady plan is reused)."""
        return Inventory.from_manifests(self.desired.app, self.objects)


@dataclass(frozen=True, kw_only=True)
class SyncResult:
    """What a sync did on one cluster and where the Deployment stands."""

    app: str
    cluster: str
    revision: str
    plan: Plan
    state: DeploymentState
    health: Health
    inventory: Inventory
    fingerprints: dict[str, str]
    errors: tuple[AppflowError, ...] = ()
    failing: tuple[FailingObject, ...] = ()
    resource_counts: ResourceCounts = field(default_factory=ResourceCounts)
    release: HelmReleaseRef | None = None
    """The Helm release, for a release-mode app."""
    pruned: tuple[ObjectRef, ...] = ()
    taken_from: dict[str, tuple[ObjectRef, ...]] = field(default_factory=dict)
    """Previous owner -> the objects this sync took from it (and removed from its
    inventory on the cluster): the recorder updates that app's Deployment too."""
    applied: int = 0
    served_kinds_changed: bool = False
    """A CustomResourceDefinition was applied: what the cluster serves has changed."""
    hooks: tuple[HookRun, ...] = ()
    """The hooks that ran, in the order they ran."""
    hook_record: HookRecord | None = None
    """What the Deployment remembers of its hooks after this sync."""
    partial: str = ""
    """When the sync failed after it wrote to the cluster: what it wrote, said plainly."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors


class SyncBlocked(AppflowError):
    """The planned sync was refused before any write: every error is listed."""

    def __init__(self, errors: Sequence[AppflowError], *, app: str, cluster: str) -> None:
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(
            f"{len(errors)} object(s) were rejected; nothing was changed on the cluster:\n{lines}",
            where=Where(app=app, cluster=cluster),
        )
        self.errors = tuple(errors)

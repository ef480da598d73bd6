"""Prune: delete what left the desired state, from the inventory only, and only what appflow owns.

Candidates come from the plan (``appflow.model.plan``): objects of the old inventory the
new desired state lacks, that carry appflow's ownership marks and no
``appflow.dev/prune: "false"``. Objects not deleted (a failed delete, prune turned off, an
apply that failed first) stay in the inventory, so a later sync tries again instead of
forgetting them on the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appflow.engine.stages.failures import Blame
from appflow.engine.stages.types import Prepared, Progress, SyncOptions, quiet
from appflow.errors import AppflowError, ClusterError
from appflow.kube.client import KubeCluster
from appflow.model.inventory import InventoryEntry
from appflow.model.objects import ObjectRef
from appflow.model.plan import Action


@dataclass(kw_only=True)
class Pruned:
    """What the prune stage did on one cluster."""

    deleted: list[ObjectRef] = field(default_factory=list)
    kept: list[InventoryEntry] = field(default_factory=list)
    """Prune candidates still owned: their delete failed, prune is off, or apply failed first."""
    errors: list[AppflowError] = field(default_factory=list)


async def prune(
    kube: KubeCluster,
    prepared: Prepared,
    *,
    options: SyncOptions,
    apply_failed: bool,
    progress: Progress = quiet,
) -> Pruned:
    """Delete PREPARED's prune candidates (unless prune is off, or APPLY_FAILED)."""
    app = prepared.desired.app
    by_ref = {e.ref: e for e in prepared.old_inventory.entries}
    candidates = [c.ref for c in prepared.plan.of(Action.PRUNE)]
    done = Pruned()
    if not options.prune or apply_failed:
        done.kept = [by_ref[r] for r in candidates]
        return done
    if candidates:
        progress(f"{kube.name}: pruning {len(candidates)} objects")
    blame = Blame(kube)
    for ref in candidates:
        entry = by_ref[ref]
        try:
            await kube.delete(entry.api_version, ref.kind, ref.name, ref.namespace)
            done.deleted.append(ref)
        except AppflowError as err:
            failure = await blame.of(err, None) if isinstance(err, ClusterError) else err
            if isinstance(failure, ClusterError):
                raise failure.located(app=app, cluster=kube.name, object=str(ref)) from None
            done.errors.append(failure.located(app=app, cluster=kube.name, object=str(ref)))
            done.kept.append(entry)
    return done

"""Prune: delete what left the desired state, from the inventory only, and only what appflow owns.

Candidates come from the plan (``appflow.model.plan``): objects of the old inventory (the
union of the cluster's copy and the store's mirror, see ``prepare``) that the new desired
state lacks, that carry appflow's ownership marks and no ``appflow.dev/prune: "false"``. The plan was made from what prepare read; between then
and the delete another app may have taken the object (or a person relabelled it), so
each candidate is read again and judged by ``may_prune`` as it is at that moment, and
deleted with the uid and resourceVersion just read as preconditions: the API server
refuses the delete if anything changed in between. Objects not deleted (a failed delete,
prune turned off or kept on purpose, an apply that failed first) stay in the inventory,
so a later sync tries again instead of forgetting them on the cluster; objects that are
no longer the app's leave it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appflow.engine.stages.failures import Blame
from appflow.engine.stages.types import Prepared, Progress, SyncOptions, quiet
from appflow.errors import AppflowError, ClusterError, ObjectChangedError
from appflow.kube.client import KubeCluster
from appflow.model.inventory import InventoryEntry
from appflow.model.objects import ObjectRef
from appflow.model.plan import Action, Change, may_prune

_ATTEMPTS = 3
"""Reads and deletes per candidate: a controller's status write between the read and the
delete changes the resourceVersion, and the next read sees that it is still the app's."""


@dataclass(kw_only=True)
class Pruned:
    """What the prune stage did on one cluster."""

    deleted: list[ObjectRef] = field(default_factory=list)
    kept: list[InventoryEntry] = field(default_factory=list)
    """Candidates still owned: their delete failed, prune is off or kept them, or apply failed."""
    skipped: list[Change] = field(default_factory=list)
    """Candidates that were no longer the app's when they were about to be deleted."""
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
    done = Pruned(kept=[by_ref[c.ref] for c in prepared.plan.of(Action.KEEP)])
    if not options.prune or apply_failed:
        done.kept += [by_ref[r] for r in candidates]
        return done
    if candidates:
        progress(f"{kube.name}: pruning {len(candidates)} objects")
    blame = Blame(kube)
    for ref in candidates:
        entry = by_ref[ref]
        try:
            why_not = await _delete_if_owned(kube, app, entry)
        except AppflowError as err:
            failure = await blame.of(err, None) if isinstance(err, ClusterError) else err
            if isinstance(failure, ClusterError):
                raise failure.located(app=app, cluster=kube.name, object=str(ref)) from None
            done.errors.append(failure.located(app=app, cluster=kube.name, object=str(ref)))
            done.kept.append(entry)
            continue
        if why_not is None:
            done.deleted.append(ref)
        else:
            done.skipped.append(Change(ref, Action.SKIP, why_not))
    return done


async def _delete_if_owned(kube: KubeCluster, app: str, entry: InventoryEntry) -> str | None:
    """Delete ENTRY's object if it is still APP's to delete; None, or why it was not."""
    ref = entry.ref
    for _ in range(_ATTEMPTS):
        current = await kube.get(entry.api_version, ref.kind, ref.name, ref.namespace)
        allowed, why = may_prune(current, app)
        if not allowed or current is None:
            return why
        meta = current.get("metadata") or {}
        try:
            await kube.delete(
                entry.api_version,
                ref.kind,
                ref.name,
                ref.namespace,
                uid=str(meta.get("uid") or "") or None,
                resource_version=str(meta.get("resourceVersion") or "") or None,
            )
        except ObjectChangedError:
            continue
        return None
    raise ObjectChangedError(
        f"kept changing while appflow tried to delete it ({_ATTEMPTS} attempts)",
        hint="the next sync tries again",
    )

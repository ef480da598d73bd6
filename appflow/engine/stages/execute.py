"""Execute: carry out a prepared sync on one cluster: apply, prune, final inventory, health.

The write half of a sync (``prepare`` is the read half). The inventory is written ahead
of the apply (see ``apply``) and, when what the cluster owns changed, once more at the
end: with the objects that are desired, plus prune candidates still owned. When
anything failed, the final inventory keeps everything the write-ahead one named.

The app's hooks (``hooks``) run inside the apply (PreSync, Sync), after health (PostSync:
with PostSync hooks a sync waits until the app is healthy) or after a failure (SyncFail).
"""

from __future__ import annotations

import time
from dataclasses import replace

from appflow.engine.stages.apply import Applied, apply
from appflow.engine.stages.health import assess_health, live_after_apply
from appflow.engine.stages.hooks import SyncHooks
from appflow.engine.stages.inventory import hand_over, write_inventory
from appflow.engine.stages.prune import Pruned, prune
from appflow.engine.stages.types import Prepared, Progress, SyncOptions, SyncResult, quiet
from appflow.errors import AppflowError
from appflow.kube.client import KubeCluster
from appflow.model.inventory import Inventory, with_failed_deletes
from appflow.model.objects import ObjectRef
from appflow.model.plan import Action, Plan
from appflow.model.records import FailingObject
from appflow.model.status import deployment_state


def final_inventory(prepared: Prepared, pruned: Pruned, *, failed: bool) -> Inventory:
    """What the app owns on the cluster after this sync (pure)."""
    app = prepared.desired.app
    new = prepared.new_inventory
    if failed:
        # Keep tracking everything the write-ahead inventory named.
        return Inventory(app, prepared.old_inventory.entries + new.entries)
    return with_failed_deletes(new, pruned.kept)


async def execute(
    kube: KubeCluster, prepared: Prepared, *, options: SyncOptions, progress: Progress = quiet
) -> SyncResult:
    """Carry out PREPARED on KUBE and assess the health of what it applied."""
    started = time.monotonic()
    app = prepared.desired.app
    hooks = SyncHooks(kube, prepared, options=options, progress=progress)
    applied = await apply(kube, prepared, options=options, progress=progress, hooks=hooks)
    taken = await hand_over(kube, _taken(prepared, applied))
    pruned = await prune(
        kube, prepared, options=options, apply_failed=bool(applied.errors), progress=progress
    )
    errors = [*applied.errors, *pruned.errors]
    inventory = final_inventory(prepared, pruned, failed=bool(errors))
    if inventory != applied.stored_inventory:
        await write_inventory(kube, inventory)
    health, failing, counts = await assess_health(
        kube,
        app,
        prepared.objects,
        wait=(options.wait or hooks.awaits_health) and not errors,
        timeout=options.wait_timeout,
        seen=None if errors else await live_after_apply(kube, prepared, applied.objects),
        refs=prepared.refs,
    )
    errors += await hooks.finish(health, failing, failed=bool(errors))
    plan = prepared.plan.revised(pruned.skipped)
    return SyncResult(
        app=app,
        cluster=kube.name,
        revision=prepared.desired.revision,
        plan=plan,
        state=deployment_state(
            health.status,
            apply_failed=bool(errors),
            orphaned=not prepared.objects and bool(inventory.entries),
        ),
        health=health,
        inventory=inventory,
        fingerprints=applied.fingerprints,
        errors=tuple(errors),
        failing=_failing(errors) + failing,
        resource_counts=replace(
            counts,
            orphaned=_orphaned(plan, pruned, errors),
            # Objects of stages that never ran are still waiting to be applied.
            wait_applied=_waiting(applied) if errors else 0,
            err_applied=len(errors),
        ),
        pruned=tuple(pruned.deleted),
        taken_from=taken,
        applied=applied.count,
        served_kinds_changed=applied.crds_applied,
        hooks=tuple(hooks.runs),
        hook_record=hooks.record(succeeded=not errors),
        partial=_partial(applied, pruned) if errors else "",
        seconds=time.monotonic() - started,
    )


def _partial(applied: Applied, pruned: Pruned) -> str:
    """What a failed sync wrote before it stopped, when it wrote anything."""
    if not applied.count and not pruned.deleted:
        return ""
    return (
        f"the cluster already changed: {applied.count} of {applied.attempted} objects were "
        f"applied and {len(pruned.deleted)} pruned before this; the next sync finishes it"
    )


def _failing(errors: list[AppflowError]) -> tuple[FailingObject, ...]:
    return tuple(FailingObject(object=str(e.where.object or ""), message=e.message) for e in errors)


def _waiting(applied: Applied) -> int:
    return max(0, applied.attempted - applied.count - len(applied.errors))


def _orphaned(plan: Plan, pruned: Pruned, errors: list[AppflowError]) -> int:
    """Objects of the old inventory the app no longer declares that prune kept on purpose:
    marked to be kept or not appflow's (SKIP), or all of them when prune is off or the
    app is deleted with keepResources (KEEP). Not counted: candidates kept because a
    delete or an apply failed (those are errors)."""
    return len(plan.of(Action.SKIP)) + (0 if errors else len(pruned.kept))


def _taken(prepared: Prepared, applied: Applied) -> dict[str, tuple[ObjectRef, ...]]:
    """Objects this sync took from other apps and has now applied (so labelled its own)."""
    return {
        owner: kept
        for owner, refs in prepared.ownership.taken_from().items()
        if (kept := tuple(r for r in refs if r in applied.objects))
    }

"""Apply: write the inventory ahead, then server-side apply the changed objects in stages.

Stages follow ``appflow.model.order``: CRDs (then wait until Established), Namespaces,
cluster-scoped objects, namespaced objects by sync wave. A stage runs only when every
earlier one applied cleanly. Custom resources of CRDs this sync creates could not be
dry-run in prepare; they are dry-run here, right before their stage, and a refusal
stops the apply before they are written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from appflow.engine.stages.failures import Blame
from appflow.engine.stages.hooks import SyncHooks
from appflow.engine.stages.inventory import write_inventory
from appflow.engine.stages.live import secret_content
from appflow.engine.stages.types import Prepared, Progress, SyncOptions, quiet
from appflow.errors import AppflowError, ApplyError, ClusterError, ImmutableFieldError, Where
from appflow.kube.client import KubeCluster
from appflow.model.hooks import HookStep
from appflow.model.inventory import Inventory
from appflow.model.objects import ANNOTATION_REPLACE, Manifest, ObjectRef, split_api_version
from appflow.model.order import Stage, plan_stages
from appflow.model.ownership import fingerprint
from appflow.model.plan import Action

_CRD_API = "apiextensions.k8s.io/v1"


@dataclass(kw_only=True)
class Applied:
    """What the apply stage did on one cluster."""

    objects: dict[ObjectRef, Manifest] = field(default_factory=dict)
    """The API server's answer to each apply: the object as stored."""
    fingerprints: dict[str, str] = field(default_factory=dict)
    """Per encoded ref: the fingerprint of every desired object appflow has applied."""
    errors: list[AppflowError] = field(default_factory=list)
    attempted: int = 0
    """Objects the plan asked to apply."""
    stored_inventory: Inventory | None = None
    """What the cluster's inventory holds now, when known."""
    crds_applied: bool = False

    @property
    def count(self) -> int:
        return len(self.objects)


def _to_apply(prepared: Prepared) -> set[ObjectRef]:
    plan = prepared.plan
    refs = {c.ref for c in plan.of(Action.CREATE) + plan.of(Action.CONFIGURE)}
    return refs | set(prepared.deferred)


async def apply(
    kube: KubeCluster,
    prepared: Prepared,
    *,
    options: SyncOptions,
    progress: Progress = quiet,
    hooks: SyncHooks | None = None,
) -> Applied:
    """Apply what PREPARED planned to create or configure; stop at the first failing stage.

    HOOKS, when given, puts the sync's PreSync and Sync hooks between the stages and
    runs them there; a hook that fails stops the apply like a stage that fails.
    """
    to_apply = _to_apply(prepared)
    done = Applied(
        fingerprints=dict(prepared.recorded_fingerprints),
        attempted=len(to_apply),
        stored_inventory=prepared.old_inventory if prepared.inventory_on_cluster else None,
    )
    ahead = inventory_ahead(prepared, options=options)
    if ahead is not None and ahead != done.stored_inventory:
        # Write-ahead: every object about to be created is tracked before it exists.
        await write_inventory(kube, ahead)
        done.stored_inventory = ahead
    manifests = [
        m for m, ref in zip(prepared.objects, prepared.refs, strict=True) if ref in to_apply
    ]
    stages = plan_stages(manifests, is_namespaced=_scope_of(prepared))
    for step in hooks.schedule(stages) if hooks else stages:
        if isinstance(step, HookStep):
            assert hooks is not None
            done.errors += await hooks.run(step)
        else:
            await _apply_stage(kube, prepared, step, done, options=options, progress=progress)
        if done.errors:
            break
    return done


def inventory_ahead(prepared: Prepared, *, options: SyncOptions) -> Inventory | None:
    """What APP's inventories must name before this sync writes anything (the old
    inventory and everything desired), or None when the sync will write nothing.

    Pure, so the caller can write the store's mirror ahead too, before the first write
    to the cluster: both copies then know every object the sync may create.
    """
    app = prepared.desired.app
    new_inventory = prepared.new_inventory
    to_prune = prepared.plan.of(Action.PRUNE) if options.prune else []
    changes = _to_apply(prepared) or to_prune
    if (
        not changes
        and prepared.inventory_on_cluster
        and len(prepared.old_inventory) == len(new_inventory)
    ):
        return None
    return Inventory(app, prepared.old_inventory.entries + new_inventory.entries)


def _scope_of(prepared: Prepared) -> Callable[[ObjectRef], bool]:
    def is_namespaced(ref: ObjectRef) -> bool:
        for (api_version, kind), value in prepared.namespaced.items():
            if kind == ref.kind and split_api_version(api_version)[0] == ref.group:
                return value
        return bool(ref.namespace)

    return is_namespaced


async def _apply_stage(
    kube: KubeCluster,
    prepared: Prepared,
    stage: Stage,
    done: Applied,
    *,
    options: SyncOptions,
    progress: Progress,
) -> None:
    app = prepared.desired.app
    deferred = [m for m in stage.manifests if ObjectRef.of(m) in set(prepared.deferred)]
    if deferred:
        # Custom resources of CRDs created above: validate before writing them.
        await _dry_run(kube, app, deferred, done, force=options.force_conflicts)
        if done.errors:
            return
    progress(f"{kube.name}: applying {stage.name} ({len(stage.manifests)} objects)")
    results = await asyncio.gather(
        *(
            _apply_one(
                kube, m, force=options.force_conflicts or ObjectRef.of(m) in prepared.takeover
            )
            for m in stage.manifests
        ),
        return_exceptions=True,
    )
    blame = Blame(kube)
    for m, result in zip(stage.manifests, results, strict=True):
        ref = ObjectRef.of(m)
        if isinstance(result, ClusterError):
            result = await blame.of(result, m)
            if isinstance(result, ClusterError):
                # The cluster went away mid-apply: the sync is interrupted, not refused.
                raise result.located(app=app, cluster=kube.name, object=str(ref))
        if isinstance(result, AppflowError):
            done.errors.append(result.located(app=app, cluster=kube.name, object=str(ref)))
        elif isinstance(result, BaseException):
            raise result
        else:
            done.objects[ref] = result
            done.fingerprints[ref.encode()] = fingerprint(
                prepared.digests[ref], result, content=secret_content(result)
            )
    if stage.wait_established and not done.errors:
        done.crds_applied = True
        names = [str(m["metadata"]["name"]) for m in stage.manifests]
        try:
            established = await _wait_established(kube, names, timeout=options.crd_timeout)
        except AppflowError as err:
            done.errors.append(err.located(app=app))
            return
        # Newer than the apply's answer: health sees them Established.
        for m in stage.manifests:
            done.objects[ObjectRef.of(m)] = established[str(m["metadata"]["name"])]


async def _dry_run(
    kube: KubeCluster, app: str, manifests: list[Manifest], done: Applied, *, force: bool
) -> None:
    results = await asyncio.gather(
        *(kube.apply(m, dry_run=True, force=force) for m in manifests), return_exceptions=True
    )
    for m, result in zip(manifests, results, strict=True):
        if isinstance(result, AppflowError):
            done.errors.append(
                result.located(app=app, cluster=kube.name, object=str(ObjectRef.of(m)))
            )
        elif isinstance(result, BaseException):
            raise result


async def _wait_established(
    kube: KubeCluster, names: Sequence[str], *, timeout: float
) -> dict[str, Manifest]:
    """Wait until the CRDs NAMES are Established; return them as last read."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    established: dict[str, Manifest] = {}
    while pending:
        for name in sorted(pending):
            crd = await kube.get(_CRD_API, "CustomResourceDefinition", name)
            conditions = ((crd or {}).get("status") or {}).get("conditions") or []
            if crd is not None and any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conditions
            ):
                pending.discard(name)
                established[name] = crd
        if not pending:
            break
        if time.monotonic() > deadline:
            raise ApplyError(
                f"CustomResourceDefinition(s) not Established after {timeout:.0f}s: {', '.join(sorted(pending))}",
                where=Where(cluster=kube.name),
            )
        await asyncio.sleep(0.2)
    await kube.refresh_discovery()
    return established


def replace_opted_in(m: Manifest) -> bool:
    """Whether M opts in to delete-and-recreate when an immutable field changes."""
    annotations = (m.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(ANNOTATION_REPLACE, "")).lower() == "true"


async def _apply_one(kube: KubeCluster, m: Manifest, *, force: bool) -> Manifest:
    try:
        return await kube.apply(m, force=force)
    except ImmutableFieldError:
        if not replace_opted_in(m):
            raise
        # Opted in: delete and re-create the object with the new content.
        ref = ObjectRef.of(m)
        await kube.delete(
            str(m.get("apiVersion")), ref.kind, ref.name, ref.namespace, propagation="Foreground"
        )
        deadline = time.monotonic() + 60
        while (
            await kube.get(str(m.get("apiVersion")), ref.kind, ref.name, ref.namespace) is not None
        ):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        return await kube.apply(m, force=force)

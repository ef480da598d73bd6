"""Hooks: run an app's hook objects on one cluster, at their moments, with their delete policies.

``appflow.model.hooks`` decides which hooks run in which phase and order; this stage
carries it out, one hook after another, as Helm and Argo CD do:

1. delete the object a named hook left last time, when its policy is
   ``before-hook-creation`` (only if it carries this app's ownership marks: an
   object of that name that belongs to someone else stops the hook, untouched);
2. create it with this app's marks (server-side apply for a named hook; a plain
   create for a ``generateName`` one, which gets a new name every run);
3. wait until it finished (a Job completed, a Pod succeeded; any other kind is done
   once it exists), for at most the sync's timeout;
4. stop the phase at the first hook that failed; then delete what the policies say
   (``hook-failed`` for the failed one, ``hook-succeeded`` for those before it).

Hook objects carry the app's label, but they are not in its inventory and not in its
health: a completed Job is the record of a run, not desired state. Three callers:

- a sync (``SyncHooks``): PreSync and Sync hooks within the apply stage (see
  ``appflow.model.hooks.apply_schedule``), PostSync once the app is healthy, SyncFail
  when anything failed; what ran is remembered in the Deployment's hook record
  (``DeploymentRecord.hooks``), so that a revision's hooks run once per cluster;
- an app delete (``delete_with_hooks``): PreDelete, the prune of everything, the removal
  of the hook objects the syncs left, PostDelete;
- ``appflow app test`` (``run_tests``): the Test hooks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace

from appflow.engine.stages.types import Prepared, Progress, SyncOptions, SyncResult, quiet
from appflow.errors import AppflowError, ClusterError, HookError, MissingKindError, Where
from appflow.kube.client import KubeCluster
from appflow.model.health import Health, HealthStatus
from appflow.model.hooks import (
    Hook,
    HookRun,
    HookStep,
    Operation,
    Outcome,
    Phase,
    apply_schedule,
    deleted_before_creation,
    deletions_after,
    hooks_in,
    left_behind_on_delete,
    outcome,
    record_after,
    split_hooks,
    sync_operation,
)
from appflow.model.inventory import Inventory
from appflow.model.objects import LABEL_APP, Manifest, ObjectRef
from appflow.model.order import Stage
from appflow.model.ownership import stamp
from appflow.model.plan import owned_by
from appflow.model.records import FailingObject, HookRecord

_POLL = 0.2


@dataclass(kw_only=True)
class PhaseRun:
    """What one phase's hooks did on one cluster."""

    runs: list[HookRun] = field(default_factory=list)
    errors: list[AppflowError] = field(default_factory=list)


async def run_phase(
    kube: KubeCluster,
    app: str,
    hooks: Sequence[Hook],
    phase: Phase,
    operation: Operation,
    *,
    timeout: float,
    progress: Progress = quiet,
) -> PhaseRun:
    """Run those of HOOKS that belong to PHASE of OPERATION, in their order; stop at the
    first that fails."""
    done = PhaseRun()
    succeeded: list[tuple[Hook, int]] = []
    failed: tuple[Hook, int] | None = None
    for hook in hooks_in(hooks, phase, operation):
        label = hook.describe(phase, operation)
        progress(f"{kube.name}: running the {label}")
        try:
            live = await _create(kube, app, hook, label, timeout=timeout)
        except ClusterError:
            raise
        except AppflowError as err:
            done.errors.append(_failed(kube, app, hook, f"{label} could not be created: {err}"))
            break
        name = str(live["metadata"]["name"])
        result, message = await _finished(kube, hook, live, timeout=timeout)
        done.runs.append(HookRun(hook=label, name=name, outcome=result, message=message))
        if result is not Outcome.SUCCEEDED:
            created = "" if name == hook.ref.name else f" (created as {name})"
            why = message if result is Outcome.FAILED else f"not finished after {timeout:.0f}s"
            done.errors.append(_failed(kube, app, hook, f"{label}{created} failed: {why}"))
            failed = (hook, len(done.runs) - 1)
            break
        succeeded.append((hook, len(done.runs) - 1))
    by_hook = {id(h): i for h, i in [*succeeded, *([failed] if failed else [])]}
    for hook in deletions_after([h for h, _ in succeeded], failed[0] if failed else None):
        index = by_hook[id(hook)]
        run = done.runs[index]
        try:
            await kube.delete(hook.api_version, hook.ref.kind, run.name, hook.ref.namespace)
        except ClusterError:
            raise
        except AppflowError as err:
            done.errors.append(_failed(kube, app, hook, f"{run.hook}: its delete policy: {err}"))
            continue
        done.runs[index] = replace(run, deleted=True)
    return done


def _failed(kube: KubeCluster, app: str, hook: Hook, message: str) -> HookError:
    return HookError(message, where=Where(app=app, cluster=kube.name, object=str(hook.ref)))


async def _create(
    kube: KubeCluster, app: str, hook: Hook, label: str, *, timeout: float
) -> Manifest:
    """Create HOOK's object with APP's ownership marks (after its predecessor is gone)."""
    manifest = stamp(hook.manifest, app=app)
    if hook.generated_name:
        created = await kube.create(manifest)
        if created is None:  # the server chose a name that is taken: a rare collision
            raise HookError(f"the name the API server generated for {hook.ref} is taken")
        return created
    ref = hook.ref
    existing = _own_or_absent(await _get(kube, hook.api_version, ref), app, ref)
    if existing is not None and deleted_before_creation(hook):
        await _delete_and_wait(kube, hook, existing, timeout=timeout)
    return await kube.apply(manifest)


def _own_or_absent(existing: Manifest | None, app: str, ref: ObjectRef) -> Manifest | None:
    """EXISTING, the object in the way of a named hook, when it is APP's (HookError if not)."""
    if existing is not None:
        owned, why = owned_by(existing, app)
        if not owned:
            raise HookError(
                f"{ref} exists and is not a hook of app {app} ({why})",
                hint="appflow never deletes or changes an object it does not own: rename the "
                "hook, or remove the other object",
            )
    return existing


async def _get(kube: KubeCluster, api_version: str, ref: ObjectRef) -> Manifest | None:
    try:
        return await kube.get(api_version, ref.kind, ref.name, ref.namespace)
    except MissingKindError:
        return None


async def _delete_and_wait(
    kube: KubeCluster, hook: Hook, existing: Manifest, *, timeout: float
) -> None:
    """before-hook-creation: delete the last run's object and wait until it is gone."""
    ref = hook.ref
    uid = (existing.get("metadata") or {}).get("uid")
    await kube.delete(hook.api_version, ref.kind, ref.name, ref.namespace)
    deadline = time.monotonic() + timeout
    while True:
        current = await _get(kube, hook.api_version, ref)
        if current is None or (current.get("metadata") or {}).get("uid") != uid:
            return
        if time.monotonic() > deadline:
            raise HookError(
                f"the {ref} of an earlier run was not gone {timeout:.0f}s after its delete",
                hint="look for finalizers on it",
            )
        await asyncio.sleep(_POLL)


async def _finished(
    kube: KubeCluster, hook: Hook, live: Manifest, *, timeout: float
) -> tuple[Outcome, str]:
    """Wait until the created object finished (see appflow.model.hooks.outcome)."""
    deadline = time.monotonic() + timeout
    ref = hook.ref
    name = str(live["metadata"]["name"])
    current: Manifest | None = live
    while True:
        result, message = outcome(hook, current)
        if result is not Outcome.RUNNING or time.monotonic() > deadline:
            return result, message
        await asyncio.sleep(_POLL)
        current = await kube.get(hook.api_version, ref.kind, name, ref.namespace)


# -- a sync --------------------------------------------------------------------------------


def hook_operation(
    hooks: Sequence[Hook],
    *,
    record: HookRecord | None,
    inventory: Inventory,
    revision: str,
    rollback: bool,
) -> Operation | None:
    """What a sync of REVISION is for HOOKS, from what the Deployment remembers of them
    (RECORD; None: no hooks, or they already ran for this revision here)."""
    if not hooks:
        return None
    return sync_operation(
        record,
        owns_objects=bool(inventory.entries),
        revision=revision,
        rollback=rollback,
    )


async def check_hooks(
    kube: KubeCluster,
    app: str,
    hooks: Sequence[Hook],
    *,
    stand_in: Set[str],
    crds: Mapping[tuple[str, str], bool],
) -> list[AppflowError]:
    """What the API server would refuse of HOOKS, the hooks a sync will run (reads only).

    Part of prepare: a hook that cannot be created blocks the sync before any write, like
    any object. Each is dry-run as a create under a name the server generates, so that the
    object an earlier run left under its name (a completed Job, whose spec cannot change)
    does not get in the way; that object must be the app's own. A hook in a namespace this
    sync creates (STAND_IN) is checked in ``default``; one of a kind whose CRD this sync
    creates (CRDS) is checked only when it runs.
    """

    async def one(hook: Hook) -> AppflowError | None:
        ref = hook.ref
        try:
            if not hook.generated_name:
                _own_or_absent(await _get(kube, hook.api_version, ref), app, ref)
            await kube.create(_trial(stamp(hook.manifest, app=app), stand_in), dry_run=True)
        except ClusterError:
            raise
        except MissingKindError as err:
            if (ref.group, ref.kind) in crds:
                return None
            return err.located(app=app, cluster=kube.name, object=str(ref))
        except AppflowError as err:
            return err.located(app=app, cluster=kube.name, object=str(ref))
        return None

    found = await asyncio.gather(*(one(h) for h in hooks))
    return [e for e in found if e is not None]


def _trial(manifest: Manifest, stand_in: Set[str]) -> Manifest:
    """MANIFEST as a dry-run create that no existing object collides with."""
    meta = dict(manifest.get("metadata") or {})
    name = meta.pop("name", None)
    if name:
        meta["generateName"] = f"{name}-"
    if meta.get("namespace") in stand_in:
        meta["namespace"] = "default"
    return {**manifest, "metadata": meta}


class SyncHooks:
    """The hooks of one prepared sync on one cluster, and what they did.

    The apply stage asks it for its schedule (``schedule``) and runs its PreSync and
    Sync steps (``run``); execute lets it finish (``finish``: PostSync or SyncFail) and
    asks what to remember (``record``).
    """

    def __init__(
        self,
        kube: KubeCluster,
        prepared: Prepared,
        *,
        options: SyncOptions,
        progress: Progress = quiet,
    ) -> None:
        self.kube = kube
        self.app = prepared.desired.app
        self.hooks = prepared.hooks
        self.options = options
        self.progress = progress
        self.revision = prepared.desired.revision
        self.previous = prepared.hook_record
        self.operation = prepared.hook_operation
        self.runs: list[HookRun] = []

    def schedule(self, stages: Sequence[Stage]) -> list[Stage | HookStep]:
        """The apply stages with this sync's PreSync and Sync hooks in their places."""
        return apply_schedule(stages, self.hooks, self.operation)

    async def run(self, step: HookStep) -> list[AppflowError]:
        """Run one step of the schedule; the errors that stop the apply."""
        assert self.operation is not None, "a schedule has hook steps only with an operation"
        done = await run_phase(
            self.kube,
            self.app,
            step.hooks,
            step.phase,
            self.operation,
            timeout=self.options.wait_timeout,
            progress=self.progress,
        )
        self.runs += done.runs
        return done.errors

    @property
    def awaits_health(self) -> bool:
        """PostSync hooks run only once the app is healthy: the sync must wait for it."""
        return bool(self._in(Phase.POST_SYNC))

    def _in(self, phase: Phase) -> tuple[Hook, ...]:
        if self.operation is None:
            return ()
        return hooks_in(self.hooks, phase, self.operation)

    async def finish(
        self, health: Health, failing: Sequence[FailingObject], *, failed: bool
    ) -> list[AppflowError]:
        """PostSync hooks after a healthy sync; SyncFail hooks after a failed one."""
        operation = self.operation
        if operation is None:
            return []
        errors: list[AppflowError] = []
        post = self._in(Phase.POST_SYNC)
        if post and not failed:
            if health.status is HealthStatus.HEALTHY:
                errors += await self.run(HookStep(Phase.POST_SYNC, post))
            else:
                names = sorted(
                    {t.name for h in post if (t := h.trigger(Phase.POST_SYNC, operation)) if t}
                )
                what = "; ".join(f"{f.object}: {f.message}" for f in failing[:3]) or health.message
                errors.append(
                    HookError(
                        f"{', '.join(names)} hooks were not run: the app is not healthy ({what})",
                        where=Where(app=self.app, cluster=self.kube.name, object=str(post[0].ref)),
                        hint="they run once every object is healthy; sync again when it is",
                    )
                )
        fail = self._in(Phase.SYNC_FAIL)
        if fail and (failed or errors):
            errors += await self.run(HookStep(Phase.SYNC_FAIL, fail))
        return errors

    def record(self, *, succeeded: bool) -> HookRecord | None:
        """What the Deployment remembers of its hooks after this sync (None for an app
        without hooks: a record left by hooks it no longer has is dropped)."""
        if not self.hooks:
            return None
        if self.operation is None:
            return self.previous
        return record_after(
            self.operation, revision=self.revision, succeeded=succeeded, previous=self.previous
        )


# -- an app delete -------------------------------------------------------------------------


async def delete_with_hooks(
    kube: KubeCluster,
    prepared: Prepared,
    hooks: Sequence[Hook],
    *,
    options: SyncOptions,
    execute: Callable[[], Awaitable[SyncResult]],
    progress: Progress = quiet,
) -> SyncResult:
    """Remove the app from one cluster (EXECUTE prunes everything) with its delete hooks.

    HOOKS are those of the revision the cluster has. A PreDelete hook that fails stops
    the delete there: nothing is removed (HookError). Once everything is pruned, the
    objects the app's syncs and tests left are removed (those that carry the app's
    label), then the PostDelete hooks run.
    """
    app = prepared.desired.app
    timeout = options.wait_timeout
    delete = Operation.DELETE
    pre = await run_phase(
        kube, app, hooks, Phase.PRE_DELETE, delete, timeout=timeout, progress=progress
    )
    if pre.errors:
        ran = "; ".join(str(r) for r in pre.runs)
        raise HookError(
            "; ".join(e.message for e in pre.errors) + (f" [{ran}]" if ran else ""),
            where=Where(app=app, cluster=kube.name),
            hint="nothing was deleted there; fix the hook (or delete with --keep-objects)",
        )
    result = await execute()
    if not result.ok:
        return replace(result, hooks=(*pre.runs, *result.hooks))
    errors = await _remove_left_behind(kube, app, hooks)
    post = await run_phase(
        kube, app, hooks, Phase.POST_DELETE, delete, timeout=timeout, progress=progress
    )
    errors += post.errors
    return replace(
        result,
        errors=(*result.errors, *errors),
        failing=(*result.failing, *_failing(errors)),
        state="ErrApplied" if errors else result.state,
        hooks=(*pre.runs, *result.hooks, *post.runs),
    )


async def _remove_left_behind(
    kube: KubeCluster, app: str, hooks: Sequence[Hook]
) -> list[AppflowError]:
    """Delete the objects of HOOKS the app's syncs and tests left on the cluster.

    Found by the app's label (so a generateName hook's runs are found too, and nothing
    another app owns), each re-checked for ownership before its delete.
    """
    errors: list[AppflowError] = []
    wanted = left_behind_on_delete(hooks)
    kinds = sorted({(h.api_version, h.ref.kind) for h in wanted})
    for api_version, kind in kinds:
        try:
            found = await kube.list_objects(api_version, kind, label_selector=f"{LABEL_APP}={app}")
        except MissingKindError:
            continue
        for live in found:
            meta = live.get("metadata") or {}
            if not any(_is_run_of(h, live) for h in wanted) or not owned_by(live, app)[0]:
                continue
            try:
                await kube.delete(
                    api_version, kind, str(meta["name"]), str(meta.get("namespace") or "")
                )
            except ClusterError:
                raise
            except AppflowError as err:
                errors.append(err.located(app=app, cluster=kube.name))
    return errors


def _is_run_of(hook: Hook, live: Manifest) -> bool:
    """Whether LIVE is an object HOOK created (its name, or its generateName prefix)."""
    meta = live.get("metadata") or {}
    ref = hook.ref
    if str(meta.get("namespace") or "") != ref.namespace:
        return False
    if hook.generated_name:
        return str(meta.get("generateName") or "") == ref.name
    return str(meta.get("name")) == ref.name


def _failing(errors: Sequence[AppflowError]) -> tuple[FailingObject, ...]:
    return tuple(FailingObject(object=str(e.where.object or ""), message=e.message) for e in errors)


# -- a test --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClusterTests:
    """What `appflow app test` did on one cluster."""

    cluster: str
    runs: tuple[HookRun, ...] = ()
    errors: tuple[AppflowError, ...] = ()
    tests: int = 0

    @property
    def passed(self) -> bool:
        return not self.errors


async def run_tests(
    kube: KubeCluster,
    app: str,
    objects: Sequence[Manifest],
    *,
    timeout: float,
    progress: Progress = quiet,
) -> ClusterTests:
    """Run the Test hooks among OBJECTS (the cluster's revision) on KUBE."""
    hooks = split_hooks(objects).hooks
    done = await run_phase(
        kube, app, hooks, Phase.TEST, Operation.TEST, timeout=timeout, progress=progress
    )
    tests = len(hooks_in(hooks, Phase.TEST, Operation.TEST))
    return ClusterTests(
        cluster=kube.name, runs=tuple(done.runs), errors=tuple(done.errors), tests=tests
    )

"""Hooks: objects that run at a moment of an app's life instead of being part of its desired state.

Pure: which rendered objects are hooks, when each runs, in which order, and what
its delete policy removes. The hook stage of a sync carries it out.

appflow has its own phases, and reads Helm's and Argo CD's hook annotations as
aliases of them, so a chart or a repository written for either runs its hooks at
the moments its authors documented:

============  ==========================  ===============================  ==========================
phase         appflow.dev/hook            helm.sh/hook                     argocd.argoproj.io/hook
============  ==========================  ===============================  ==========================
PreSync       PreSync                     pre-install, pre-upgrade,        PreSync
                                          pre-rollback
Sync          Sync                        (none)                           Sync
PostSync      PostSync                    post-install, post-upgrade,      PostSync
                                          post-rollback
SyncFail      SyncFail                    (none)                           SyncFail
PreDelete     PreDelete                   pre-delete                       PreDelete
PostDelete    PostDelete                  post-delete                      PostDelete
Test          Test                        test (test-success)              (none)
============  ==========================  ===============================  ==========================

A phase runs within an *operation*: ``install`` (the app's first sync on a
cluster), ``upgrade`` (a sync that brings a revision whose hooks have not run
there yet), ``rollback`` (``appflow app rollback``), ``delete``
(``appflow app delete``) and ``test`` (``appflow app test``). appflow's and Argo
CD's sync phases run in every sync operation; Helm's are narrower, as Helm
documents them: ``pre-install`` runs before an install only, ``pre-upgrade``
before an upgrade only, ``pre-rollback`` before a rollback only.

Within a phase hooks run one after another, ordered by weight (``appflow.dev/sync-wave``,
``argocd.argoproj.io/sync-wave`` or ``helm.sh/hook-weight``; default 0), then kind,
then name, as both Helm and Argo CD document. ``Sync`` hooks run with the main
objects of their wave, before the next wave is applied.

When an object carries more than one family of hook annotation, appflow's wins over
Argo CD's and Argo CD's over Helm's (Argo CD ignores Helm's hook annotation when its
own is present). Argo CD's ``Skip`` leaves an object out altogether. Delete
policies of every family are united; with none, ``before-hook-creation`` applies
(the default of both Helm and Argo CD).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from appflow.errors import ConfigError, Where
from appflow.model.health import HealthStatus, assess
from appflow.model.objects import (
    ANNOTATION_ARGO_SYNC_WAVE,
    ANNOTATION_PRUNE,
    ANNOTATION_SYNC_WAVE,
    Manifest,
    ObjectRef,
)
from appflow.model.order import CRD_GROUP_KIND, Stage, integer_annotation, kind_rank
from appflow.model.records import HookRecord

ANNOTATION_HOOK = "appflow.dev/hook"
ANNOTATION_HOOK_DELETE_POLICY = "appflow.dev/hook-delete-policy"
HELM_HOOK = "helm.sh/hook"
HELM_HOOK_WEIGHT = "helm.sh/hook-weight"
HELM_HOOK_DELETE_POLICY = "helm.sh/hook-delete-policy"
HELM_RESOURCE_POLICY = "helm.sh/resource-policy"
ARGO_HOOK = "argocd.argoproj.io/hook"
ARGO_HOOK_DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"

HOOKS_KEY = "appflow.dev/hooks"
"""Where hook state was kept before it had a field of its own: among a Deployment's
fingerprints, under this key (HookRecord.encode). Read from hub objects written before
``DeploymentRecord.hooks``; the pull agent's edge state still keeps it there."""


def hook_record_apart(fingerprints: Mapping[str, str]) -> tuple[dict[str, str], HookRecord | None]:
    """FINGERPRINTS that hold a hook record under HOOKS_KEY (the pull agent's edge state)
    as the objects' fingerprints and the record."""
    rest = {k: v for k, v in fingerprints.items() if k != HOOKS_KEY}
    return rest, HookRecord.decode(fingerprints.get(HOOKS_KEY))


def hook_record_among(fingerprints: Mapping[str, str], record: HookRecord | None) -> dict[str, str]:
    """FINGERPRINTS with RECORD kept among them, as ``hook_record_apart`` reads them."""
    if record is None:
        return dict(fingerprints)
    return {**fingerprints, HOOKS_KEY: record.encode()}


class Operation(enum.StrEnum):
    """What is being done to an app on a cluster when its hooks run."""

    INSTALL = "install"
    UPGRADE = "upgrade"
    ROLLBACK = "rollback"
    DELETE = "delete"
    TEST = "test"


SYNCS = frozenset({Operation.INSTALL, Operation.UPGRADE, Operation.ROLLBACK})


class Phase(enum.StrEnum):
    """appflow's hook phases (Argo CD's names, plus Test)."""

    PRE_SYNC = "PreSync"
    SYNC = "Sync"
    POST_SYNC = "PostSync"
    SYNC_FAIL = "SyncFail"
    PRE_DELETE = "PreDelete"
    POST_DELETE = "PostDelete"
    TEST = "Test"


class DeletePolicy(enum.StrEnum):
    """When a hook object is deleted (Helm's words; Argo CD's are aliases)."""

    BEFORE_HOOK_CREATION = "before-hook-creation"
    HOOK_SUCCEEDED = "hook-succeeded"
    HOOK_FAILED = "hook-failed"


@dataclass(frozen=True)
class Trigger:
    """One moment a hook runs at: a phase, in some operations; ``name`` as written."""

    phase: Phase
    operations: frozenset[Operation]
    name: str


_SKIP = "Skip"

_OWN_AND_ARGO: dict[str, Trigger] = {
    "PreSync": Trigger(Phase.PRE_SYNC, SYNCS, "PreSync"),
    "Sync": Trigger(Phase.SYNC, SYNCS, "Sync"),
    "PostSync": Trigger(Phase.POST_SYNC, SYNCS, "PostSync"),
    "SyncFail": Trigger(Phase.SYNC_FAIL, SYNCS, "SyncFail"),
    "PreDelete": Trigger(Phase.PRE_DELETE, frozenset({Operation.DELETE}), "PreDelete"),
    "PostDelete": Trigger(Phase.POST_DELETE, frozenset({Operation.DELETE}), "PostDelete"),
}
_OWN = {**_OWN_AND_ARGO, "Test": Trigger(Phase.TEST, frozenset({Operation.TEST}), "Test")}


def _helm(phase: Phase, operation: Operation, name: str) -> Trigger:
    return Trigger(phase, frozenset({operation}), name)


_HELM: dict[str, Trigger] = {
    "pre-install": _helm(Phase.PRE_SYNC, Operation.INSTALL, "pre-install"),
    "pre-upgrade": _helm(Phase.PRE_SYNC, Operation.UPGRADE, "pre-upgrade"),
    "pre-rollback": _helm(Phase.PRE_SYNC, Operation.ROLLBACK, "pre-rollback"),
    "post-install": _helm(Phase.POST_SYNC, Operation.INSTALL, "post-install"),
    "post-upgrade": _helm(Phase.POST_SYNC, Operation.UPGRADE, "post-upgrade"),
    "post-rollback": _helm(Phase.POST_SYNC, Operation.ROLLBACK, "post-rollback"),
    "pre-delete": _helm(Phase.PRE_DELETE, Operation.DELETE, "pre-delete"),
    "post-delete": _helm(Phase.POST_DELETE, Operation.DELETE, "post-delete"),
    "test": _helm(Phase.TEST, Operation.TEST, "test"),
    # Helm 3 and 4 still read Helm 2's name for a test.
    "test-success": _helm(Phase.TEST, Operation.TEST, "test-success"),
}

_ARGO_POLICIES = {
    "BeforeHookCreation": DeletePolicy.BEFORE_HOOK_CREATION,
    "HookSucceeded": DeletePolicy.HOOK_SUCCEEDED,
    "HookFailed": DeletePolicy.HOOK_FAILED,
}
_HELM_POLICIES = {p.value: p for p in DeletePolicy}


@dataclass(frozen=True, kw_only=True)
class Hook:
    """A rendered object that runs at the moments of its triggers instead of being synced."""

    manifest: Manifest
    triggers: tuple[Trigger, ...]
    weight: int = 0
    delete_policies: frozenset[DeletePolicy] = frozenset({DeletePolicy.BEFORE_HOOK_CREATION})
    annotation: str = ANNOTATION_HOOK
    """The annotation that made it a hook (named in messages)."""

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef.of(self.manifest)

    @property
    def api_version(self) -> str:
        return str(self.manifest.get("apiVersion", ""))

    @property
    def generated_name(self) -> bool:
        """Named by the API server (``metadata.generateName``): created anew on every run."""
        meta = self.manifest.get("metadata") or {}
        return not meta.get("name") and bool(meta.get("generateName"))

    @property
    def runs_to_completion(self) -> bool:
        """A Job or a Pod: the hook is done when it finished, not when it exists."""
        return self.ref.group_kind in ("Job.batch", "Pod")

    def trigger(self, phase: Phase, operation: Operation) -> Trigger | None:
        for trigger in self.triggers:
            if trigger.phase is phase and operation in trigger.operations:
                return trigger
        return None

    def describe(self, phase: Phase, operation: Operation) -> str:
        """E.g. 'pre-install hook Job.batch/shop/migrate'."""
        trigger = self.trigger(phase, operation)
        return f"{trigger.name if trigger else phase.value} hook {self.ref}"


@dataclass(frozen=True)
class HookSplit:
    """Rendered objects sorted into the main objects (synced, inventoried, assessed) and hooks."""

    main: tuple[Manifest, ...]
    hooks: tuple[Hook, ...]
    skipped: tuple[ObjectRef, ...] = ()
    """Objects marked ``argocd.argoproj.io/hook: Skip``: neither applied nor run."""

    def refs(self) -> frozenset[ObjectRef]:
        """The identities of the hooks (kept out of the inventory, and so out of prune)."""
        return frozenset(h.ref for h in self.hooks)


def _annotations(manifest: Manifest) -> Mapping[str, object]:
    return (manifest.get("metadata") or {}).get("annotations") or {}


def _error(manifest: Manifest, key: str, message: str, hint: str) -> ConfigError:
    return ConfigError(
        message,
        where=Where(object=str(ObjectRef.of(manifest)), field=f"metadata.annotations[{key}]"),
        hint=hint,
    )


def _values(manifest: Manifest, key: str) -> list[str]:
    raw = _annotations(manifest).get(key)
    if raw is None:
        return []
    return [part.strip() for part in str(raw).split(",") if part.strip()]


def _triggers(manifest: Manifest) -> tuple[str, tuple[Trigger, ...]] | None:
    """(annotation, triggers) of MANIFEST, () triggers for Skip, None when it is no hook."""
    annotations = _annotations(manifest)
    for key, table, fold in (
        (ANNOTATION_HOOK, _OWN, False),
        (ARGO_HOOK, _OWN_AND_ARGO, False),
        (HELM_HOOK, _HELM, True),
    ):
        if key not in annotations:
            continue
        names = _values(manifest, key)
        if fold:
            names = [n.lower() for n in names]
        if key != HELM_HOOK and _SKIP in names:
            # As in Argo CD: Skip alone leaves the object out; beside a phase it means nothing.
            names = [n for n in names if n != _SKIP]
            if not names:
                return key, ()
        unknown = [n for n in names if n not in table]
        if unknown or not names:
            known = ", ".join(table) + ("" if key == HELM_HOOK else f", {_SKIP}")
            raise _error(
                manifest,
                key,
                f"unknown hook {', '.join(unknown) or repr(annotations[key])} in annotation {key}",
                f"use one or more of: {known}",
            )
        return key, tuple(table[n] for n in names)
    return None


def _delete_policies(manifest: Manifest) -> frozenset[DeletePolicy]:
    policies: set[DeletePolicy] = set()
    for key, table in (
        (ANNOTATION_HOOK_DELETE_POLICY, _HELM_POLICIES),
        (ARGO_HOOK_DELETE_POLICY, _ARGO_POLICIES),
        (HELM_HOOK_DELETE_POLICY, _HELM_POLICIES),
    ):
        for name in _values(manifest, key):
            folded = name.lower() if table is _HELM_POLICIES else name
            if folded not in table:
                raise _error(
                    manifest,
                    key,
                    f"unknown hook delete policy {name!r} in annotation {key}",
                    f"use one or more of: {', '.join(table)}",
                )
            policies.add(table[folded])
    return frozenset(policies or {DeletePolicy.BEFORE_HOOK_CREATION})


def _weight(manifest: Manifest) -> int:
    for key in (ANNOTATION_SYNC_WAVE, ANNOTATION_ARGO_SYNC_WAVE, HELM_HOOK_WEIGHT):
        value = integer_annotation(manifest, key)
        if value is not None:
            return value
    return 0


def hook_of(manifest: Manifest) -> Hook | None:
    """MANIFEST as a Hook, or None when it is not one (Skip objects are hooks of no phase).

    Raises ConfigError naming the object and annotation for an unknown hook or
    delete policy, or a weight that is not an integer.
    """
    found = _triggers(manifest)
    if found is None:
        return None
    annotation, triggers = found
    return Hook(
        manifest=manifest,
        triggers=triggers,
        weight=_weight(manifest),
        delete_policies=_delete_policies(manifest),
        annotation=annotation,
    )


def is_hook(manifest: Manifest) -> bool:
    """Whether MANIFEST carries a hook annotation of any family (without checking its values)."""
    annotations = _annotations(manifest)
    return any(key in annotations for key in (ANNOTATION_HOOK, ARGO_HOOK, HELM_HOOK))


def split_hooks(objects: Iterable[Manifest]) -> HookSplit:
    """Sort OBJECTS into main objects and hooks, keeping their order."""
    main: list[Manifest] = []
    hooks: list[Hook] = []
    skipped: list[ObjectRef] = []
    for manifest in objects:
        hook = hook_of(manifest)
        if hook is None:
            main.append(manifest)
        elif not hook.triggers:
            skipped.append(hook.ref)
        else:
            hooks.append(hook)
    return HookSplit(tuple(main), tuple(hooks), tuple(skipped))


def main_objects(objects: Iterable[Manifest]) -> tuple[Manifest, ...]:
    """The objects of OBJECTS that are synced, inventoried and assessed: no hooks, no Skip."""
    return tuple(m for m in objects if not is_hook(m))


def _order(hook: Hook) -> tuple[int, int, str, str]:
    ref = hook.ref
    return hook.weight, kind_rank(ref), ref.name, ref.namespace


def hooks_in(hooks: Iterable[Hook], phase: Phase, operation: Operation) -> tuple[Hook, ...]:
    """The hooks that run in PHASE of OPERATION, in the order they run."""
    return tuple(sorted((h for h in hooks if h.trigger(phase, operation)), key=_order))


SYNC_PHASES = (Phase.PRE_SYNC, Phase.SYNC, Phase.POST_SYNC, Phase.SYNC_FAIL)


def due_in_sync(hooks: Iterable[Hook], operation: Operation | None) -> tuple[Hook, ...]:
    """The hooks a sync that is OPERATION may run (in any of its phases), once each."""
    if operation is None:
        return ()
    hooks = tuple(hooks)
    return tuple(h for h in hooks if any(h.trigger(p, operation) for p in SYNC_PHASES))


# -- which operation a sync is -------------------------------------------------------------


def sync_operation(
    record: HookRecord | None, *, owns_objects: bool, revision: str, rollback: bool = False
) -> Operation | None:
    """The operation a sync of REVISION is, for its hooks; None when they already ran for it.

    A revision's hooks run once per cluster: a re-sync of the same revision (a
    periodic resync, a repaired drift, a push that changed other apps) runs none.
    The first sync of an app on a cluster is an install; so is a retry of an
    install that failed. An app that owns objects there but has no record (it
    was synced before it had hooks) is upgraded.
    """
    if record is not None and not record.install_failed and record.revision == revision:
        return None
    if rollback:
        return Operation.ROLLBACK
    if record is None:
        return Operation.UPGRADE if owns_objects else Operation.INSTALL
    return Operation.INSTALL if record.install_failed else Operation.UPGRADE


def record_after(
    operation: Operation, *, revision: str, succeeded: bool, previous: HookRecord | None
) -> HookRecord | None:
    """What to remember after a sync that ran OPERATION's hooks (None: remember nothing)."""
    if succeeded:
        return HookRecord(revision=revision)
    if operation is Operation.INSTALL:
        return HookRecord(install_failed=True)
    # A failed upgrade or rollback: the next sync tries the revision's hooks again.
    return previous


# -- where hooks run within an apply ---------------------------------------------------------


@dataclass(frozen=True)
class HookStep:
    """Run HOOKS (in order) at this point of an apply."""

    phase: Phase
    hooks: tuple[Hook, ...]
    wave: int | None = None


def apply_schedule(
    stages: Sequence[Stage], hooks: Iterable[Hook], operation: Operation | None
) -> list[Stage | HookStep]:
    """The apply stages with the PreSync and Sync hooks of OPERATION put in their place.

    PreSync hooks run after the CRD and Namespace stages (what a hook needs in
    order to exist: Helm installs a chart's CRDs and the release namespace before
    its pre-install hooks) and before every wave. Sync hooks of wave W run after
    the stages of every wave up to W and before those of later waves. With no
    operation (the revision's hooks already ran), the stages are the schedule.
    """
    if operation is None:
        return list(stages)
    hooks = tuple(hooks)
    pre = hooks_in(hooks, Phase.PRE_SYNC, operation)
    sync = hooks_in(hooks, Phase.SYNC, operation)
    schedule: list[Stage | HookStep] = [s for s in stages if s.wave is None]
    if pre:
        schedule.append(HookStep(Phase.PRE_SYNC, pre))
    waves = sorted({s.wave for s in stages if s.wave is not None} | {h.weight for h in sync})
    for wave in waves:
        schedule += [s for s in stages if s.wave == wave]
        in_wave = tuple(h for h in sync if h.weight == wave)
        if in_wave:
            schedule.append(HookStep(Phase.SYNC, in_wave, wave=wave))
    return schedule


# -- hook objects on the cluster ---------------------------------------------------------------


class Outcome(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class HookRun:
    """What running one hook did on a cluster (reported with the sync, delete or test)."""

    hook: str
    """E.g. 'pre-install hook Job.batch/shop/migrate'."""
    name: str
    """The object's name on the cluster: for a generateName hook, the one the server chose."""
    outcome: Outcome
    message: str = ""
    deleted: bool = False
    """Its delete policy removed it afterwards."""

    def __str__(self) -> str:
        created = "" if self.hook.endswith(f"/{self.name}") else f" (created as {self.name})"
        text = f"{self.hook}{created}: {self.outcome.value}"
        if self.message:
            text += f" ({self.message})"
        if self.deleted:
            text += "; deleted by its delete policy"
        return text


def outcome(hook: Hook, live: Manifest | None) -> tuple[Outcome, str]:
    """Where a created hook object stands, and why.

    A Job or Pod succeeds when it completed and fails when it failed (by the
    pure health checks); any other kind is done once it exists, as Helm
    documents ("as soon as Kubernetes marks the resource as loaded").
    """
    if live is None:
        return Outcome.RUNNING, "waiting for the object to appear"
    if not hook.runs_to_completion:
        return Outcome.SUCCEEDED, "created"
    health = assess(live)
    if health.status is HealthStatus.HEALTHY:
        return Outcome.SUCCEEDED, health.message
    if health.status is HealthStatus.DEGRADED:
        return Outcome.FAILED, health.message
    return Outcome.RUNNING, health.message


def deleted_before_creation(hook: Hook) -> bool:
    """Whether an existing object of HOOK is deleted before HOOK is created again.

    A generateName hook never collides with an earlier run; CRDs are never
    deleted by a delete policy (as in Helm: their deletion cascades to every
    custom resource).
    """
    return (
        DeletePolicy.BEFORE_HOOK_CREATION in hook.delete_policies
        and not hook.generated_name
        and hook.ref.group_kind != CRD_GROUP_KIND
    )


def deletions_after(ran: Sequence[Hook], failed: Hook | None = None) -> tuple[Hook, ...]:
    """The hooks of one phase run that their delete policies remove once it ended.

    RAN are the hooks that succeeded, in the order they ran; FAILED the one that
    failed (the phase stopped there), if any. As Helm does it: the failed hook
    goes when it has ``hook-failed``, and the succeeded ones with
    ``hook-succeeded`` go in reverse order.
    """
    gone: list[Hook] = []
    if failed is not None and DeletePolicy.HOOK_FAILED in failed.delete_policies:
        gone.append(failed)
    gone += [h for h in reversed(ran) if DeletePolicy.HOOK_SUCCEEDED in h.delete_policies]
    return tuple(h for h in gone if h.ref.group_kind != CRD_GROUP_KIND)


def kept_on_delete(manifest: Manifest) -> bool:
    """Whether a hook object stays when its app is deleted (``helm.sh/resource-policy: keep``
    or ``appflow.dev/prune: "false"``)."""
    annotations = _annotations(manifest)
    return (
        str(annotations.get(HELM_RESOURCE_POLICY, "")).strip().lower() == "keep"
        or str(annotations.get(ANNOTATION_PRUNE, "")).strip().lower() == "false"
    )


def left_behind_on_delete(hooks: Iterable[Hook]) -> tuple[Hook, ...]:
    """The hooks whose objects an app delete removes: those of syncs and tests.

    Delete hooks are not among them: they run during the delete, and their own
    policies decide whether they stay.
    """
    return tuple(
        h
        for h in hooks
        if not any(t.phase in (Phase.PRE_DELETE, Phase.POST_DELETE) for t in h.triggers)
        and not kept_on_delete(h.manifest)
    )

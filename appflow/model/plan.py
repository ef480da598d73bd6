"""The sync plan as a pure function: what a sync would create, change, leave alone and prune.

:func:`plan_sync` pairs each desired object with what the API server said a
server-side apply would make of it (a dry run) and with the live object. When
the dry-run result equals the live object after :func:`~appflow.model.diff.normalize`,
applying it would change nothing, and the object is not applied: that is how
an idle fleet costs almost nothing. Comparing the dry-run result rather than
the rendered manifest means fields the API server defaults never count as
changes (the false drift Fleet users hand-write compare patches for).

Prune candidates come only from the previous Inventory, and an object is
pruned only when the live object still carries the app's ownership label and
annotation and is not marked to be kept: nothing unowned is ever deleted. The
same test (:func:`may_prune`) is made again on the object as re-read at the
moment of deletion, because another app may have taken it since the plan.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from appflow.errors import ConfigError, PruneError, Where
from appflow.model.diff import changed_paths, normalize, unified_diff
from appflow.model.inventory import Inventory, prune_set
from appflow.model.objects import (
    ANNOTATION_OWNER,
    ANNOTATION_PRUNE,
    LABEL_APP,
    Manifest,
    ObjectRef,
)
from appflow.model.redact import Redactor

_SHOWN_PATHS = 5


class Action(enum.Enum):
    """What a sync does with one object; the value is the word a summary uses."""

    CREATE = "created"
    CONFIGURE = "configured"
    UNCHANGED = "unchanged"
    PRUNE = "pruned"
    KEEP = "kept"
    """Owned, out of the desired state, and left on the cluster on purpose (pruning is
    off, or the app is deleted with keepResources): it stays in the inventory."""
    SKIP = "skipped"
    """Left on the cluster although it left the desired state: kept by annotation, not owned, or gone."""


@dataclass(frozen=True)
class Change:
    """One object's entry in a plan: what happens to it and why."""

    ref: ObjectRef
    action: Action
    reason: str = ""
    diff: str = ""


@dataclass(frozen=True)
class Plan:
    """The changes of one sync of one AppFlow to one Cluster, desired objects first, then prunes."""

    changes: tuple[Change, ...]

    def counts(self) -> dict[Action, int]:
        """Number of changes per action, every action present (zero when absent)."""
        counts = dict.fromkeys(Action, 0)
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def of(self, action: Action) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if change.action is action)

    @property
    def has_changes(self) -> bool:
        """True when applying the plan would write to the cluster."""
        return any(
            change.action in (Action.CREATE, Action.CONFIGURE, Action.PRUNE)
            for change in self.changes
        )

    def revised(self, changes: Iterable[Change]) -> Plan:
        """This plan with CHANGES in place of the changes of the same objects.

        What a stage learned while carrying the plan out (an object another
        app took between the plan and the delete) replaces what was planned,
        so that reports say what happened.
        """
        by_ref = {change.ref: change for change in changes}
        if not by_ref:
            return self
        return Plan(tuple(by_ref.get(change.ref, change) for change in self.changes))

    def summary(self) -> str:
        """E.g. '3 created, 1 configured, 46 unchanged, 2 pruned'; zero counts are left out."""
        parts = [f"{n} {action.value}" for action, n in self.counts().items() if n]
        return ", ".join(parts) if parts else "no objects"


def owned_by(live: Manifest, app: str) -> tuple[bool, str]:
    """Whether the live object carries ``app``'s ownership marks, and a sentence saying why.

    Both are required: the label ``appflow.dev/app`` equal to ``app`` and the
    annotation ``appflow.dev/owner`` of the form ``<app>/<inventory-id>``.
    """
    meta = live.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    label = labels.get(LABEL_APP)
    if label != app:
        seen = "missing" if label is None else f"{label!r}"
        return False, f"not owned by app {app}: label {LABEL_APP} is {seen}"
    owner = annotations.get(ANNOTATION_OWNER)
    # Prefix with the slash: app "web" must not claim objects of app "webshop".
    if not isinstance(owner, str) or not (owner == app or owner.startswith(f"{app}/")):
        seen = "missing" if owner is None else f"{owner!r}"
        return False, f"not owned by app {app}: annotation {ANNOTATION_OWNER} is {seen}"
    return True, f"owned by app {app}"


def kept_by_annotation(live: Manifest) -> bool:
    """True when the live object is annotated ``appflow.dev/prune: "false"``."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ANNOTATION_PRUNE)
    return str(value).strip().lower() == "false" if value is not None else False


def may_prune(live: Manifest | None, app: str) -> tuple[bool, str]:
    """Whether ``app`` may delete the live object, and a sentence saying why (not).

    Asked twice of every prune candidate: when the sync is planned, and again
    of the object as re-read just before the delete, so that an object another
    app took in between is never deleted.
    """
    if live is None:
        return False, "already gone"
    if (live.get("metadata") or {}).get("deletionTimestamp"):
        return False, "already being deleted"
    owned, why = owned_by(live, app)
    if not owned:
        return False, why
    if kept_by_annotation(live):
        return False, f"kept by annotation {ANNOTATION_PRUNE}=false"
    return True, "no longer in the desired state"


def plan_sync(
    *,
    app: str,
    desired: Sequence[Manifest],
    dry_run: Mapping[ObjectRef, Manifest | None],
    live: Mapping[ObjectRef, Manifest | None],
    old_inventory: Inventory | None,
    with_diffs: bool = True,
    redactor: Redactor | None = None,
    keep: str = "",
) -> Plan:
    """Plan one sync of ``app``: desired objects in the given order, then prune candidates.

    ``dry_run[ref]`` is what a server-side-apply dry run of the desired object
    returned; ``live[ref]`` is the live object, None when it does not exist.
    For a desired object a missing ``live`` key counts as absent (applying is
    safe either way); for a prune candidate a missing key means its state is
    unknown, and it is skipped rather than deleted blind.

    ``with_diffs=False`` leaves ``Change.diff`` empty: a sync of hundreds of
    objects needs the actions, and only ``diff`` shows the text. Diffs hide
    secret values as ``redactor`` says (Secret data always).

    ``keep``, when given, says why nothing is pruned this time (pruning is
    off, the app is deleted with keepResources): candidates that would be
    pruned are KEEP with that reason, so that no report says "pruned" of an
    object that stays.

    Raises ConfigError when an object appears twice in ``desired`` and
    PruneError when ``old_inventory`` belongs to another app.
    """
    diff: _DiffFn = partial(unified_diff, redactor=redactor) if with_diffs else _no_diff
    changes: list[Change] = []
    seen: set[ObjectRef] = set()
    for manifest in desired:
        ref = ObjectRef.of(manifest)
        if ref in seen:
            raise ConfigError(
                "the object appears twice in the desired state",
                where=Where(app=app, object=str(ref)),
                hint="keep one definition; the renderer output must name each object once",
            )
        seen.add(ref)
        changes.append(_plan_desired(ref, manifest, dry_run.get(ref), live.get(ref), diff))

    if old_inventory is not None:
        if old_inventory.app != app:
            raise PruneError(
                f"the previous inventory belongs to app {old_inventory.app}",
                where=Where(app=app),
            )
        new_inventory = Inventory.from_manifests(app, desired)
        for entry in prune_set(old_inventory, new_inventory):
            if entry.ref in seen:
                continue  # desired still, only no longer owned (now shared)
            change = _plan_prune(entry.ref, app, live, diff)
            if keep and change.action is Action.PRUNE:
                change = Change(entry.ref, Action.KEEP, keep)
            changes.append(change)
    return Plan(tuple(changes))


_DiffFn = Callable[[ObjectRef, Manifest | None, Manifest | None], str]


def _no_diff(ref: ObjectRef, live: Manifest | None, desired: Manifest | None) -> str:
    return ""


def _plan_desired(
    ref: ObjectRef,
    manifest: Manifest,
    dry: Manifest | None,
    current: Manifest | None,
    unified_diff: _DiffFn,
) -> Change:
    after = dry if dry is not None else manifest
    if current is None:
        return Change(ref, Action.CREATE, "not on the cluster", unified_diff(ref, None, after))
    if dry is None:
        return Change(
            ref,
            Action.CONFIGURE,
            "no dry-run result to compare with",
            unified_diff(ref, current, manifest),
        )
    if dry is current:
        # The fingerprint vouched for the live object: nothing to compare.
        return Change(ref, Action.UNCHANGED)
    paths = changed_paths(normalize(current), normalize(dry))
    if not paths:
        return Change(ref, Action.UNCHANGED)
    shown = ", ".join(paths[:_SHOWN_PATHS])
    if len(paths) > _SHOWN_PATHS:
        shown += f" and {len(paths) - _SHOWN_PATHS} more"
    return Change(ref, Action.CONFIGURE, f"changed: {shown}", unified_diff(ref, current, dry))


def _plan_prune(
    ref: ObjectRef, app: str, live: Mapping[ObjectRef, Manifest | None], unified_diff: _DiffFn
) -> Change:
    if ref not in live:
        return Change(ref, Action.SKIP, "live state unknown; not deleted blind")
    current = live[ref]
    allowed, why = may_prune(current, app)
    if not allowed:
        return Change(ref, Action.SKIP, why)
    return Change(ref, Action.PRUNE, why, unified_diff(ref, current, None))

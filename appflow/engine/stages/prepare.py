"""Prepare: plan one AppFlow's sync onto one Cluster, reading only.

prepare() reads the live objects appflow owns (one LIST per kind), skips the
objects whose fingerprint says nothing changed on either side since the last
apply, and dry-runs every other object with server-side apply. Any rejection
there stops the sync before the first write. On an app's first sync to a
cluster every object is dry-run anyway, and the dry runs say what exists: no
LIST is needed unless the cluster holds an inventory of the app.

A steady state is planned once per process (``PlanMemo``): when the same desired state
meets a cluster whose every listed object still has the resourceVersion it had when a
plan found nothing to change (and no dry run, ownership look-up or hook was needed to
find that), that plan is what planning again would compute, and it is used as it is.
The LISTs are still made, every time: they are the proof.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from appflow.engine.stages.apply import replace_opted_in
from appflow.engine.stages.failures import Blame
from appflow.engine.stages.hooks import check_hooks, hook_operation
from appflow.engine.stages.inventory import (
    inventory_configmap,
    inventory_of,
    inventory_ref,
    read_inventories,
)
from appflow.engine.stages.live import (
    Kind,
    crd_kinds,
    kinds_of,
    read_live,
    secret_content,
    served_kinds,
)
from appflow.engine.stages.types import DesiredState, Prepared, SyncBlocked, SyncOptions
from appflow.errors import (
    AppflowError,
    ApplyError,
    ClusterError,
    ConflictError,
    ImmutableFieldError,
)
from appflow.kube.client import KubeCluster
from appflow.kube.errors import conflicting_managers
from appflow.model.hooks import Hook, due_in_sync, split_hooks
from appflow.model.inventory import Inventory, in_current_format, union
from appflow.model.objects import Manifest, ObjectRef, is_shared, split_api_version
from appflow.model.ownership import (
    OwnershipCheck,
    check_ownership,
    digest,
    fingerprint,
    only_imperative,
    owner_label,
    stamp,
    unchanged_since,
)
from appflow.model.plan import Action, Plan, plan_sync
from appflow.model.records import HookRecord


async def prepare(
    kube: KubeCluster,
    desired: DesiredState,
    *,
    previous_inventory: Inventory | None,
    fingerprints: dict[str, str],
    hook_record: HookRecord | None = None,
    options: SyncOptions,
    memo: PlanMemo | None = None,
) -> Prepared:
    """Plan the sync of DESIRED onto KUBE without changing anything on it.

    PREVIOUS_INVENTORY, FINGERPRINTS and HOOK_RECORD are what the caller remembers of
    the last sync (the store's mirror; None, {} and None when it remembers nothing): the
    cluster's own inventory wins over the mirror when both exist. MEMO: this process's
    steady-state plans (see the module's docstring).
    """
    inputs = _Inputs(
        kube=kube,
        revision=desired.revision,
        previous_inventory=previous_inventory,
        fingerprints=fingerprints,
        hook_record=hook_record,
        options=options,
    )
    steady = memo.get(desired.app, kube.name, inputs) if memo is not None else None
    if memo is not None and steady is not None:
        # The same LISTs as the plan read: every object (the inventory's ConfigMap too)
        # at the version it had then is the proof that planning would find the same.
        labelled, namespaced = await read_live(kube, desired.app, steady.kinds)
        configmap = labelled.pop(inventory_ref(desired.app), None)
        if _versions(labelled, configmap) == steady.versions and namespaced == steady.namespaced:
            memo.answered += 1
            # As it is (its DesiredState has the same digest): what it computed once
            # (the inventory of its objects) is not computed again.
            return steady.prepared
    prepared, found = await _prepare(kube, desired, inputs)
    if memo is not None:
        memo.remember(found, inputs, prepared)
    return prepared


async def _prepare(
    kube: KubeCluster, desired: DesiredState, inputs: _Inputs
) -> tuple[Prepared, _Found]:
    """prepare() without its memo: read the cluster and plan."""
    previous_inventory, fingerprints = inputs.previous_inventory, inputs.fingerprints
    options = inputs.options
    app = desired.app
    # Hooks run at their moments (stages/hooks.py); they are never applied as desired state.
    split = split_hooks(desired.objects)
    objects = tuple(stamp(m, app=app) for m in split.main)
    found = _Found(
        desired=desired,
        objects=objects,
        fingerprints=fingerprints,
        hooks=split.hooks,
        hook_record=inputs.hook_record,
    )
    # A fingerprint is recorded: of secret values it holds only their keyed digests.
    hide = desired.redactor.redact if desired.sensitive and desired.redactor else None
    found.digests = {ObjectRef.of(m): digest(hide(m) if hide else m) for m in objects}
    if previous_inventory is None and not fingerprints:
        # The first sync of APP here, as far as the caller knows. With no
        # fingerprints every object is dry-run, and each dry run says whether
        # its object exists: listing every kind only pays when the cluster has
        # an inventory of APP after all (the store was reset).
        found.read(kube, await inventory_configmap(kube, app))
        if found.on_cluster is None:
            found.namespaced = await served_kinds(kube, kinds_of(objects, Inventory(app, ())))
            return await _plan(kube, found, options), found
    await _read_state(kube, found, previous_inventory)
    return await _plan(kube, found, options), found


@dataclass(frozen=True, kw_only=True)
class _Inputs:
    """Everything a plan depends on besides the live objects."""

    kube: KubeCluster
    """The client itself: a changed kubeconfig (a new client) or another cluster is new."""
    revision: str
    """Digest of the rendered objects."""
    previous_inventory: Inventory | None
    fingerprints: dict[str, str]
    hook_record: HookRecord | None
    options: SyncOptions

    def same(self, other: _Inputs) -> bool:
        return (
            self.kube is other.kube
            and self.revision == other.revision
            and self.options == other.options
            and self.hook_record == other.hook_record
            and self.previous_inventory == other.previous_inventory
            and self.fingerprints == other.fingerprints
        )


@dataclass(frozen=True, kw_only=True)
class _Steady:
    inputs: _Inputs
    prepared: Prepared
    kinds: frozenset[Kind]
    """What the LISTs read."""
    versions: dict[ObjectRef, tuple[str, str]]
    """(uid, resourceVersion) of every object the LISTs found, the inventory's included."""
    namespaced: dict[Kind, bool]


class PlanMemo:
    """This process's last steady-state plan per (app, cluster): one that changes nothing
    and asked the cluster nothing but its LISTs (no dry run, no ownership or prune
    look-up, no hook). Planning the same inputs against objects of the same
    resourceVersions computes the same plan, so it is used instead (``prepare``).

    A plan holds its live objects: the least recently used are dropped past
    MAX_OBJECTS objects in all, so a large fleet's daemon keeps a bounded memo.
    """

    MAX_OBJECTS = 20_000

    def __init__(self) -> None:
        self._steady: OrderedDict[tuple[str, str], _Steady] = OrderedDict()
        self._objects = 0
        self.answered = 0
        """Plans this memo answered (the LISTs proved nothing had changed)."""

    def get(self, app: str, cluster: str, inputs: _Inputs) -> _Steady | None:
        steady = self._steady.get((app, cluster))
        if steady is None or not steady.inputs.same(inputs):
            return None
        self._steady.move_to_end((app, cluster))
        return steady

    def remember(self, found: _Found, inputs: _Inputs, prepared: Prepared) -> None:
        key = (found.desired.app, inputs.kube.name)
        self._drop(key)
        if not _steady(found, prepared):
            return
        self._steady[key] = _Steady(
            inputs=inputs,
            prepared=prepared,
            kinds=frozenset(found.kinds),
            versions=_versions(found.labelled, found.configmap),
            namespaced=dict(found.namespaced),
        )
        self._objects += len(prepared.live)
        while self._objects > self.MAX_OBJECTS and len(self._steady) > 1:
            self._drop(next(iter(self._steady)))

    def forget(self, cluster: str) -> None:
        """Plans of CLUSTER are not used again (what it serves changed)."""
        for key in [k for k in self._steady if k[1] == cluster]:
            self._drop(key)

    def _drop(self, key: tuple[str, str]) -> None:
        steady = self._steady.pop(key, None)
        if steady is not None:
            self._objects -= len(steady.prepared.live)


def _steady(found: _Found, prepared: Prepared) -> bool:
    """PREPARED changes nothing, and planning it read nothing but the LISTs."""
    desired = set(prepared.refs)
    return (
        found.listed
        and not found.checked
        and not prepared.hooks
        and not prepared.deferred
        and not prepared.takeover
        and prepared.inventory_on_cluster
        and not prepared.ownership.taken_from()
        and {e.ref for e in prepared.old_inventory.entries} == desired
        and all(c.action is Action.UNCHANGED for c in prepared.plan.changes)
        and prepared.fingerprints == found.fingerprints
    )


def _versions(
    labelled: dict[ObjectRef, Manifest], configmap: Manifest | None
) -> dict[ObjectRef, tuple[str, str]]:
    """(uid, resourceVersion) of every object listed and of the inventory's CONFIGMAP."""
    versions = {}
    listed = [*labelled.items(), *([(ObjectRef.of(configmap), configmap)] if configmap else [])]
    for ref, obj in listed:  # read_live keys each object by its ObjectRef already
        meta = obj.get("metadata") or {}
        versions[ref] = (str(meta.get("uid")), str(meta.get("resourceVersion")))
    return versions


@dataclass(kw_only=True)
class _Found:
    """What prepare() learns of the cluster before it plans."""

    desired: DesiredState
    objects: tuple[Manifest, ...]
    fingerprints: dict[str, str]
    digests: dict[ObjectRef, str] = field(default_factory=dict)
    labelled: dict[ObjectRef, Manifest] = field(default_factory=dict)
    namespaced: dict[Kind, bool] = field(default_factory=dict)
    on_cluster: Inventory | None = None
    current_format: bool = True
    """The cluster's inventory ConfigMap is in the format this appflow writes."""
    old_inventory: Inventory | None = None
    hooks: tuple[Hook, ...] = ()
    hook_record: HookRecord | None = None
    configmap: Manifest | None = None
    """The cluster's inventory ConfigMap as the LIST of ConfigMaps found it."""
    kinds: set[Kind] = field(default_factory=set)
    """The kinds listed."""
    listed: bool = False
    """Live state came from the LISTs (not from dry runs alone: a first sync)."""
    checked: int = 0
    """Objects planning asked the API server about (dry runs, look-ups)."""

    def read(self, kube: KubeCluster, configmap: Manifest | None) -> None:
        """Take the cluster's inventory from CONFIGMAP (None: it has none)."""
        if configmap is None:
            return
        self.on_cluster = inventory_of(kube, self.desired.app, configmap)
        self.current_format = in_current_format(configmap.get("data") or {})

    @property
    def stored_exactly(self) -> bool:
        """The cluster's ConfigMap holds the old inventory as this appflow writes it: an
        unchanged inventory need not be written again."""
        return (
            self.on_cluster is not None
            and self.current_format
            and self.on_cluster == self.old_inventory
        )

    @property
    def inventory(self) -> Inventory:
        if self.old_inventory is None:
            return Inventory(self.desired.app, ())
        return self.old_inventory


async def _read_state(kube: KubeCluster, found: _Found, previous: Inventory | None) -> None:
    # The inventory ConfigMap carries the app's label, so the LIST of
    # ConfigMaps that reads live state brings it along: no GET of its own,
    # and no round trip before the LISTs. The store's mirror of the inventory
    # says which other kinds to list.
    app = found.desired.app
    known = union(previous, found.on_cluster, app=app)
    listed = kinds_of(found.objects, known) | {("v1", "ConfigMap")}
    found.labelled, found.namespaced = await read_live(kube, app, listed)
    found.listed, found.kinds = True, listed
    configmap = found.labelled.pop(inventory_ref(app), None)
    found.configmap = configmap
    if configmap is not None:
        found.read(kube, configmap)
    elif found.on_cluster is None and previous is not None and len(previous):
        # Expected but not listed (its label edited away?): look it up by name.
        found.checked += 1
        found.read(kube, await inventory_configmap(kube, app))
    # Both copies are written ahead of every change, and either can be lost or behind
    # (a deleted ConfigMap; a store write refused, or a process killed, after the
    # cluster's was written): what either names may exist, so both count.
    found.old_inventory = union(previous, found.on_cluster, app=app)
    hooks = {h.ref for h in found.hooks}
    kept = tuple(e for e in found.old_inventory.entries if e.ref not in hooks)
    if len(kept) < len(found.old_inventory):
        # Objects that are hooks now (an appflow that did not know hooks applied them):
        # they leave the inventory, unpruned; the old inventory no longer matches the
        # cluster's, so the cluster's is rewritten.
        found.old_inventory = Inventory(app, kept)
    unlisted = kinds_of((), found.old_inventory) - listed
    if unlisted:
        found.checked += 1
        more, more_namespaced = await read_live(kube, app, unlisted)
        found.labelled.update(more)
        found.namespaced.update(more_namespaced)


async def _plan(kube: KubeCluster, found: _Found, options: SyncOptions) -> Prepared:
    """The rest of prepare(), once live state is read: dry runs and the plan."""
    app = found.desired.app
    digests = found.digests
    crds = crd_kinds(found.objects)
    checks = _DryRuns(kube=kube, app=app, found=found, options=options)
    deferred: list[ObjectRef] = []
    to_check: list[Manifest] = []
    for m in found.objects:
        ref = ObjectRef.of(m)
        current = found.labelled.get(ref)
        checks.live[ref] = current
        if unchanged_since(
            found.fingerprints.get(ref.encode()),
            digests[ref],
            current,
            content=secret_content(current),
        ):
            checks.dry_run[ref] = current
        elif (str(m.get("apiVersion")), ref.kind) not in found.namespaced and (
            ref.group,
            ref.kind,
        ) in crds:
            deferred.append(ref)
        else:
            to_check.append(m)
    found.checked += len(to_check) + len(deferred)
    await checks.run(to_check)
    operation = hook_operation(
        found.hooks,
        record=found.hook_record,
        inventory=found.inventory,
        revision=found.desired.revision,
        rollback=options.rollback,
    )
    checks.errors += await check_hooks(
        kube, app, due_in_sync(found.hooks, operation), stand_in=checks.absent_namespaces, crds=crds
    )
    ownership = await _ownership(kube, found, checks.live, options)
    checks.errors.extend(c.error(app=app, cluster=kube.name) for c in ownership.conflicts)
    if checks.errors:
        raise SyncBlocked(sorted(checks.errors, key=str), app=app, cluster=kube.name)
    await _look_up_prune_candidates(kube, found, set(digests), checks.live)
    plan = plan_sync(
        app=app,
        desired=found.objects,
        dry_run=checks.dry_run,
        live=checks.live,
        old_inventory=found.inventory,
        with_diffs=options.with_diffs,
        redactor=found.desired.redactor,
        keep=options.keep or ("" if options.prune else "pruning is off (syncPolicy.prune: false)"),
    )
    return Prepared(
        desired=found.desired,
        objects=found.objects,
        digests=digests,
        plan=plan,
        live=checks.live,
        old_inventory=found.inventory,
        namespaced=_with_crd_scopes(found.namespaced, found.objects, crds),
        deferred=tuple(deferred),
        takeover=frozenset(checks.takeover),
        inventory_on_cluster=found.stored_exactly,
        fingerprints=_vouched(found.fingerprints, plan, digests, checks),
        hooks=found.hooks,
        hook_operation=operation,
        hook_record=found.hook_record,
        ownership=ownership,
    )


async def _ownership(
    kube: KubeCluster, found: _Found, live: dict[ObjectRef, Manifest | None], options: SyncOptions
) -> OwnershipCheck:
    """Desired objects other apps own: conflicts, or transfers the user opted in to.

    Objects already labelled as the app's need no look, and in a steady state every
    desired object is: then nothing is read. Otherwise (objects to create or adopt)
    the other apps' inventories on the cluster are read too, in one LIST: an app
    that is creating an object owns it before the object exists.
    """
    app = found.desired.app
    strangers = [
        m
        for m in found.objects
        if not is_shared(m) and owner_label(live.get(ObjectRef.of(m))) != app
    ]
    if not strangers:
        return OwnershipCheck()
    found.checked += 1
    return check_ownership(
        app=app,
        desired=strangers,
        live=live,
        inventories=await read_inventories(kube),
        take_ownership=options.take_ownership,
    )


def _vouched(
    recorded: dict[str, str],
    plan: Plan,
    digests: dict[ObjectRef, str],
    checks: _DryRuns,
) -> dict[str, str]:
    """RECORDED, plus a fingerprint for every object a dry run found unchanged.

    Without one, such an object (applied by a sync that was never recorded, or
    unchanged after a new revision) would be dry-run again by every later sync. The
    dry run vouches for the live object only when applying would not even move field
    ownership: then the live object is what an apply would leave.
    """
    out = dict(recorded)
    for change in plan.of(Action.UNCHANGED):
        ref = change.ref
        live, dry = checks.live.get(ref), checks.dry_run.get(ref)
        if live is None or dry is None or dry is live:
            continue
        now = fingerprint(digests[ref], live, content=secret_content(live))
        if now == fingerprint(digests[ref], dry, content=secret_content(dry)):
            out[ref.encode()] = now
    return out


async def _look_up_prune_candidates(
    kube: KubeCluster,
    found: _Found,
    desired: set[ObjectRef],
    live: dict[ObjectRef, Manifest | None],
) -> None:
    # Prune candidates without our label are looked up one by one, so the plan
    # can say why they are kept rather than guess.
    for entry in found.inventory.entries:
        if entry.ref in desired:
            continue
        current = found.labelled.get(entry.ref)
        if current is None and (entry.api_version, entry.ref.kind) in found.namespaced:
            current = await kube.get(
                entry.api_version, entry.ref.kind, entry.ref.name, entry.ref.namespace
            )
        live[entry.ref] = current


def _with_crd_scopes(
    namespaced: dict[Kind, bool], objects: tuple[Manifest, ...], crds: dict[tuple[str, str], bool]
) -> dict[Kind, bool]:
    """NAMESPACED plus the scope of kinds whose CRD this sync creates."""
    out = dict(namespaced)
    for (group, kind), is_namespaced in crds.items():
        for m in objects:
            if (split_api_version(str(m.get("apiVersion")))[0], m.get("kind")) == (group, kind):
                out.setdefault((str(m.get("apiVersion")), kind), is_namespaced)
    return out


@dataclass(kw_only=True)
class _DryRuns:
    """The server-side dry runs of one prepare(), and what they found."""

    kube: KubeCluster
    app: str
    found: _Found
    options: SyncOptions
    live: dict[ObjectRef, Manifest | None] = field(default_factory=dict)
    dry_run: dict[ObjectRef, Manifest | None] = field(default_factory=dict)
    errors: list[AppflowError] = field(default_factory=list)
    takeover: set[ObjectRef] = field(default_factory=set)
    absent_namespaces: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.blame = Blame(self.kube)

    async def run(self, to_check: list[Manifest]) -> None:
        # Namespaces this sync creates: objects in them cannot be dry-run there
        # yet, so they are validated in a stand-in namespace straight away rather
        # than after a failed request each (a first sync of N objects into a new
        # namespace would otherwise cost N extra round trips). A namespace we
        # labelled exists; of the others, the Namespace's own dry run (needed
        # anyway) tells: the server gives an existing object its resourceVersion,
        # a would-be-created one none.
        unknown = {
            name
            for name in self.desired_namespaces
            if ObjectRef(group="", kind="Namespace", namespace="", name=name)
            not in self.found.labelled
        }

        def creates_unknown_namespace(m: Manifest) -> bool:
            return (
                m.get("kind") == "Namespace"
                and m.get("apiVersion") == "v1"
                and str(m["metadata"]["name"]) in unknown
            )

        await asyncio.gather(*(self.check(m) for m in to_check if creates_unknown_namespace(m)))
        for name in unknown:
            result = self.dry_run.get(
                ObjectRef(group="", kind="Namespace", namespace="", name=name)
            )
            if not (result or {}).get("metadata", {}).get("resourceVersion"):
                self.absent_namespaces.add(name)
        await asyncio.gather(*(self.check(m) for m in to_check if not creates_unknown_namespace(m)))

    @property
    def desired_namespaces(self) -> set[str]:
        return {
            str(m["metadata"]["name"])
            for m in self.found.objects
            if m.get("kind") == "Namespace" and m.get("apiVersion") == "v1"
        }

    def _refused(self, err: AppflowError, ref: ObjectRef) -> None:
        self.errors.append(err.located(app=self.app, cluster=self.kube.name, object=str(ref)))

    async def check_in_stand_in(self, m: Manifest, ref: ObjectRef) -> None:
        # Its namespace is created by this very sync: validate the object in a
        # namespace that exists; it will be created.
        stand_in = {**m, "metadata": {**m["metadata"], "namespace": "default"}}
        try:
            await self.kube.apply(stand_in, dry_run=True, force=self.options.force_conflicts)
        except ClusterError as err:
            self._refused(await self._blamed(err, m), ref)
        except AppflowError as inner:
            self._refused(inner, ref)

    async def _blamed(self, err: ClusterError, m: Manifest) -> AppflowError:
        """ERR when the cluster is down (raised: nothing more to check), else the object's."""
        blamed = await self.blame.of(err, m)
        if isinstance(blamed, ClusterError):
            raise blamed
        return blamed

    async def check(self, m: Manifest) -> None:
        ref = ObjectRef.of(m)
        if ref.namespace in self.absent_namespaces:
            await self.check_in_stand_in(m, ref)
            return
        try:
            result = await self._dry_run(m, ref)
        except ImmutableFieldError as err:
            if not replace_opted_in(m):
                self._refused(err, ref)
                return
            # Opted in to delete-and-recreate: the apply replaces it (see stages.apply).
            self.dry_run[ref] = m
            return
        except ApplyError as err:
            if ref.namespace in self.desired_namespaces and "does not exist" in err.message:
                # Deleted since we looked, or not visible to us.
                await self.check_in_stand_in(m, ref)
                return
            self._refused(err, ref)
            return
        except ClusterError as err:
            self._refused(await self._blamed(err, m), ref)
            return
        except AppflowError as err:
            self._refused(err, ref)
            return
        self.dry_run[ref] = result
        if self.live[ref] is None and result.get("metadata", {}).get("resourceVersion"):
            # It exists but without our label (made by hand or by another
            # tool): the dry run shows it, so plan it as configured, not created.
            self.live[ref] = await self.kube.get(
                str(m.get("apiVersion")), ref.kind, ref.name, ref.namespace
            )

    async def _dry_run(self, m: Manifest, ref: ObjectRef) -> Manifest:
        try:
            return await self.kube.apply(m, dry_run=True, force=self.options.force_conflicts)
        except ConflictError as conflict:
            current = self.found.labelled.get(ref) or await self.kube.get(
                str(m.get("apiVersion")), ref.kind, ref.name, ref.namespace
            )
            if current is None or not only_imperative(
                current, conflicting_managers(conflict.message)
            ):
                raise
            # A hand edit of appflow's fields is drift: take it back.
            result = await self.kube.apply(m, dry_run=True, force=True)
            self.takeover.add(ref)
            return result

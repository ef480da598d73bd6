"""Sync one AppFlow onto one Cluster: plan, then apply, prune and assess health.

The two halves are separate so that a fleet sync can plan every target first
and touch no cluster when any target's revision does not validate:

    prepared = await prepare(kube, desired, previous=..., options=...)   # reads only
    result = await execute(kube, prepared, options=...)                  # writes

prepare() reads the live objects appflow owns (one LIST per kind), skips the
objects whose fingerprint says nothing changed on either side since the last
apply, and dry-runs every other object with server-side apply. Any rejection
there stops the sync before the first write. On an app's first sync to a
cluster every object is dry-run anyway, and the dry runs say what exists: no
LIST is needed unless the cluster holds an inventory of the app.

execute() writes the inventory ahead of the objects (so a crash mid-apply
leaves every object it created tracked), applies in stages (CRDs, Namespaces,
cluster-scoped, namespaced by wave), prunes what left the desired state and
is owned by the app, and writes the final inventory when it differs from the
one ahead. Health is assessed on the apply responses and what prepare() read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from appflow import redaction
from appflow.errors import (
    AppflowError,
    ApplyError,
    ClusterError,
    ConflictError,
    ImmutableFieldError,
    MissingKindError,
    MissingNamespaceError,
    Where,
)
from appflow.kube.client import KubeCluster
from appflow.kube.errors import conflicting_managers
from appflow.model.health import Health, HealthStatus, aggregate, assess
from appflow.model.inventory import Inventory, InventoryEntry, with_failed_deletes
from appflow.model.objects import (
    ANNOTATION_REPLACE,
    INVENTORY_NAMESPACE,
    LABEL_APP,
    Manifest,
    ObjectRef,
    split_api_version,
)
from appflow.model.order import Stage, plan_stages
from appflow.model.ownership import digest, fingerprint, only_imperative, stamp, unchanged_since
from appflow.model.plan import Action, Plan, plan_sync
from appflow.model.records import DeploymentState, FailingObject
from appflow.model.redact import Redactor, content_digest, is_secret

Progress = Callable[[str], None]
_CRD_API = "apiextensions.k8s.io/v1"


@dataclass(frozen=True, kw_only=True)
class SyncOptions:
    """How one sync behaves; the app's syncPolicy fills the defaults."""

    prune: bool = True
    force_conflicts: bool = False
    with_diffs: bool = False
    wait: bool = False
    wait_timeout: float = 300.0
    crd_timeout: float = 60.0


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
    """old_inventory was read from the cluster (not the store's mirror standing in)."""
    fingerprints: dict[str, str]


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
    resource_counts: dict[str, int] = field(default_factory=dict)
    pruned: tuple[ObjectRef, ...] = ()
    applied: int = 0
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


def secret_content(live: Manifest | None) -> str:
    """What a Secret's fingerprint adds: a keyed digest of its data (see model.ownership)."""
    return content_digest(live, key=redaction.key()) if live is not None and is_secret(live) else ""


# -- inventory on the cluster ---------------------------------------------------


def inventory_name(app: str) -> str:
    return f"appflow-inventory-{app}"


def inventory_ref(app: str) -> ObjectRef:
    return ObjectRef(
        group="", kind="ConfigMap", namespace=INVENTORY_NAMESPACE, name=inventory_name(app)
    )


def _inventory_of(kube: KubeCluster, app: str, cm: Manifest) -> Inventory:
    try:
        return Inventory.from_data(app, cm.get("data") or {})
    except AppflowError as err:
        raise err.located(app=app, cluster=kube.name) from None


async def read_inventory(kube: KubeCluster, app: str) -> Inventory | None:
    """The inventory stored on the cluster, or None when there is none."""
    try:
        cm = await kube.get("v1", "ConfigMap", inventory_name(app), INVENTORY_NAMESPACE)
    except MissingKindError:
        return None
    return None if cm is None else _inventory_of(kube, app, cm)


async def write_inventory(kube: KubeCluster, inventory: Inventory) -> None:
    cm: Manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": inventory_name(inventory.app),
            "namespace": INVENTORY_NAMESPACE,
            "labels": {LABEL_APP: inventory.app, "app.kubernetes.io/component": "inventory"},
        },
        "data": inventory.to_data(),
    }
    try:
        await kube.apply(cm, force=True)
    except MissingNamespaceError:
        # The cluster's first inventory. Creating the namespace only when the
        # write says it is missing saves a request on every other write.
        await kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": INVENTORY_NAMESPACE}}
        )
        await kube.apply(cm, force=True)


async def delete_inventory(kube: KubeCluster, app: str) -> None:
    await kube.delete("v1", "ConfigMap", inventory_name(app), INVENTORY_NAMESPACE)


# -- live state -----------------------------------------------------------------


def _kinds(objects: Iterable[Manifest], inventory: Inventory) -> set[tuple[str, str]]:
    kinds = {(str(m.get("apiVersion")), str(m.get("kind"))) for m in objects}
    kinds |= {(e.api_version, e.ref.kind) for e in inventory.entries}
    return kinds


def _crd_kinds(objects: Iterable[Manifest]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, for every CRD among OBJECTS."""
    out: dict[tuple[str, str], bool] = {}
    for m in objects:
        if m.get("kind") == "CustomResourceDefinition":
            spec = m.get("spec") or {}
            kind = str((spec.get("names") or {}).get("kind", ""))
            out[(str(spec.get("group", "")), kind)] = (
                spec.get("scope", "Namespaced") == "Namespaced"
            )
    return out


async def read_live(
    kube: KubeCluster, app: str, kinds: Iterable[tuple[str, str]]
) -> tuple[dict[ObjectRef, Manifest], dict[tuple[str, str], bool]]:
    """Every object of KINDS labelled as APP's (one LIST per kind), and which kinds are namespaced.

    Kinds the cluster does not serve are left out of both results.
    """
    live: dict[ObjectRef, Manifest] = {}
    namespaced: dict[tuple[str, str], bool] = {}

    async def one(api_version: str, kind: str) -> None:
        try:
            info = await kube.info(api_version, kind)
        except MissingKindError:
            return
        namespaced[(api_version, kind)] = info.namespaced
        for item in await kube.list_objects(api_version, kind, label_selector=f"{LABEL_APP}={app}"):
            live[ObjectRef.of(item)] = item

    await asyncio.gather(*(one(v, k) for v, k in sorted(kinds)))
    return live, namespaced


async def served_kinds(
    kube: KubeCluster, kinds: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], bool]:
    """Which of KINDS are namespaced, from discovery alone; kinds not served are left out."""
    namespaced: dict[tuple[str, str], bool] = {}
    for api_version, kind in sorted(kinds):
        try:
            namespaced[(api_version, kind)] = (await kube.info(api_version, kind)).namespaced
        except MissingKindError:
            continue
    return namespaced


# -- prepare --------------------------------------------------------------------


async def prepare(
    kube: KubeCluster,
    desired: DesiredState,
    *,
    previous_inventory: Inventory | None,
    fingerprints: dict[str, str],
    options: SyncOptions,
) -> Prepared:
    """Plan the sync of DESIRED onto KUBE without changing anything on it."""
    app = desired.app
    objects = tuple(stamp(m, app=app) for m in desired.objects)
    # A fingerprint is recorded: of secret values it holds only their keyed digests.
    hide = desired.redactor.redact if desired.sensitive and desired.redactor else None
    digests = {ObjectRef.of(m): digest(hide(m) if hide else m) for m in objects}
    on_cluster: Inventory | None = None
    if previous_inventory is None and not fingerprints:
        # The first sync of APP here, as far as the store knows. With no
        # fingerprints every object is dry-run, and each dry run says whether
        # its object exists: listing every kind only pays when the cluster has
        # an inventory of APP after all (the store was reset).
        on_cluster = await read_inventory(kube, app)
        if on_cluster is None:
            return await _plan(
                kube,
                desired,
                objects,
                digests,
                labelled={},
                namespaced=await served_kinds(kube, _kinds(objects, Inventory(app, ()))),
                old_inventory=Inventory(app, ()),
                inventory_on_cluster=False,
                fingerprints=fingerprints,
                options=options,
            )
    # The inventory ConfigMap carries the app's label, so the LIST of
    # ConfigMaps that reads live state brings it along: no GET of its own,
    # and no round trip before the LISTs. The store's mirror of the inventory
    # says which other kinds to list.
    known = on_cluster or previous_inventory or Inventory(app, ())
    listed = _kinds(objects, known) | {("v1", "ConfigMap")}
    labelled, namespaced = await read_live(kube, app, listed)
    found = labelled.pop(inventory_ref(app), None)
    if found is not None:
        on_cluster = _inventory_of(kube, app, found)
    elif on_cluster is None and previous_inventory is not None and len(previous_inventory):
        # Expected but not listed (its label edited away?): look it up by name.
        on_cluster = await read_inventory(kube, app)
    # The cluster's inventory is the truth; the store's mirror stands in when
    # the cluster lost it (someone deleted the ConfigMap).
    old_inventory = on_cluster or previous_inventory or Inventory(app, ())
    unlisted = _kinds((), old_inventory) - listed
    if unlisted:
        more, more_namespaced = await read_live(kube, app, unlisted)
        labelled.update(more)
        namespaced.update(more_namespaced)
    return await _plan(
        kube,
        desired,
        objects,
        digests,
        labelled=labelled,
        namespaced=namespaced,
        old_inventory=old_inventory,
        inventory_on_cluster=on_cluster is not None,
        fingerprints=fingerprints,
        options=options,
    )


async def _plan(
    kube: KubeCluster,
    desired: DesiredState,
    objects: tuple[Manifest, ...],
    digests: dict[ObjectRef, str],
    *,
    labelled: dict[ObjectRef, Manifest],
    namespaced: dict[tuple[str, str], bool],
    old_inventory: Inventory,
    inventory_on_cluster: bool,
    fingerprints: dict[str, str],
    options: SyncOptions,
) -> Prepared:
    """The rest of prepare(), once live state is read: dry runs and the plan."""
    app = desired.app
    crds = _crd_kinds(objects)
    desired_namespaces = {
        str(m["metadata"]["name"])
        for m in objects
        if m.get("kind") == "Namespace" and m.get("apiVersion") == "v1"
    }

    # Namespaces this sync creates: objects in them cannot be dry-run there
    # yet, so they are validated in a stand-in namespace straight away rather
    # than after a failed request each (a first sync of N objects into a new
    # namespace would otherwise cost N extra round trips). A namespace we
    # labelled exists; of the others, the Namespace's own dry run (needed
    # anyway) tells: the server gives an existing object its resourceVersion,
    # a would-be-created one none.
    unknown_namespaces = {
        name
        for name in desired_namespaces
        if ObjectRef(group="", kind="Namespace", namespace="", name=name) not in labelled
    }
    absent_namespaces: set[str] = set()

    live: dict[ObjectRef, Manifest | None] = {}
    dry_run: dict[ObjectRef, Manifest | None] = {}
    deferred: list[ObjectRef] = []
    to_check: list[Manifest] = []
    for m in objects:
        ref = ObjectRef.of(m)
        current = labelled.get(ref)
        live[ref] = current
        if unchanged_since(
            fingerprints.get(ref.encode()), digests[ref], current, content=secret_content(current)
        ):
            dry_run[ref] = current
        elif (str(m.get("apiVersion")), ref.kind) not in namespaced and (
            ref.group,
            ref.kind,
        ) in crds:
            deferred.append(ref)
        else:
            to_check.append(m)

    errors: list[AppflowError] = []
    takeover: set[ObjectRef] = set()

    async def check_in_stand_in(m: Manifest, ref: ObjectRef) -> None:
        # Its namespace is created by this very sync: validate the object in a
        # namespace that exists; it will be created.
        stand_in = {**m, "metadata": {**m["metadata"], "namespace": "default"}}
        try:
            await kube.apply(stand_in, dry_run=True, force=options.force_conflicts)
        except ClusterError:
            raise
        except AppflowError as inner:
            errors.append(inner.located(app=app, cluster=kube.name, object=str(ref)))

    async def check(m: Manifest) -> None:
        ref = ObjectRef.of(m)
        if ref.namespace in absent_namespaces:
            await check_in_stand_in(m, ref)
            return
        try:
            try:
                result = await kube.apply(m, dry_run=True, force=options.force_conflicts)
            except ConflictError as conflict:
                current = labelled.get(ref) or await kube.get(
                    str(m.get("apiVersion")), ref.kind, ref.name, ref.namespace
                )
                if current is None or not only_imperative(
                    current, conflicting_managers(conflict.message)
                ):
                    raise
                # A hand edit of appflow's fields is drift: take it back.
                result = await kube.apply(m, dry_run=True, force=True)
                takeover.add(ref)
        except ImmutableFieldError as err:
            if not _replace_opted_in(m):
                errors.append(err.located(app=app, cluster=kube.name, object=str(ref)))
                return
            # Opted in to delete-and-recreate: the apply replaces it (see _apply_one).
            dry_run[ref] = m
            return
        except ApplyError as err:
            if ref.namespace in desired_namespaces and "does not exist" in err.message:
                # Deleted since we looked, or not visible to us.
                await check_in_stand_in(m, ref)
                return
            errors.append(err.located(app=app, cluster=kube.name, object=str(ref)))
            return
        except ClusterError:
            raise
        except AppflowError as err:
            errors.append(err.located(app=app, cluster=kube.name, object=str(ref)))
            return
        dry_run[ref] = result
        if live[ref] is None and result.get("metadata", {}).get("resourceVersion"):
            # It exists but without our label (made by hand or by another
            # tool): the dry run shows it, so plan it as configured, not created.
            live[ref] = await kube.get(str(m.get("apiVersion")), ref.kind, ref.name, ref.namespace)

    def is_unknown_namespace(m: Manifest) -> bool:
        return (
            m.get("kind") == "Namespace"
            and m.get("apiVersion") == "v1"
            and str(m["metadata"]["name"]) in unknown_namespaces
        )

    first = [m for m in to_check if is_unknown_namespace(m)]
    await asyncio.gather(*(check(m) for m in first))
    for name in unknown_namespaces:
        result = dry_run.get(ObjectRef(group="", kind="Namespace", namespace="", name=name))
        if not (result or {}).get("metadata", {}).get("resourceVersion"):
            absent_namespaces.add(name)
    await asyncio.gather(*(check(m) for m in to_check if not is_unknown_namespace(m)))
    if errors:
        raise SyncBlocked(sorted(errors, key=str), app=app, cluster=kube.name)

    # Prune candidates without our label are looked up one by one, so the plan
    # can say why they are kept rather than guess.
    new_refs = set(digests)
    for entry in old_inventory.entries:
        if entry.ref in new_refs:
            continue
        current = labelled.get(entry.ref)
        if current is None and (entry.api_version, entry.ref.kind) in namespaced:
            current = await kube.get(
                entry.api_version, entry.ref.kind, entry.ref.name, entry.ref.namespace
            )
        live[entry.ref] = current

    plan = plan_sync(
        app=app,
        desired=objects,
        dry_run=dry_run,
        live=live,
        old_inventory=old_inventory,
        with_diffs=options.with_diffs,
        redactor=desired.redactor,
    )
    for (group, kind), is_namespaced in crds.items():
        for m in objects:
            if (split_api_version(str(m.get("apiVersion")))[0], m.get("kind")) == (group, kind):
                namespaced.setdefault((str(m.get("apiVersion")), kind), is_namespaced)
    return Prepared(
        desired=desired,
        objects=objects,
        digests=digests,
        plan=plan,
        live=live,
        old_inventory=old_inventory,
        namespaced=namespaced,
        deferred=tuple(deferred),
        takeover=frozenset(takeover),
        inventory_on_cluster=inventory_on_cluster,
        fingerprints=dict(fingerprints),
    )


# -- execute --------------------------------------------------------------------


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


def _replace_opted_in(m: Manifest) -> bool:
    annotations = (m.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(ANNOTATION_REPLACE, "")).lower() == "true"


async def _apply_one(kube: KubeCluster, m: Manifest, *, force: bool) -> Manifest:
    try:
        return await kube.apply(m, force=force)
    except ImmutableFieldError:
        if not _replace_opted_in(m):
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


async def execute(
    kube: KubeCluster,
    prepared: Prepared,
    *,
    options: SyncOptions,
    progress: Progress = lambda _: None,
) -> SyncResult:
    """Carry out a prepared sync and assess the health of what it applied."""
    started = time.monotonic()
    desired = prepared.desired
    app = desired.app
    plan = prepared.plan
    new_inventory = Inventory.from_manifests(app, prepared.objects)
    fingerprints = {
        ref.encode(): prepared.fingerprints[ref.encode()]
        for ref in prepared.digests
        if ref.encode() in prepared.fingerprints
    }
    errors: list[AppflowError] = []
    applied = 0
    applied_objects: dict[ObjectRef, Manifest] = {}
    """What the API server answered to each apply: the object as stored."""

    to_apply = {c.ref for c in plan.of(Action.CREATE) + plan.of(Action.CONFIGURE)}
    to_apply |= set(prepared.deferred)
    to_prune = [c.ref for c in plan.of(Action.PRUNE)] if options.prune else []

    # What the cluster's inventory holds now, when known: a sync that changes
    # nothing need not write it again.
    stored = prepared.old_inventory if prepared.inventory_on_cluster else None
    if to_apply or to_prune or len(prepared.old_inventory) != len(new_inventory):
        # Write-ahead: every object about to be created is tracked before it exists.
        ahead = Inventory(app, prepared.old_inventory.entries + new_inventory.entries)
        if ahead != prepared.old_inventory:
            await write_inventory(kube, ahead)
            stored = ahead

    def is_namespaced(ref: ObjectRef) -> bool:
        for (api_version, kind), value in prepared.namespaced.items():
            if kind == ref.kind and split_api_version(api_version)[0] == ref.group:
                return value
        return bool(ref.namespace)

    manifests = [m for m in prepared.objects if ObjectRef.of(m) in to_apply]
    stages: list[Stage] = plan_stages(manifests, is_namespaced=is_namespaced)
    deferred = set(prepared.deferred)
    for stage in stages:
        if errors:
            break
        if deferred & set(stage.refs()):
            # Custom resources of CRDs created above: validate before writing them.
            checks = [m for m in stage.manifests if ObjectRef.of(m) in deferred]
            results = await asyncio.gather(
                *(kube.apply(m, dry_run=True, force=options.force_conflicts) for m in checks),
                return_exceptions=True,
            )
            for m, result in zip(checks, results, strict=True):
                if isinstance(result, AppflowError):
                    errors.append(
                        result.located(app=app, cluster=kube.name, object=str(ObjectRef.of(m)))
                    )
                elif isinstance(result, BaseException):
                    raise result
            if errors:
                break
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
        for m, result in zip(stage.manifests, results, strict=True):
            ref = ObjectRef.of(m)
            if isinstance(result, AppflowError):
                errors.append(result.located(app=app, cluster=kube.name, object=str(ref)))
            elif isinstance(result, BaseException):
                raise result
            else:
                applied += 1
                applied_objects[ref] = result
                fingerprints[ref.encode()] = fingerprint(
                    prepared.digests[ref], result, content=secret_content(result)
                )
        if stage.wait_established and not errors:
            names = [str(m["metadata"]["name"]) for m in stage.manifests]
            try:
                established = await _wait_established(kube, names, timeout=options.crd_timeout)
            except AppflowError as err:
                errors.append(err.located(app=app))
            else:
                # Newer than the apply's answer: health sees them Established.
                for m in stage.manifests:
                    applied_objects[ObjectRef.of(m)] = established[str(m["metadata"]["name"])]

    pruned: list[ObjectRef] = []
    failed_deletes: list[InventoryEntry] = []
    if not errors and to_prune:
        by_ref = {e.ref: e for e in prepared.old_inventory.entries}
        progress(f"{kube.name}: pruning {len(to_prune)} objects")
        for ref in to_prune:
            entry = by_ref[ref]
            try:
                await kube.delete(entry.api_version, ref.kind, ref.name, ref.namespace)
                pruned.append(ref)
            except AppflowError as err:
                errors.append(err.located(app=app, cluster=kube.name, object=str(ref)))
                failed_deletes.append(entry)
    elif to_prune:
        # Objects not pruned stay owned: keep them in the inventory.
        by_ref = {e.ref: e for e in prepared.old_inventory.entries}
        failed_deletes = [by_ref[r] for r in to_prune]
    if not options.prune:
        kept = {e.ref: e for e in prepared.old_inventory.entries}
        failed_deletes += [kept[c.ref] for c in plan.of(Action.PRUNE)]

    final_inventory = with_failed_deletes(new_inventory, failed_deletes)
    if errors:
        # Keep tracking everything the write-ahead inventory named.
        final_inventory = Inventory(app, prepared.old_inventory.entries + new_inventory.entries)
    if final_inventory != stored:
        await write_inventory(kube, final_inventory)

    health, failing, counts = await assess_health(
        kube,
        app,
        prepared.objects,
        wait=options.wait and not errors,
        timeout=options.wait_timeout,
        seen=None if errors else await _live_after_apply(kube, prepared, applied_objects),
    )
    failing = (
        tuple(FailingObject(object=str(e.where.object or ""), message=e.message) for e in errors)
        + failing
    )
    state: DeploymentState
    if errors:
        state = "ErrApplied"
    elif health.status is HealthStatus.HEALTHY:
        state = "Ready"
    elif health.status is HealthStatus.MISSING:
        state = "Missing"
    else:
        state = "NotReady"
    counts["orphaned"] = len(plan.of(Action.SKIP))
    if errors:
        # Objects of stages that never ran are still waiting to be applied.
        counts["waitApplied"] = max(0, len(to_apply) - applied - len(errors))
    return SyncResult(
        app=app,
        cluster=kube.name,
        revision=desired.revision,
        plan=plan,
        state=state,
        health=health,
        inventory=final_inventory,
        fingerprints=fingerprints,
        errors=tuple(errors),
        failing=failing,
        resource_counts=counts,
        pruned=tuple(pruned),
        applied=applied,
        seconds=time.monotonic() - started,
    )


# How long the first health check waits for controllers to observe what was
# just applied (metadata.generation ahead of status.observedGeneration).
_OBSERVE_GRACE = 2.0


def _unobserved(obj: Manifest | None) -> bool:
    """True when OBJ's controller has not yet seen its latest spec."""
    if obj is None:
        return False
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    return isinstance(generation, int) and isinstance(observed, int) and observed < generation


async def _live_after_apply(
    kube: KubeCluster, prepared: Prepared, applied: dict[ObjectRef, Manifest]
) -> dict[ObjectRef, Manifest]:
    """APP's live objects once the apply settled, reading as little as possible.

    prepare() read every live object moments ago, and each apply's response
    is the object as the server stored it: nothing is read again, except
    applied objects whose controller has not yet observed their new
    generation. Those are read again for a moment, so that a sync does not
    report NotReady only because it looked a few milliseconds too soon.
    """
    by_ref = {ObjectRef.of(m): m for m in prepared.objects}
    live = {
        ref: obj for ref, obj in prepared.live.items() if obj is not None and ref not in applied
    }
    live.update(applied)
    deadline = time.monotonic() + _OBSERVE_GRACE
    lagging = [by_ref[r] for r in sorted(applied) if r in by_ref and _unobserved(live.get(r))]
    while lagging and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        for m, obj in zip(lagging, await kube.get_many(lagging), strict=True):
            if obj is not None:
                live[ObjectRef.of(m)] = obj
        lagging = [m for m in lagging if _unobserved(live.get(ObjectRef.of(m)))]
    return live


async def assess_health(
    kube: KubeCluster,
    app: str,
    objects: Sequence[Manifest],
    *,
    wait: bool = False,
    timeout: float = 300.0,
    seen: dict[ObjectRef, Manifest] | None = None,
) -> tuple[Health, tuple[FailingObject, ...], dict[str, int]]:
    """Health of APP's objects on KUBE (read by its label); with WAIT, poll until settled.

    SEEN, when given, is APP's live objects as just read: the first check uses
    it instead of reading them again.

    Returns the aggregate, the objects that are not healthy with their
    messages, and resource counts in Fleet's terms (ready, notReady, missing...).
    """
    kinds = {(str(m.get("apiVersion")), str(m.get("kind"))) for m in objects}
    first = seen

    async def fetch() -> dict[ObjectRef, Manifest]:
        nonlocal first
        if first is not None:
            live, first = first, None
            return live
        live, _ = await read_live(kube, app, kinds)
        return live

    return await _poll_health(fetch, objects, wait=wait, timeout=timeout)


async def assess_objects(
    kube: KubeCluster,
    objects: Sequence[Manifest],
    *,
    wait: bool = False,
    timeout: float = 300.0,
) -> tuple[Health, tuple[FailingObject, ...], dict[str, int]]:
    """Like assess_health, for objects that do not carry appflow's label (Helm releases)."""

    async def fetch() -> dict[ObjectRef, Manifest]:
        found = await kube.get_many(objects)
        return {
            ObjectRef.of(m): live
            for m, live in zip(objects, found, strict=True)
            if live is not None
        }

    return await _poll_health(fetch, objects, wait=wait, timeout=timeout)


async def _poll_health(
    fetch: Callable[[], Awaitable[dict[ObjectRef, Manifest]]],
    objects: Sequence[Manifest],
    *,
    wait: bool,
    timeout: float,
) -> tuple[Health, tuple[FailingObject, ...], dict[str, int]]:
    deadline = time.monotonic() + timeout
    refs = [ObjectRef.of(m) for m in objects]
    while True:
        live = await fetch()
        healths = {ref: assess(live.get(ref)) for ref in refs}
        overall = aggregate(healths.values())
        settled = overall.status in (
            HealthStatus.HEALTHY,
            HealthStatus.DEGRADED,
            HealthStatus.SUSPENDED,
        )
        if not wait or settled or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    failing = tuple(
        FailingObject(object=str(ref), message=f"{h.status.value}: {h.message}")
        for ref, h in healths.items()
        if h.status is not HealthStatus.HEALTHY
    )
    # Fleet's and ZEDEDA's resource counts; modified is set by drift detection,
    # orphaned (kept on prune) and waitApplied by the sync that knows them.
    counts = {
        "desiredReady": len(refs),
        "ready": 0,
        "notReady": 0,
        "missing": 0,
        "unknown": 0,
        "modified": 0,
        "orphaned": 0,
        "waitApplied": 0,
    }
    for h in healths.values():
        key = {
            HealthStatus.HEALTHY: "ready",
            HealthStatus.MISSING: "missing",
            HealthStatus.UNKNOWN: "unknown",
        }.get(h.status, "notReady")
        counts[key] += 1
    if wait and overall.status is HealthStatus.PROGRESSING:
        overall = replace(overall, message=f"not healthy after {timeout:.0f}s: {overall.message}")
    return overall, failing, counts

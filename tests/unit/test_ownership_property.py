"""Property: over random add/sync/delete sequences of apps with overlapping objects, no app
ever deletes an object another app still declares, and no app takes one silently.

A pure model of one cluster: its objects (with their labels) and the apps'
inventories. Each step runs the same decisions, in the same order, as a sync
does on a real cluster: check ownership against the live objects and the
other apps' inventories; on a conflict write nothing; otherwise write the
inventory ahead, apply, update the inventories of the apps objects were taken
from, and prune only what may_prune allows on the object as it is at that
moment. tests/integration/engine/test_ownership.py runs a few such sequences
against real API servers.

"Declares" means what appflow records as an app's claim: the object is in the
desired state of the app's last successful sync and in its inventory. A sync
that was refused claims nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from appflow.model.inventory import Inventory
from appflow.model.objects import ANNOTATION_TAKE_OWNERSHIP, LABEL_APP, Manifest, ObjectRef
from appflow.model.ownership import check_ownership, owner_label, stamp, without_objects
from appflow.model.plan import Action, may_prune, plan_sync

APPS = ("web-a", "web-b", "web-c")
NAMES = ("settings", "web", "svc", "queue")
HAND = "ops"
"""The label a person gives an object by hand (kubectl label --overwrite)."""


def desired_object(name: str, *, claim: bool) -> Manifest:
    meta: dict[str, object] = {"name": name, "namespace": "shop"}
    if claim:
        meta["annotations"] = {ANNOTATION_TAKE_OWNERSHIP: "true"}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": name}}


def ref_of(name: str) -> ObjectRef:
    return ObjectRef(group="", kind="ConfigMap", namespace="shop", name=name)


@dataclass
class AppSource:
    names: frozenset[str]
    claims: frozenset[str] = frozenset()
    keep_resources: bool = False


@dataclass
class Cluster:
    objects: dict[ObjectRef, Manifest] = field(default_factory=dict)
    inventories: dict[str, Inventory] = field(default_factory=dict)


class OwnershipMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster = Cluster()
        self.sources: dict[str, AppSource] = {}
        self.declared: dict[str, frozenset[ObjectRef]] = {}
        """Per app, the objects of its last successful sync."""
        self.kept: set[ObjectRef] = set()
        """Objects left behind by apps deleted with keepResources, not adopted since."""

    # -- what a user does ------------------------------------------------------------

    @rule(
        app=st.sampled_from(APPS),
        names=st.frozensets(st.sampled_from(NAMES), min_size=1),
        claims=st.frozensets(st.sampled_from(NAMES), max_size=1),
        keep=st.booleans(),
    )
    def add_or_change(
        self, app: str, names: frozenset[str], claims: frozenset[str], keep: bool
    ) -> None:
        """Register APP, or push a new commit of it (objects overlap other apps' often)."""
        self.sources[app] = AppSource(names=names, claims=claims & names, keep_resources=keep)

    @rule(
        app=st.sampled_from(APPS),
        take_ownership=st.booleans(),
        hand_edit=st.none() | st.sampled_from(NAMES),
    )
    def sync(self, app: str, take_ownership: bool, hand_edit: str | None) -> None:
        """Sync APP; with HAND_EDIT, someone relabels that object while the sync applies."""
        source = self.sources.get(app)
        if source is None:
            return
        desired = [
            stamp(desired_object(n, claim=n in source.claims), app=app)
            for n in sorted(source.names)
        ]
        self._sync(app, desired, take_ownership=take_ownership, hand_edit=hand_edit)

    @rule(app=st.sampled_from(APPS))
    def delete(self, app: str) -> None:
        source = self.sources.pop(app, None)
        if source is None:
            return
        if source.keep_resources:
            # keepResources: the objects stay (still labelled), the inventory goes.
            gone = self.cluster.inventories.pop(app, None)
            self.kept |= set(gone.refs() if gone else ())
        else:
            self._sync(app, [], take_ownership=False)
            self.cluster.inventories.pop(app, None)
        self.declared.pop(app, None)

    # -- what a sync does, in the engine's order -------------------------------------

    def _sync(
        self,
        app: str,
        desired: list[Manifest],
        *,
        take_ownership: bool,
        hand_edit: str | None = None,
    ) -> None:
        cluster = self.cluster
        old = cluster.inventories.get(app, Inventory(app, ()))
        refs = [ObjectRef.of(m) for m in desired]
        live = {r: cluster.objects.get(r) for r in {*refs, *old.refs()}}
        check = check_ownership(
            app=app,
            desired=desired,
            live=live,
            inventories=cluster.inventories.values(),
            take_ownership=take_ownership,
        )
        if check.conflicts:
            return  # refused before any write
        plan = plan_sync(
            app=app,
            desired=desired,
            dry_run={r: m for r, m in zip(refs, desired, strict=True)},
            live=live,
            old_inventory=old,
            with_diffs=False,
        )
        new = Inventory.from_manifests(app, desired)
        cluster.inventories[app] = Inventory(app, old.entries + new.entries)
        for manifest in desired:
            ref = ObjectRef.of(manifest)
            before = owner_label(cluster.objects.get(ref))
            taken = {t.ref for t in check.transfers}
            assert before in (None, app) or ref in taken, (
                f"{app} overwrote {ref} owned by {before} without an opt-in"
            )
            cluster.objects[ref] = manifest
            self.kept.discard(ref)
        for owner, taken_refs in check.taken_from().items():
            if owner in cluster.inventories:
                cluster.inventories[owner] = without_objects(cluster.inventories[owner], taken_refs)
        edited = cluster.objects.get(ref_of(hand_edit)) if hand_edit else None
        if edited is not None:
            # `kubectl label appflow.dev/app=ops --overwrite` between the plan and the prune.
            meta = edited["metadata"]
            cluster.objects[ref_of(hand_edit or "")] = {
                **edited,
                "metadata": {**meta, "labels": {**meta.get("labels", {}), LABEL_APP: HAND}},
            }
        for change in plan.of(Action.PRUNE):
            current = cluster.objects.get(change.ref)  # re-read at the moment of deletion
            allowed, _ = may_prune(current, app)
            if allowed:
                self._deleted(app, change.ref)
                del cluster.objects[change.ref]
        cluster.inventories[app] = new
        self.declared[app] = frozenset(refs)

    def _deleted(self, app: str, ref: ObjectRef) -> None:
        label = owner_label(self.cluster.objects.get(ref))
        assert label == app, f"{app} deleted {ref}, which is labelled {label}"
        for other, declared in self.declared.items():
            if other == app:
                continue
            inventory = self.cluster.inventories.get(other)
            held = inventory is not None and ref in inventory.refs()
            assert not (ref in declared and held), (
                f"{app} deleted {ref}, which app {other} still declares"
            )

    # -- what must always hold -------------------------------------------------------

    @invariant()
    def inventories_never_share_an_object(self) -> None:
        seen: dict[ObjectRef, str] = {}
        for app, inventory in self.cluster.inventories.items():
            for ref in inventory.refs():
                assert ref not in seen, f"{ref} is in the inventories of {seen[ref]} and {app}"
                seen[ref] = app

    @invariant()
    def every_object_an_app_labels_is_in_its_inventory(self) -> None:
        # Apps deleted with keepResources leave labelled objects and no inventory; a
        # re-added app adopts them at its first sync.
        for ref, obj in self.cluster.objects.items():
            owner = owner_label(obj)
            if owner in self.declared and ref not in self.kept:
                assert ref in self.cluster.inventories[owner].refs(), (
                    f"{ref} is labelled {owner} but not in its inventory"
                )

    @invariant()
    def what_an_app_declares_is_on_the_cluster_as_its_own(self) -> None:
        for app, declared in self.declared.items():
            inventory = self.cluster.inventories[app]
            for ref in declared:
                if ref not in inventory.refs():
                    continue  # another app took it, by an explicit opt-in
                obj = self.cluster.objects.get(ref)
                assert obj is not None, f"{ref}, declared by {app}, was deleted"
                # Its own, unless relabelled by hand (then the app's next sync reports it).
                assert owner_label(obj) in (app, HAND), f"{ref}, declared by {app}, is not its own"


OwnershipMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=30)
test_ownership_sequences = OwnershipMachine.TestCase

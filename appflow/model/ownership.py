"""Ownership marks, who owns an object, and fingerprints of applied objects.

Every object appflow applies carries the label ``appflow.dev/app`` and the
annotation ``appflow.dev/owner``; prune deletes only objects that carry both
(see plan.owned_by). One object has one owning app: every app applies with the
same field manager, so server-side apply cannot tell two apps apart, and
:func:`check_ownership` is what stops one app from silently taking another's
objects (Helm's "owned by another release"). A fingerprint records what
appflow applied and what the API server kept of appflow's fields, values
included, so a later sync can tell, without a dry run, that nothing about an
object changed on either side; any doubt (another fingerprint, another uid,
other values) means a dry run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appflow.errors import OwnershipConflictError, Where
from appflow.model.inventory import Inventory
from appflow.model.objects import (
    ANNOTATION_OWNER,
    ANNOTATION_TAKE_OWNERSHIP,
    FIELD_MANAGER,
    LABEL_APP,
    Manifest,
    ObjectRef,
    is_shared,
)


def stamp(manifest: Manifest, *, app: str) -> Manifest:
    """MANIFEST with APP's ownership label and annotation, as a new object.

    Only the top level and ``metadata`` are copied; ``spec``, ``data`` and the
    rest are shared with MANIFEST (neither is ever modified in place). Every
    sync stamps every object: a deep copy of 500 objects cost a no-op sync a
    sixth of its time. A shared object (``appflow.dev/shared``) is owned by no
    app and comes back as it is.
    """
    if is_shared(manifest):
        return manifest
    meta = dict(manifest.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), LABEL_APP: app}
    meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_OWNER: app}
    return {**manifest, "metadata": meta}


def digest(data: Any) -> str:
    """sha256 of the canonical JSON of DATA."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def managed_fields_digest(
    live: Manifest, *, manager: str = FIELD_MANAGER, content: str = ""
) -> str:
    """Digest of the fields MANAGER owns by apply on LIVE, of their values (and of CONTENT,
    when given).

    The set of fields alone is not enough: another apply by the same manager (an
    appflow sync of other content that was never recorded: killed, or its store write
    refused) changes values and leaves the set as it was. With the values, equal
    digests prove that appflow's fields hold what they held when the digest was taken.
    When anyone else changes one of those fields, the API server moves its ownership
    away from MANAGER, so the digest changes too; status updates and fields of other
    managers leave it alone, which is what makes it a cheap and exact drift signal.

    A Secret's values never enter this digest (it is stored without a key): for Secrets
    the caller passes CONTENT, a keyed digest of their data
    (``model.redact.content_digest``). That also covers ``stringData``, which is
    write-only: a hand edit of the ``data`` it became moves nothing away from MANAGER.
    """
    entries = (live.get("metadata") or {}).get("managedFields") or []
    owned = [
        e.get("fieldsV1") or {}
        for e in entries
        if e.get("manager") == manager
        and e.get("operation") == "Apply"
        and not e.get("subresource")
    ]
    valued = live
    if live.get("kind") == "Secret" and live.get("apiVersion") == "v1":
        valued = {k: v for k, v in live.items() if k not in ("data", "stringData")}
    values = [owned_values(valued, fields) for fields in owned]
    return digest([owned, values, content] if content else [owned, values])[:16]


def owned_values(value: Any, fields: Mapping[str, Any]) -> Any:
    """The parts of VALUE named by FIELDS, a managedFields ``fieldsV1`` set.

    Keys follow the structured-merge-diff path elements: ``f:name`` a field, ``k:{...}``
    the list item with those key fields, ``v:value`` a set member, ``i:N`` a list index,
    ``.`` the node itself. An empty set below a key means the whole value there; a node
    owned only by ``.`` contributes its presence, not fields other managers own.
    """
    picked: dict[str, Any] = {}
    for key, below in fields.items():
        if key == ".":
            continue
        child = _path_element(value, key)
        if not below:
            picked[key] = child
        elif set(below) == {"."}:
            picked[key] = child is not None
        else:
            picked[key] = owned_values(child, below)
    return picked


def _path_element(value: Any, key: str) -> Any:
    kind, _, text = key.partition(":")
    if kind == "f":
        return value.get(text) if isinstance(value, dict) else None
    if not isinstance(value, list):
        return None
    if kind == "i":
        return value[int(text)] if text.isdigit() and int(text) < len(value) else None
    try:
        wanted = json.loads(text)
    except ValueError:
        return None
    if kind == "v":
        return wanted if wanted in value else None
    if kind == "k" and isinstance(wanted, dict):
        for item in value:
            if isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items()):
                return item
    return None


def fingerprint(desired_digest: str, live: Manifest, *, content: str = "") -> str:
    """What to remember about an object after applying it."""
    uid = str((live.get("metadata") or {}).get("uid", ""))
    return f"{desired_digest[:16]}:{managed_fields_digest(live, content=content)}:{uid}"


def unchanged_since(
    recorded: str | None, desired_digest: str, live: Manifest | None, *, content: str = ""
) -> bool:
    """True when LIVE is the object appflow applied from the same desired content, untouched."""
    return (
        recorded is not None
        and live is not None
        and recorded == fingerprint(desired_digest, live, content=content)
    )


def untouched_since(recorded: str, live: Manifest, *, content: str = "") -> bool:
    """True when nobody changed appflow's fields of LIVE since RECORDED was taken.

    Unlike unchanged_since, the desired content is not compared: drift
    detection asks only whether the live object moved.
    """
    desired_part = recorded.split(":", 1)[0]
    return recorded == fingerprint(desired_part, live, content=content)


def only_imperative(live: Manifest, managers: list[str]) -> bool:
    """True when every one of MANAGERS touched LIVE only by Update (never by Apply).

    Update-only managers are hand edits (kubectl edit, scale, patch) and
    imperative clients: GitOps takes their changes to appflow's fields back.
    A manager that applies declaratively is another tool that claims the field;
    taking it over silently would start a tug of war, so that is reported.
    """
    if not managers:
        return False
    entries = (live.get("metadata") or {}).get("managedFields") or []
    for name in managers:
        ops = {e.get("operation") for e in entries if e.get("manager") == name}
        if not ops or ops != {"Update"}:
            return False
    return True


# -- one owner per object ---------------------------------------------------------


def owner_label(obj: Manifest | None) -> str | None:
    """The app OBJ's ``appflow.dev/app`` label names, or None."""
    if obj is None:
        return None
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_APP)
    return str(value) if value else None


def claims_ownership(obj: Manifest | None) -> bool:
    """True when OBJ is annotated ``appflow.dev/take-ownership: "true"``."""
    if obj is None:
        return False
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TAKE_OWNERSHIP)
    return str(value).strip().lower() == "true" if value is not None else False


@dataclass(frozen=True)
class OwnershipConflict:
    """A desired object that another app owns: the sync that wants it writes nothing."""

    ref: ObjectRef
    owners: tuple[str, ...]
    """The other apps: the one its label names first, then those whose inventory holds it."""
    why: str
    contested: bool = False
    """Both the owner and the newcomer mark it take-ownership: moving it would never settle."""

    def error(self, *, app: str, cluster: str | None = None) -> OwnershipConflictError:
        owners = " and ".join(f"app {o}" for o in self.owners)
        if self.contested:
            return OwnershipConflictError(
                f"owned by {owners} ({self.why}); both {owners} and app {app} mark it "
                f'{ANNOTATION_TAKE_OWNERSHIP}: "true", so neither may take it from the other',
                where=Where(app=app, cluster=cluster, object=str(self.ref)),
                hint=f"remove the annotation from one app's source; "
                f"`appflow sync {app} --take-ownership` moves it to app {app} once",
            )
        return OwnershipConflictError(
            f"owned by {owners} ({self.why}); app {app} cannot take it over: "
            "one object has one owning app",
            where=Where(app=app, cluster=cluster, object=str(self.ref)),
            hint=f"keep the object in one app's source; to move it to app {app}, annotate it "
            f'{ANNOTATION_TAKE_OWNERSHIP}: "true" there or run '
            f"`appflow sync {app} --take-ownership`",
        )


@dataclass(frozen=True)
class Transfer:
    """A desired object the syncing app takes over, and the apps it is taken from."""

    ref: ObjectRef
    previous: tuple[str, ...]


@dataclass(frozen=True)
class OwnershipCheck:
    """What one sync of one app on one cluster may do with objects other apps own."""

    conflicts: tuple[OwnershipConflict, ...] = ()
    transfers: tuple[Transfer, ...] = ()

    def taken_from(self) -> dict[str, tuple[ObjectRef, ...]]:
        """Previous owner -> the objects this sync takes from it, sorted."""
        out: dict[str, list[ObjectRef]] = {}
        for transfer in self.transfers:
            for owner in transfer.previous:
                out.setdefault(owner, []).append(transfer.ref)
        return {owner: tuple(sorted(refs)) for owner, refs in sorted(out.items())}


def check_ownership(
    *,
    app: str,
    desired: Sequence[Manifest],
    live: Mapping[ObjectRef, Manifest | None],
    inventories: Iterable[Inventory] = (),
    take_ownership: bool = False,
) -> OwnershipCheck:
    """Which of APP's DESIRED objects other apps own on one cluster, and which APP may take.

    An object belongs to another app when its live label ``appflow.dev/app``
    names that app, or when it sits in that app's INVENTORY (an app that is
    about to create it, or lost it by hand). An object labelled as APP's is
    APP's, whatever a stale inventory of another app says: prune re-reads the
    label before it deletes, so a stale entry is harmless. Objects nobody owns
    (made by hand, or by another tool) are adopted, as before. Shared objects
    (``appflow.dev/shared``) belong to no app and are never a conflict.

    Taking an owned object needs an opt-in: TAKE_OWNERSHIP (a user's
    ``--take-ownership``, once), or ``appflow.dev/take-ownership: "true"`` on
    the desired object. The annotation does not take an object whose live
    copy carries it too: that copy was applied by its owner's source, and two
    sources that both claim one object would hand it back and forth on every
    sync. After a transfer the live copy carries the new owner's annotation,
    so the old owner's source cannot claim it back by annotation either.
    """
    holders: dict[ObjectRef, list[str]] = {}
    for inventory in inventories:
        if inventory.app == app:
            continue
        for ref in inventory.refs():
            holders.setdefault(ref, []).append(inventory.app)
    conflicts: list[OwnershipConflict] = []
    transfers: list[Transfer] = []
    for manifest in desired:
        if is_shared(manifest):
            continue
        ref = ObjectRef.of(manifest)
        current = live.get(ref)
        label = owner_label(current)
        if label == app:
            continue
        owners = ([label] if label else []) + sorted(set(holders.get(ref, ())) - {label})
        if not owners:
            continue
        if take_ownership:
            transfers.append(Transfer(ref, tuple(owners)))
            continue
        why = _why_owned(label, owners)
        if claims_ownership(manifest):
            if label and claims_ownership(current):
                conflicts.append(OwnershipConflict(ref, tuple(owners), why, contested=True))
            else:
                transfers.append(Transfer(ref, tuple(owners)))
            continue
        conflicts.append(OwnershipConflict(ref, tuple(owners), why))
    return OwnershipCheck(conflicts=tuple(conflicts), transfers=tuple(transfers))


def _why_owned(label: str | None, owners: list[str]) -> str:
    parts = [f"label {LABEL_APP}={label}"] if label else []
    held = [o for o in owners if o != label]
    if held:
        parts.append("in the inventory of " + ", ".join(f"app {o}" for o in held))
    return "; ".join(parts)


def without_objects(inventory: Inventory, refs: Iterable[ObjectRef]) -> Inventory:
    """INVENTORY without REFS: a previous owner's inventory once its objects were taken."""
    gone = set(refs)
    return Inventory(inventory.app, tuple(e for e in inventory.entries if e.ref not in gone))

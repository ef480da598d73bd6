"""The Inventory: the exact set of objects an AppFlow owns on one cluster.

Prune works only from it: what was in the last inventory and is no longer
desired is a prune candidate (:func:`prune_set`), and nothing outside it is
ever considered for deletion. An object whose deletion failed goes back into
the next inventory (:func:`with_failed_deletes`), so that a later sync tries
again instead of forgetting it on the cluster.

Stored form (:meth:`Inventory.to_data`), for the ``data`` of a ConfigMap::

    format: "2"
    entries: |
      [
      {"id": "shop_web_apps_Deployment", "v": "apps/v1"},
      ...
      ]

One JSON document with one entry per line rather than one ConfigMap key per
object, because ConfigMap keys only allow ``[-._a-zA-Z0-9]`` and object names
may contain other characters (ClusterRoles named ``system:...``). Entries are
sorted, so the same inventory always serialises to the same bytes and an
unchanged inventory is never rewritten.

Format "2" escapes '_' and '%' inside the fields of an id (see ObjectRef.encode);
format "1" (ids not escaped) is still read, and rewritten as "2" by the next sync.
An appflow that knows only "1" refuses to read "2" rather than misread it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from appflow.errors import PruneError, StoreError, Where
from appflow.model.objects import Manifest, ObjectRef, is_shared
from appflow.model.order import deletion_order

INVENTORY_FORMAT = "2"
READABLE_FORMATS = ("1", INVENTORY_FORMAT)


@dataclass(frozen=True, order=True)
class InventoryEntry:
    """One owned object: its identity and the apiVersion it was applied with."""

    ref: ObjectRef
    api_version: str

    def to_line(self) -> str:
        """'<apiVersion> <id>': the entry as one line of text (the store's mirror, the API)."""
        return f"{self.api_version} {self.ref.encode()}"

    @classmethod
    def from_line(cls, line: str) -> InventoryEntry:
        """Read back what :meth:`to_line` wrote; ValueError when it is not that."""
        api_version, _, encoded = line.partition(" ")
        return cls(ObjectRef.decode(encoded), api_version)


@dataclass(frozen=True)
class Inventory:
    """The objects ``app`` owns on one cluster, sorted by identity, one entry per object.

    Construction sorts the entries and keeps one per object; when an object
    appears twice, the later entry wins (its apiVersion is the one applied last).
    """

    app: str
    entries: tuple[InventoryEntry, ...]

    def __post_init__(self) -> None:
        by_ref = {entry.ref: entry for entry in self.entries}
        object.__setattr__(self, "entries", tuple(sorted(by_ref.values())))

    @classmethod
    def from_manifests(cls, app: str, manifests: Iterable[Manifest]) -> Inventory:
        """The inventory of MANIFESTS; shared objects are owned by no app and left out."""
        entries = tuple(
            InventoryEntry(ObjectRef.of(m), str(m.get("apiVersion", "")))
            for m in manifests
            if not is_shared(m)
        )
        return cls(app, entries)

    def refs(self) -> tuple[ObjectRef, ...]:
        return tuple(entry.ref for entry in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_data(self) -> dict[str, str]:
        """The inventory as ConfigMap data (see the module doc for the format)."""
        lines = [
            json.dumps({"id": e.ref.encode(), "v": e.api_version}, sort_keys=True)
            for e in self.entries
        ]
        body = "[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n"
        return {"format": INVENTORY_FORMAT, "entries": body}

    @classmethod
    def from_data(cls, app: str, data: Mapping[str, str]) -> Inventory:
        """Read back what :meth:`to_data` wrote; StoreError when it is not that."""
        fmt = data.get("format")
        if fmt not in READABLE_FORMATS:
            raise _unreadable(app, f"unknown inventory format {fmt!r}")
        try:
            raw: Any = json.loads(data.get("entries", ""))
        except json.JSONDecodeError as err:
            raise _unreadable(app, f"entries are not JSON: {err}") from err
        if not isinstance(raw, list):
            raise _unreadable(app, "entries are not a JSON list")
        entries: list[InventoryEntry] = []
        for index, item in enumerate(raw):
            if not (
                isinstance(item, dict)
                and isinstance(item.get("id"), str)
                and isinstance(item.get("v"), str)
            ):
                raise _unreadable(app, f"entry {index} is not {{'id': ..., 'v': ...}}: {item!r}")
            try:
                ref = ObjectRef.decode(item["id"])
            except ValueError as err:
                raise _unreadable(app, f"entry {index}: {err}") from err
            entries.append(InventoryEntry(ref, item["v"]))
        return cls(app, tuple(entries))


def entries_from_lines(app: str, lines: Iterable[str]) -> tuple[InventoryEntry, ...]:
    """The entries written by :meth:`InventoryEntry.to_line`, in the order given."""
    entries, unreadable = readable_entries(lines)
    if unreadable:
        raise _unreadable(app, f"bad mirrored entry {unreadable[0]!r}")
    return entries


def readable_entries(lines: Iterable[str]) -> tuple[tuple[InventoryEntry, ...], tuple[str, ...]]:
    """The entries of LINES that read back, and the lines that do not.

    For readers that must go on past a damaged entry: one unreadable line of one app
    must not hide every other app's inventory (drift detection, the status grid).
    """
    entries: list[InventoryEntry] = []
    unreadable: list[str] = []
    for line in lines:
        try:
            entries.append(InventoryEntry.from_line(line))
        except ValueError:
            unreadable.append(line)
    return tuple(entries), tuple(unreadable)


def in_current_format(data: Mapping[str, str]) -> bool:
    """Whether ConfigMap DATA is in the format this appflow writes (else a sync rewrites it)."""
    return data.get("format") == INVENTORY_FORMAT


def union(first: Inventory | None, second: Inventory | None, *, app: str) -> Inventory:
    """Every object either inventory names; SECOND's apiVersion wins for objects in both.

    Recovery after a crash: the cluster's copy and the store's mirror are both written
    ahead of any change, and either may be lost or behind; what either names may exist.
    """
    entries = (first.entries if first else ()) + (second.entries if second else ())
    return Inventory(app, entries)


def _unreadable(app: str, detail: str) -> StoreError:
    return StoreError(
        f"the inventory could not be read: {detail}",
        where=Where(app=app),
        hint="nothing is pruned until a sync writes a valid inventory",
    )


def prune_set(old: Inventory, new: Inventory) -> tuple[InventoryEntry, ...]:
    """Entries of ``old`` whose object is not in ``new``, in deletion order.

    Objects are compared by identity only: the same object applied with a new
    apiVersion (autoscaling/v2beta2 -> v2) is not a prune candidate.
    """
    if old.app != new.app:
        # Comparing two apps' inventories would offer one app's objects for deletion by another.
        raise PruneError(
            f"refusing to compare the inventory of app {old.app} with that of app {new.app}",
            where=Where(app=new.app),
        )
    keep = set(new.refs())
    gone = {entry.ref: entry for entry in old.entries if entry.ref not in keep}
    return tuple(gone[ref] for ref in deletion_order(gone))


def with_failed_deletes(new: Inventory, failed: Iterable[InventoryEntry]) -> Inventory:
    """``new`` plus the entries whose deletion failed, so a later sync retries them.

    An entry already in ``new`` keeps the apiVersion ``new`` has for it.
    """
    present = set(new.refs())
    extra = tuple(entry for entry in failed if entry.ref not in present)
    return Inventory(new.app, new.entries + extra)

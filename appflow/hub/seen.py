"""What a controller replica's own watches and writes show of the hub's objects, read in place
of a GET (issue 12: a sync read its AppFlow about 10 times, each a request to the API server).

A watch is ordered but lags; a GET is linearizable. A copy from here stands in for a GET only
when it is as good for what the replica decides:

- the kind's watch is running (it listed, and has not failed since): a watch that stopped
  lags without bound;
- the replica read the object with a GET since it last gained or lost the object's key (an
  AppFlow's, a GitRepo's): the previous owner stopped writing before this replica may act
  (fencing), but its last writes may still be on their way through the watch; the GET sees
  them, and nothing older replaces what it read;
- what the replica writes itself is kept from the write's answer, so a read right after its
  own write sees it (a revision just recorded, then staged) before the watch shows it;
- of two copies the newer wins, by resourceVersion: Kubernetes lets clients compare the
  versions of one resource as integers (KEP-5504); a version that is not one is never
  compared, and the object is read with a GET.

Others' writes (the CLI's spec and requests, an agent's, another replica's GitRepo status)
arrive by the watch, whose event also queues the work that reads them: what that work reads
is at least what queued it. A conditional write from a copy that was stale fails with a
conflict, and ``forget`` makes the next read a GET.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Collection, Iterable
from typing import Any

Manifest = dict[str, Any]
Key = tuple[str, str, str]
"""(kind, namespace, name)"""


def version_of(obj: Manifest) -> int | None:
    """OBJ's resourceVersion as an integer (KEP-5504), None when it is not one."""
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    if not text.isdigit() or text.startswith("0"):
        return None
    return int(text)


def key_of(obj: Manifest) -> Key:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


class Seen:
    """The newest copy of each object of KINDS this replica saw, and which may be read."""

    def __init__(self, kinds: Collection[str]) -> None:
        self.kinds = frozenset(kinds)
        self._lock = threading.Lock()
        self._objects: dict[Key, Manifest] = {}
        self._live: set[str] = set()
        self._confirmed: set[Key] = set()
        self._forgotten: dict[Key, int] = {}

    # -- fed by the watches ----------------------------------------------------------------------

    def listed(self, kind: str, objects: Iterable[Manifest]) -> None:
        """KIND's watch listed OBJECTS (all of KIND) and runs from their list on."""
        with self._lock:
            held = {k for k in self._objects if k[0] == kind}
            for obj in objects:  # a list's items carry their kind (KubeCluster adds it)
                held.discard(key_of(obj))
                self._keep(obj)
            for gone in held:
                # Deleted while no watch ran (or made after the list: then read again).
                self._drop(gone)
            self._live.add(kind)

    def stopped(self, kind: str) -> None:
        """KIND's watch failed: until it lists again, nothing of KIND is read from here."""
        with self._lock:
            self._live.discard(kind)

    def observe(self, event: str, obj: Manifest) -> None:
        """A watch event."""
        if obj.get("kind") not in self.kinds:
            return
        with self._lock:
            if event == "DELETED":
                self._drop(key_of(obj))
            else:
                self._keep(obj)

    # -- fed by the store ----------------------------------------------------------------------

    def wrote(self, obj: Manifest) -> None:
        """OBJ as the API server answered this replica's write of it."""
        if obj.get("kind") in self.kinds:
            with self._lock:
                self._keep(obj)

    def epoch(self, kind: str, namespace: str, name: str) -> int:
        """How often the object was forgotten: taken before a GET and given to ``read``."""
        with self._lock:
            return self._forgotten.get((kind, namespace, name), 0)

    def read(
        self, kind: str, namespace: str, name: str, obj: Manifest | None, *, epoch: int
    ) -> None:
        """What a GET of the object answered: from now on it may be read from here, unless
        it was forgotten while the GET ran (EPOCH: ``epoch`` before it; a GET sent before
        the key moved may not have seen the previous owner's last writes)."""
        if kind not in self.kinds:
            return
        key = (kind, namespace, name)
        with self._lock:
            if obj is None:
                self._drop(key)
                return
            if self._keep(obj) and self._forgotten.get(key, 0) == epoch:
                self._confirmed.add(key)

    def deleted(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._drop((kind, namespace, name))

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """The next read of the object is a GET (its key moved; a write from a copy of it
        conflicted)."""
        key = (kind, namespace, name)
        with self._lock:
            self._confirmed.discard(key)
            self._forgotten[key] = self._forgotten.get(key, 0) + 1

    def get(self, kind: str, namespace: str, name: str) -> Manifest | None:
        """A copy of the object, or None when a GET must answer (absence is never kept: a
        deleted object's read is a GET)."""
        key = (kind, namespace, name)
        with self._lock:
            if kind not in self._live or key not in self._confirmed:
                return None
            found = self._objects.get(key)
        if found is None:
            return None
        # The caller's to change (a transaction merges its pending status into it).
        return copy.deepcopy(found)

    # -- under the lock ----------------------------------------------------------------------

    def _keep(self, obj: Manifest) -> bool:
        """Keep OBJ unless what is kept is newer; False when its version cannot be compared
        (it is then not kept, and the object is not confirmed)."""
        key = key_of(obj)
        version = version_of(obj)
        if version is None:
            self._drop(key)
            return False
        held = self._objects.get(key)
        held_version = version_of(held) if held is not None else None
        if held_version is None or version >= held_version:
            self._objects[key] = obj
        return True

    def _drop(self, key: Key) -> None:
        self._objects.pop(key, None)
        self._confirmed.discard(key)

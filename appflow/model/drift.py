"""Drift: which of an app's objects changed on a cluster since appflow applied them, and where.

Pure. An object drifted when the fingerprint recorded at apply time no longer
matches the live object (see :func:`~appflow.model.ownership.untouched_since`):
someone else took one of appflow's fields, or deleted and re-created it. That
test is exact and cheap; the field paths that say *where* it drifted are then
found by comparing what appflow applied with the live object, restricted to
the fields appflow set (fields the server or other managers add are not
drift). A Deployment whose objects drifted is ``Modified``, as Fleet shows it
(``appflow.model.status.deployment_state``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appflow.model.diff import changed_paths, normalize
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.ownership import stamp, untouched_since

_SHOWN = 3
"""Drifted objects named in a Deployment's message; the rest are counted."""


@dataclass(frozen=True)
class Drift:
    """One object whose appflow-owned fields changed on the cluster."""

    ref: ObjectRef
    paths: tuple[str, ...] = ()
    """The changed field paths, e.g. ``spec.replicas``; empty when only the owner of a
    field moved (its value is the same) or the object was re-created."""

    def describe(self) -> str:
        return f"{self.ref} changed: {', '.join(self.paths) or 'fields appflow owns'}"


def drifted_paths(desired: Manifest, live: Manifest, *, app: str) -> tuple[str, ...]:
    """Field paths where LIVE differs from DESIRED as APP applied it, among the fields it sets."""
    mine = normalize(stamp(desired, app=app))
    return tuple(changed_paths(mine, _project(normalize(live), mine)))


def _project(live: Any, shape: Any) -> Any:
    """LIVE restricted to the keys present in SHAPE (what appflow set), recursively."""
    if isinstance(shape, dict) and isinstance(live, dict):
        return {k: _project(live[k], v) for k, v in shape.items() if k in live}
    if isinstance(shape, list) and isinstance(live, list) and len(shape) == len(live):
        return [_project(lv, sv) for lv, sv in zip(live, shape, strict=True)]
    return live


def find_drift(
    *,
    app: str,
    desired: Sequence[Manifest],
    live: Mapping[ObjectRef, Manifest],
    fingerprints: Mapping[str, str],
    content: Callable[[Manifest], str] = lambda _: "",
) -> tuple[Drift, ...]:
    """APP's DESIRED objects that drifted on one cluster, in the order given.

    FINGERPRINTS are those recorded at apply time (by encoded ObjectRef); an
    object without one was never applied by appflow as it is now and cannot
    have drifted. CONTENT gives what a fingerprint adds for a live object (a
    keyed digest of a Secret's data), as at apply time. A missing object is not
    drift here: health reports it Missing.
    """
    found: list[Drift] = []
    for manifest in desired:
        ref = ObjectRef.of(manifest)
        current = live.get(ref)
        recorded = fingerprints.get(ref.encode())
        if (
            current is None
            or recorded is None
            or untouched_since(recorded, current, content=content(current))
        ):
            continue
        found.append(Drift(ref, drifted_paths(manifest, current, app=app)))
    return tuple(found)


def drift_message(drift: Sequence[Drift]) -> str:
    """One line naming the drifted objects and their paths (the first few)."""
    text = "; ".join(d.describe() for d in drift[:_SHOWN])
    if len(drift) > _SHOWN:
        text += f"; and {len(drift) - _SHOWN} more objects changed"
    return text

"""Health: how an app's objects are doing on one cluster, optionally waiting until settled.

The per-kind checks are pure (``appflow.model.health``); this stage reads the live
objects (by the app's label, or one by one for objects Helm owns) and folds them into
the aggregate, the failing objects and Fleet's resource counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from appflow.engine.stages.live import read_live
from appflow.engine.stages.types import Prepared
from appflow.kube.client import KubeCluster
from appflow.model.health import Health, HealthStatus, aggregate, assess
from appflow.model.objects import Manifest, ObjectRef, is_shared
from appflow.model.records import FailingObject, ResourceCounts
from appflow.model.status import resource_counts

Assessment = tuple[Health, tuple[FailingObject, ...], ResourceCounts]
"""The aggregate health, the objects that are not healthy (with why), the counts."""

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


async def live_after_apply(
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
) -> Assessment:
    """Health of APP's objects on KUBE (read by its label); with WAIT, poll until settled.

    SEEN, when given, is APP's live objects as just read: the first check uses
    it instead of reading them again. Shared objects (the app's namespace) are no
    app's, carry no app label, and are left out.
    """
    objects = [m for m in objects if not is_shared(m)]
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
) -> Assessment:
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
) -> Assessment:
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
    counts = resource_counts(h.status for h in healths.values())
    if wait and overall.status is HealthStatus.PROGRESSING:
        overall = replace(overall, message=f"not healthy after {timeout:.0f}s: {overall.message}")
    return overall, failing, counts

"""Health: how an app's objects are doing on one cluster, optionally waiting until settled.

The per-kind checks are pure (``appflow.model.health``); this stage reads the live
objects (by the app's label, or one by one for objects Helm owns) and folds them into
the aggregate, the failing objects and Fleet's resource counts.

An object's assessment depends on nothing but the object, and the API server gives every
stored state of an object its own resourceVersion: an assessment is kept per client by
(uid, resourceVersion) and reused while the object read back has both unchanged
(``HealthMemo``). An object without them (not read from the server) is assessed each time.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
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


class HealthMemo:
    """Assessments of one cluster's objects by (uid, resourceVersion), least recently used
    first out."""

    MAX_OBJECTS = 50_000
    """About 10 MB of keys and Health: a fleet's objects on one cluster, several times."""

    def __init__(self) -> None:
        self._assessed: OrderedDict[tuple[str, str], Health] = OrderedDict()
        self.answered = 0
        """Assessments this memo answered without assessing."""

    def assess(self, live: Manifest | None) -> Health:
        """``assess(LIVE)``, from the memo when LIVE was assessed at this version."""
        meta = live.get("metadata") if isinstance(live, dict) else None
        uid = meta.get("uid") if isinstance(meta, dict) else None
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if not (isinstance(uid, str) and uid and isinstance(version, str) and version):
            return assess(live)
        key = (uid, version)
        known = self._assessed.get(key)
        if known is not None:
            self._assessed.move_to_end(key)
            self.answered += 1
            return known
        health = self._assessed[key] = assess(live)
        if len(self._assessed) > self.MAX_OBJECTS:
            self._assessed.popitem(last=False)
        return health


_MEMOS: weakref.WeakKeyDictionary[KubeCluster, HealthMemo] = weakref.WeakKeyDictionary()
"""Per client: a client is one cluster's (a changed kubeconfig makes a new one), and the
memo goes with it."""


def health_memo(kube: KubeCluster) -> HealthMemo:
    """The assessments kept for KUBE's objects."""
    memo = _MEMOS.get(kube)
    if memo is None:
        memo = _MEMOS[kube] = HealthMemo()
    return memo


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
    live = {
        ref: obj for ref, obj in prepared.live.items() if obj is not None and ref not in applied
    }
    if not applied:
        return live
    live.update(applied)
    by_ref = dict(zip(prepared.refs, prepared.objects, strict=True))
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
    refs: Sequence[ObjectRef] | None = None,
) -> Assessment:
    """Health of APP's objects on KUBE (read by its label); with WAIT, poll until settled.

    SEEN, when given, is APP's live objects as just read: the first check uses
    it instead of reading them again. REFS, when given, is the ObjectRef of each of
    OBJECTS (a prepared sync has them). Shared objects (the app's namespace) are no
    app's, carry no app label, and are left out.
    """
    known = refs if refs is not None else [ObjectRef.of(m) for m in objects]
    owned = [(ref, m) for ref, m in zip(known, objects, strict=True) if not is_shared(m)]
    kinds = {(str(m.get("apiVersion")), str(m.get("kind"))) for _, m in owned}
    first = seen

    async def fetch() -> dict[ObjectRef, Manifest]:
        nonlocal first
        if first is not None:
            live, first = first, None
            return live
        live, _ = await read_live(kube, app, kinds)
        return live

    return await _poll_health(kube, fetch, [ref for ref, _ in owned], wait=wait, timeout=timeout)


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

    refs = [ObjectRef.of(m) for m in objects]
    return await _poll_health(kube, fetch, refs, wait=wait, timeout=timeout)


async def _poll_health(
    kube: KubeCluster,
    fetch: Callable[[], Awaitable[dict[ObjectRef, Manifest]]],
    refs: Sequence[ObjectRef],
    *,
    wait: bool,
    timeout: float,
) -> Assessment:
    deadline = time.monotonic() + timeout
    memo = health_memo(kube)
    while True:
        live = await fetch()
        healths = {ref: memo.assess(live.get(ref)) for ref in refs}
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

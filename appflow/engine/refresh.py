"""Re-assess Deployments from their clusters: health and drift, and record what changed.

Nothing is applied: the objects of the applied revision are read back and judged.

- ``refresh_health``: one Deployment (the daemon does this for Deployments that are not
  Ready yet, dependency checks for the apps they wait for).
- ``observe``: what ``appflow status`` and ``appflow app show`` show, for many apps at
  once (``status_view``: the grid a running `appflow serve` answers `appflow status` with). Each cluster is read concurrently, one LIST per kind for every app there, and
  within a time bound: a cluster that does not answer in time shows its recorded state
  as not refreshed, and holds back no other.

A Deployment whose objects changed on the cluster since appflow applied them (a hand
edit of appflow's fields, a deletion and re-creation) is ``Modified``, and its message
names the drifted field paths (``appflow.model.drift``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from appflow.engine.parts import EngineParts
from appflow.engine.stages.health import Assessment, assess_health, assess_objects
from appflow.engine.stages.live import secret_content
from appflow.errors import AppflowError, ClusterError, MissingKindError, NotFoundError
from appflow.kube.client import KubeCluster
from appflow.model.drift import drift_message, find_drift
from appflow.model.hooks import main_objects
from appflow.model.objects import LABEL_APP, Manifest, ObjectRef, is_shared
from appflow.model.records import ClusterRecord, DeploymentRecord, DeploymentState
from appflow.model.status import deployment_state, status_grid
from appflow.store import Store

_KEPT_STATES: frozenset[DeploymentState] = frozenset(
    {"ErrApplied", "WaitApplied", "OutOfSync", "Orphaned"}
)
"""States health does not override: they say what the last sync did or did not do."""


@dataclass(frozen=True, kw_only=True)
class Observation:
    """One Deployment as a status command shows it."""

    record: DeploymentRecord
    refreshed: bool
    """Read from its cluster just now; False: the recorded state (the cluster did not answer)."""


@dataclass(frozen=True, kw_only=True)
class _Deployed:
    """A Deployment and the objects of its applied revision on its cluster."""

    record: DeploymentRecord
    objects: tuple[Manifest, ...] | None
    """None: there is nothing to judge it by (nothing applied, or no render recorded)."""

    @property
    def judged(self) -> bool:
        """Whether reading the cluster can tell something new about it."""
        return self.objects is not None

    @property
    def desired(self) -> tuple[Manifest, ...]:
        return self.objects or ()


def only_render(rendered: Mapping[str, Sequence[Manifest]]) -> Sequence[Manifest] | None:
    """The content every cluster of RENDERED got, when they all got the same (None: none,
    or several). A cluster that joined a revision with content the others already had (the
    revision's digest covers contents, not clusters) got one of them: with only one, that."""
    renders = iter(rendered.values())
    first = next(renders, None)
    if first is None or any(other != first for other in renders):
        return None
    return first


def _deployed(store: Store, record: DeploymentRecord) -> _Deployed:
    if record.applied_revision is None or record.state in _KEPT_STATES:
        return _Deployed(record=record, objects=None)
    rendered = store.get_revision(record.app, record.applied_revision).rendered
    found: Sequence[Manifest] | None = rendered.get(record.cluster)
    if found is None and record.inventory:
        # The revision holds no render for this cluster: it joined with content other
        # clusters already had (a cluster dependsOn held when the revision was recorded,
        # one registered later). Judged by that content when the revision holds only one.
        found = only_render(rendered)
        if found is None:
            return _Deployed(record=record, objects=None)
    # Hooks are not part of an app's health or drift (they ran, or will, at their moments).
    return _Deployed(record=record, objects=main_objects(found or ()))


def _judged(
    item: _Deployed, assessment: Assessment, live: Mapping[ObjectRef, Manifest]
) -> DeploymentRecord:
    """ITEM's record with the state, message and counts ASSESSMENT and LIVE give it."""
    health, failing, counts = assessment
    record = item.record
    drift = (
        ()
        if record.release is not None
        else find_drift(
            app=record.app,
            desired=[m for m in item.desired if not is_shared(m)],
            live=live,
            fingerprints=record.applied,
            content=secret_content,
        )
    )
    return replace(
        record,
        state=deployment_state(health.status, modified=bool(drift)),
        message=drift_message(drift) if drift else health.message,
        failing=failing,
        resource_counts=replace(counts, modified=len(drift)),
    )


async def _record(
    parts: EngineParts, before: DeploymentRecord, after: DeploymentRecord
) -> DeploymentRecord:
    keys = ("state", "message", "failing", "resource_counts")
    if all(getattr(before, k) == getattr(after, k) for k in keys):
        return before
    return await parts.recorder.deployment(after)


async def refresh_health(parts: EngineParts, *, app: str, cluster: str) -> DeploymentRecord | None:
    """The Deployment of APP on CLUSTER with its health and drift assessed now (None: not
    deployed).

    A Deployment whose last sync failed or that waits for something keeps its state:
    health says nothing about objects that were not applied.
    """
    found = await asyncio.to_thread(_read_one, parts.store, app, cluster)
    if found is None:
        return None
    item, where = found
    if not item.judged or where is None:
        return item.record
    kube = parts.connections.kube(where)
    try:
        if item.record.release is not None:
            assessment, live = await assess_objects(kube, item.desired), {}
        else:
            live = await _live_of(kube, item.desired, app=app)
            assessment = await assess_health(kube, app, item.desired, seen=live)
    except ClusterError as err:
        return replace(item.record, state="Unknown", message=str(err))
    return await _record(parts, item.record, _judged(item, assessment, live))


def _read_one(
    store: Store, app: str, cluster: str
) -> tuple[_Deployed, ClusterRecord | None] | None:
    try:
        record = store.get_deployment(app, cluster)
    except NotFoundError:
        return None
    item = _deployed(store, record)
    return item, store.get_cluster(cluster) if item.judged else None


async def _live_of(
    kube: KubeCluster, objects: Sequence[Manifest], *, app: str | None, timeout: float | None = None
) -> dict[ObjectRef, Manifest]:
    """The labelled live objects of the kinds of OBJECTS (one LIST per kind): APP's, or,
    with APP None, every app's (the caller sorts them by their label)."""
    kinds = sorted(
        {(str(m.get("apiVersion")), str(m.get("kind"))) for m in objects if not is_shared(m)}
    )
    selector = f"{LABEL_APP}={app}" if app else LABEL_APP
    if kinds:
        # Discovery first, alone: the LISTs share what it learns, and a cluster that does
        # not answer costs one timed-out request, not one per kind in waiting threads.
        with contextlib.suppress(MissingKindError):
            await kube.info(*kinds[0])
    found = await asyncio.gather(
        *(kube.list_objects(v, k, label_selector=selector, timeout=timeout) for v, k in kinds),
        return_exceptions=True,
    )
    live: dict[ObjectRef, Manifest] = {}
    for items in found:
        if isinstance(items, AppflowError) and not isinstance(items, ClusterError):
            continue  # a kind the cluster no longer serves: its objects are Missing
        if isinstance(items, BaseException):
            raise items
        for item in items:
            live[ObjectRef.of(item)] = item
    return live


# -- many apps at once ---------------------------------------------------------------------


async def observe(
    parts: EngineParts, *, apps: Sequence[str] | None = None, timeout: float = 5.0
) -> list[Observation]:
    """Every Deployment of APPS (default: all), refreshed from its cluster within TIMEOUT.

    Clusters are read concurrently; each within TIMEOUT seconds, or its Deployments are
    shown Unknown with their recorded state in the message (and the store keeps it).
    """
    items, clusters = await asyncio.to_thread(_read_all, parts.store, apps)
    by_cluster: dict[str, list[_Deployed]] = {}
    for item in items:
        by_cluster.setdefault(item.record.cluster, []).append(item)

    async def one(cluster: str, mine: list[_Deployed]) -> list[Observation]:
        # Deployments whose last sync failed or waits keep their recorded state.
        kept = [Observation(record=i.record, refreshed=False) for i in mine if not i.judged]
        judged = [i for i in mine if i.judged]
        record = clusters.get(cluster)
        if record is None:
            # A cluster this store does not read (a hub's pull cluster, whose agent reports
            # health and drift itself): its Deployments as recorded.
            return [Observation(record=i.record, refreshed=False) for i in mine]
        if not judged:
            return kept
        try:
            kube = parts.connections.kube(record)
            fresh = await asyncio.wait_for(_observe_cluster(parts, kube, judged, timeout), timeout)
        except TimeoutError:
            why = f"{cluster} did not answer within {timeout:g}s"
            return kept + [_silent(i.record, why) for i in judged]
        except AppflowError as err:
            return kept + [_silent(i.record, str(err)) for i in judged]
        return kept + fresh

    found = await asyncio.gather(*(one(c, mine) for c, mine in by_cluster.items()))
    return sorted(
        (o for group in found for o in group), key=lambda o: (o.record.app, o.record.cluster)
    )


async def status_view(parts: EngineParts, *, cached: bool, timeout: float) -> dict[str, Any]:
    """The apps x clusters grid of `appflow status`: every Deployment read again from its
    cluster (each within TIMEOUT), or as recorded with CACHED."""
    refreshed: dict[tuple[str, str], bool] | None = None
    if cached:
        deployments = await asyncio.to_thread(parts.store.list_deployments)
    else:
        found = await observe(parts, timeout=timeout)
        deployments = [o.record for o in found]
        # None when nothing is deployed, as a status that reads no cluster says.
        refreshed = {(o.record.app, o.record.cluster): o.refreshed for o in found} or None
    apps, clusters = await asyncio.to_thread(
        lambda: (parts.store.list_apps(), parts.store.list_clusters())
    )
    return status_grid(apps, clusters, deployments, refreshed=refreshed)


def _read_all(
    store: Store, apps: Sequence[str] | None
) -> tuple[list[_Deployed], dict[str, ClusterRecord]]:
    if apps is None:
        records = store.list_deployments()
    else:
        records = [d for name in apps for d in store.list_deployments(app=name)]
    return [_deployed(store, r) for r in records], {c.name: c for c in store.list_clusters()}


async def _observe_cluster(
    parts: EngineParts, kube: KubeCluster, items: list[_Deployed], timeout: float
) -> list[Observation]:
    labelled = [i for i in items if i.record.release is None]
    live = await _live_of(kube, [m for i in labelled for m in i.desired], app=None, timeout=timeout)
    by_app: dict[str, dict[ObjectRef, Manifest]] = {}
    for ref, obj in live.items():
        owner = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_APP)
        by_app.setdefault(str(owner), {})[ref] = obj
    out: list[Observation] = []
    for item in items:
        app = item.record.app
        if item.record.release is not None:
            assessment, seen = await assess_objects(kube, item.desired), {}
        else:
            seen = by_app.get(app, {})
            assessment = await assess_health(kube, app, item.desired, seen=seen)
        after = await _record(parts, item.record, _judged(item, assessment, seen))
        out.append(Observation(record=after, refreshed=True))
    return out


def _silent(record: DeploymentRecord, why: str) -> Observation:
    revision = f" r{record.applied_revision}" if record.applied_revision else ""
    shown = replace(
        record,
        state="Unknown",
        message=f"{why}; last recorded: {record.state}{revision}"
        + (f": {record.message}" if record.message else ""),
    )
    return Observation(record=shown, refreshed=False)

"""Pull clusters' heartbeats on the hub: Online, Suspect, Offline, and never Ready when silent.

Each agent renews the Lease ``appflow-agent`` in its namespace every heartbeat interval (its
``leaseDurationSeconds``). The monitor, part of ``appflow controller``, follows those Leases
with one list+watch across the hub (the Clusters come from the controller's own watch) and
notes, on its *own* clock, when it saw each change (a skewed clock on an edge box does not
matter). From that, for the clusters this replica owns (key ``cluster/<workspace>/<name>``):

- one heartbeat missed: the Cluster is ``Suspect``;
- three missed: ``Offline`` with ``lastSeen``, and every Deployment on it shows
  ``Offline (last known: Ready r7)`` with state ``Unknown`` (counted as unknown, never Ready);
- a heartbeat again: ``Online``, with the facts the agent reports (version, nodes, GPUs...);
  the agent then sends its own latest status for each Deployment;
- registered (its Lease exists) and no first heartbeat within three intervals: ``Offline``
  too, not ``Init`` for ever (an agent that died right after registering).

It writes only statuses (of Clusters and AppFlowDeployments): credentials and tokens are the
agent API's business (``appflow.hub.registration``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from appflow.errors import AppflowError, ConflictError, NotFoundError
from appflow.hub.registration import LEASE_API
from appflow.kube.client import KubeCluster
from appflow.model import agent as rules
from appflow.model.hub import API_VERSION, LABEL_CLUSTER, LABEL_WORKSPACE, cluster_namespace
from appflow.model.registration import ANNOTATION_FACTS, LABEL_AGENT, ClusterFacts

log = logging.getLogger("appflow.heartbeats")

RESYNC_SECONDS = 300.0
TICK_SECONDS = 1.0


def _stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class _Seen:
    at: float
    """When this replica saw the Lease change (its monotonic clock)."""
    wall: datetime
    interval: float
    observed: bool
    """A renewal was seen happening (not only found by a list)."""
    lease: dict[str, Any]


class HeartbeatMonitor:
    """Follows pull clusters' heartbeat Leases and writes what they mean (see the module)."""

    def __init__(
        self,
        *,
        read: KubeCluster,
        write: KubeCluster,
        workspace: str,
        owns: Callable[[str], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.write = write
        self.workspace = workspace
        self.owns = owns
        """Whether this replica judges the cluster of that name."""
        self.clock = clock
        self.clusters: dict[str, dict[str, Any]] = {}
        """Pull-mode Clusters of the workspace, by name."""
        self._seen: dict[str, _Seen] = {}
        self._written_seen: dict[str, float] = {}
        self.current = False
        """The Leases as this replica knows them are the hub's: listed, and followed since. A
        replica cut off from the hub knows nothing of the heartbeats meanwhile; it judges again
        only after listing them."""

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the heartbeat Leases and judge the clusters until STOP (the Clusters come
        from the controller's own watch, through ``on_cluster``)."""
        follow = asyncio.create_task(self._follow_leases(stop), name="heartbeats-leases")
        try:
            while not stop.is_set():
                with contextlib.suppress(AppflowError):
                    await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK_SECONDS)
        finally:
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)

    # -- following --------------------------------------------------------------------------

    async def _follow_leases(self, stop: asyncio.Event) -> None:
        selector = f"{LABEL_AGENT}=heartbeat"
        while not stop.is_set():
            round_over = asyncio.Event()
            timer = asyncio.get_running_loop().call_later(RESYNC_SECONDS, round_over.set)
            relay = asyncio.create_task(_relay(stop, round_over))
            try:
                for lease in await self.read.list_objects(
                    LEASE_API, "Lease", namespace="", label_selector=selector
                ):
                    self._saw(lease, listed=True)
                self.current = True
                async for event, obj in self.read.watch(
                    LEASE_API, "Lease", label_selector=selector, stop=round_over
                ):
                    if event != "DELETED":
                        self._saw(obj, listed=False)
            except AppflowError as err:
                self.current = False
                log.warning("following heartbeat Leases: %s", err)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)
            finally:
                timer.cancel()
                relay.cancel()

    def on_cluster(self, event: str, obj: dict[str, Any]) -> None:
        """Note a Cluster of the controller's watch (pull-mode ones are this monitor's)."""
        meta = obj.get("metadata") or {}
        if meta.get("namespace") != self.workspace:
            return
        name = str(meta.get("name", ""))
        if event == "DELETED" or (obj.get("spec") or {}).get("mode") != "pull":
            self.clusters.pop(name, None)
        else:
            self.clusters[name] = obj

    def _saw(self, lease: dict[str, Any], *, listed: bool) -> None:
        """Note LEASE; its renewal counts as seen now only when this replica saw it change
        (a Lease found by a list, never seen before, has an unknown age on this clock)."""
        meta = lease.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(LABEL_WORKSPACE) != self.workspace:
            return
        name = str(labels.get(LABEL_CLUSTER, ""))
        spec = lease.get("spec") or {}
        renewed = spec.get("renewTime")
        interval = float(spec.get("leaseDurationSeconds") or 60)
        known = self._seen.get(name)
        if known is None:
            self._seen[name] = _Seen(
                at=self.clock(),
                wall=_parse_time(renewed) or datetime.now(UTC),
                interval=interval,
                observed=not listed and bool(renewed),
                lease=lease,
            )
            return
        if renewed and renewed != (known.lease.get("spec") or {}).get("renewTime"):
            known.at = self.clock()
            known.wall = datetime.now(UTC)
            known.observed = True
        known.lease = lease
        known.interval = interval

    # -- deciding and writing ---------------------------------------------------------------

    async def tick(self) -> None:
        if not self.current:
            return  # a silence this replica did not see is not the cluster's
        now = self.clock()
        for name, cluster in list(self.clusters.items()):
            if not self.owns(name):
                continue
            try:
                await self._judge(name, cluster, now)
            except AppflowError as err:
                log.warning("cluster %s: %s", name, err)

    async def _judge(self, name: str, cluster: dict[str, Any], now: float) -> None:
        status = cluster.get("status") or {}
        current = str(status.get("state") or "Init")
        seen = self._seen.get(name)
        if seen is None:
            return  # not registered: Init says so
        if not (seen.lease.get("spec") or {}).get("renewTime"):
            await self._never_beat(name, current, seen, now)
            return
        # A Lease found by a list but never seen changing counts from when it was found, and
        # never makes a cluster Online that is not already.
        since = seen.at
        state = rules.liveness(seen_ago=now - since, interval=seen.interval)
        if state == "Online" and not seen.observed and current != "Online":
            return
        if state == current:
            if state == "Online":
                await self._refresh(name, seen, now)
            return
        patch: dict[str, Any] = {"state": state}
        if state == "Online":
            patch.update(self._facts(seen))
            patch.update({"reason": "", "lastSeen": _stamp(seen.wall)})
            self._written_seen[name] = now
        elif state == "Suspect":
            patch["reason"] = (
                f"missed a heartbeat (interval {seen.interval:.0f}s; last seen {_stamp(seen.wall)})"
            )
        else:
            patch["reason"] = (
                f"no heartbeat for {now - since:.0f}s ({rules.MISSED_FOR_OFFLINE} intervals of"
                f" {seen.interval:.0f}s); its deployments show their last known state"
            )
            patch["lastSeen"] = _stamp(seen.wall)
        if state == "Offline":
            # Its deployments first: should this fail, the cluster is not Offline yet on the
            # hub, and the next tick tries both again.
            await self._mark_offline(name, since=_stamp(seen.wall))
        await self._write_cluster(name, patch)
        log.info("cluster %s: %s -> %s", name, current, state)

    async def _never_beat(self, name: str, current: str, seen: _Seen, now: float) -> None:
        """Registered (its Lease exists) but no heartbeat yet: Init while the first may still
        come, Offline once three intervals passed without it (counted from when this replica
        found the Lease). An agent that died right after registering must not count as online
        for ever: an online target's verdict holds every rollout of its apps."""
        silent = now - seen.at
        if (
            current != "Init"
            or rules.liveness(seen_ago=silent, interval=seen.interval) != "Offline"
        ):
            return
        await self._mark_offline(name, since=_stamp(seen.wall))
        await self._write_cluster(
            name,
            {
                "state": "Offline",
                "reason": (
                    f"its agent registered but sent no heartbeat in {silent:.0f}s "
                    f"({rules.MISSED_FOR_OFFLINE} intervals of {seen.interval:.0f}s)"
                ),
            },
        )
        log.info("cluster %s: Init -> Offline (no first heartbeat)", name)

    def _facts(self, seen: _Seen) -> dict[str, Any]:
        annotations = (seen.lease.get("metadata") or {}).get("annotations") or {}
        raw = annotations.get(ANNOTATION_FACTS)
        if not raw:
            return {}
        try:
            facts = ClusterFacts.from_data(json.loads(raw))
        except (ValueError, AppflowError):
            return {}
        status = facts.cluster_status()
        status["agent"] = {
            "version": facts.agent_version,
            "heartbeatSeconds": max(1, round(seen.interval)),
        }
        return status

    async def _refresh(self, name: str, seen: _Seen, now: float) -> None:
        """While Online: lastSeen and facts now and then, not at every heartbeat."""
        if now - self._written_seen.get(name, 0.0) < max(300.0, 3 * seen.interval):
            return
        self._written_seen[name] = now
        await self._write_cluster(name, {**self._facts(seen), "lastSeen": _stamp(seen.wall)})

    async def _write_cluster(self, name: str, status: dict[str, Any]) -> None:
        updated = await self.write.patch(
            API_VERSION, "Cluster", name, self.workspace, {"status": status}, subresource="status"
        )
        self.clusters[name] = updated

    async def _mark_offline(self, name: str, *, since: str) -> None:
        namespace = cluster_namespace(self.workspace, name)
        for deployment in await self.read.list_objects(
            API_VERSION, "AppFlowDeployment", namespace=namespace
        ):
            meta = deployment.get("metadata") or {}
            patch = {
                "metadata": {"resourceVersion": meta.get("resourceVersion")},
                "status": rules.offline_status(
                    deployment.get("status") or {}, cluster=name, since=since
                ),
            }
            # Conditional: if the agent reported meanwhile, it is not offline after all.
            with contextlib.suppress(ConflictError, NotFoundError):
                await self.write.patch(
                    API_VERSION,
                    "AppFlowDeployment",
                    str(meta["name"]),
                    namespace,
                    patch,
                    subresource="status",
                )


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()

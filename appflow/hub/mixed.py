"""One rollout over push and pull clusters: the pull targets as the engine's remote targets.

An app whose targets are of both kinds goes through one partition order (docs/hub.md §10):
the engine renders and dry-runs its push targets, then (``PullTargets.validate``) the
revision is staged for the pull targets and every online agent's verdict awaited, so nothing
is written anywhere before the whole fleet validated; the engine's rollout runner then
delivers partition by partition, writing its push clusters itself and releasing the pull
ones here (``deliver``), gated on both kinds being Ready at the revision
(``model.rollout.pull_batch``). Pause, resume, maxUnavailable and autoRollback are the
runner's; its record is the app's one ``status.rollout``. The release rule
(``publish.release``) only re-releases what that rollout delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from appflow.hub import publish
from appflow.hub.store import HubStore
from appflow.kube.client import KubeCluster
from appflow.model.appdef import RolloutSpec
from appflow.model.objects import Manifest
from appflow.model.records import RevisionRecord
from appflow.model.rollout import DEFAULT_HEALTH_TIMEOUT, pull_batch

log = logging.getLogger("appflow.hub.mixed")

POLL = 1.0
"""Seconds between two looks at the agents' reports (the replica's watch: no API request)."""
RELEASE_TRIES = 5


@dataclass(kw_only=True)
class PullTargets:
    """The pull targets of one sync of APP (``engine.fanout.RemoteTargets``)."""

    store: HubStore
    kube: KubeCluster
    app: str
    plan: publish.PullPlan
    rollout: RolloutSpec
    deployments: Callable[[], Awaitable[list[Manifest]]]
    """APP's AppFlowDeployments as the replica's watch shows them."""
    clusters: Callable[[], Awaitable[list[Manifest]]]
    """The hub's Clusters as the replica's watch shows them."""
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    previous: Mapping[str, int | None] = field(default_factory=dict)

    @classmethod
    async def of(
        cls,
        *,
        store: HubStore,
        kube: KubeCluster,
        plan: publish.PullPlan,
        deployments: Callable[[], Awaitable[list[Manifest]]],
        clusters: Callable[[], Awaitable[list[Manifest]]],
    ) -> PullTargets:
        """The pull targets of PLAN, with their labels and the revision each runs now."""
        seen = {str((d.get("spec") or {}).get("cluster")): d for d in await deployments()}
        applied = {
            c: (seen.get(c, {}).get("status") or {}).get("appliedRevision") for c in plan.desired
        }
        return cls(
            store=store,
            kube=kube,
            app=plan.definition.name,
            plan=plan,
            rollout=plan.definition.rollout,
            deployments=deployments,
            clusters=clusters,
            labels={c: dict(plan.clusters[c].labels) for c in plan.desired},
            previous={c: n if isinstance(n, int) else None for c, n in applied.items()},
        )

    @property
    def timeout(self) -> float:
        return float(self.rollout.health_timeout_seconds or DEFAULT_HEALTH_TIMEOUT)

    async def _mine(self) -> list[Manifest]:
        return [
            d
            for d in await self.deployments()
            if str((d.get("spec") or {}).get("cluster")) in self.labels
        ]

    async def validate(self, revision: RevisionRecord) -> dict[str, str]:
        await publish.stage(
            self.store,
            self.kube,
            app=self.app,
            revision=revision,
            plan=self.plan,
            deployments=await self.deployments(),
        )
        deadline = time.monotonic() + self.timeout
        policy = self.rollout.offline_targets
        while True:
            offline = publish.offline_clusters(await self.clusters())
            decision = publish.verdicts(await self._mine(), offline=offline, policy=policy)
            if decision.rejected:
                return dict(decision.rejected)
            if not decision.waiting:
                return {}
            log.debug(
                "%s: r%d waits for the verdicts of %s",
                self.app,
                revision.number,
                ", ".join(sorted(decision.waiting)),
            )
            if time.monotonic() > deadline:
                return {
                    c: (
                        f"its agent gave no verdict on revision {revision.number} within "
                        f"{self.timeout:.0f}s"
                        + (
                            " (it is Offline and rollout.offlineTargets is 'wait': 'skip' "
                            "rolls out without it)"
                            if c in offline
                            else ""
                        )
                    )
                    for c in sorted(decision.waiting)
                }
            await asyncio.sleep(POLL)

    async def deliver(
        self, clusters: Sequence[str], *, revision: int, wait: float | None
    ) -> dict[str, tuple[str, str]]:
        await self._release(clusters, revision=revision)
        if wait is None:
            return {}
        started = time.monotonic()
        while True:
            offline = publish.offline_clusters(await self.clusters())
            targets = publish.pull_targets(await self._mine(), revision=revision, offline=offline)
            verdict = pull_batch(
                clusters,
                targets,
                revision=revision,
                elapsed=time.monotonic() - started,
                timeout=wait,
            )
            if not verdict.waiting:
                return dict(verdict.states)
            log.debug("%s: r%d waits for %s", self.app, revision, ", ".join(verdict.waiting))
            await asyncio.sleep(POLL)

    async def _release(self, clusters: Sequence[str], *, revision: int) -> None:
        """Release REVISION (staged) to CLUSTERS, from a fresh list: a release is conditional
        on the Deployment's resourceVersion, which the watch may show late."""
        left = set(clusters)
        for _ in range(RELEASE_TRIES):
            listed = await asyncio.to_thread(
                self.store.deployment_objects, app=self.app, with_unreported=True
            )
            for obj in listed:
                spec = obj.get("spec") or {}
                cluster = str(spec.get("cluster"))
                staged: Mapping[str, Any] = spec.get("staged") or {}
                if cluster not in left or staged.get("revision") != revision:
                    continue
                verdict = (obj.get("status") or {}).get("staged") or {}
                if self.rollout.offline_targets != "release" and not (
                    verdict.get("result") == "Validated" and verdict.get("revision") == revision
                ):
                    # Offline and skipped: it gets the revision once its agent validated it
                    # (the release rule releases what this rollout delivered).
                    left.discard(cluster)
                    continue
                if spec.get("released") == staged or await publish.release_one(
                    self.kube, self.app, obj, None
                ):
                    left.discard(cluster)
            if not left:
                return
            await asyncio.sleep(POLL)

    async def roll_back(self, clusters: Mapping[str, int]) -> dict[str, int]:
        listed = await asyncio.to_thread(
            self.store.deployment_objects, app=self.app, with_unreported=True
        )
        by_cluster = {str((d.get("spec") or {}).get("cluster")): d for d in listed}
        return await publish.release_earlier(
            self.store,
            self.kube,
            app=self.app,
            by_cluster=by_cluster,
            to={c: n for c, n in clusters.items() if c in by_cluster},
        )

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
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
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
    held: Callable[[Collection[str]], Awaitable[Mapping[str, str]]] | None = None
    """Which of the given pull clusters dependsOn holds now, with what each waits for (None:
    the app depends on nothing)."""

    @classmethod
    async def of(
        cls,
        *,
        store: HubStore,
        kube: KubeCluster,
        plan: publish.PullPlan,
        deployments: Callable[[], Awaitable[list[Manifest]]],
        clusters: Callable[[], Awaitable[list[Manifest]]],
        held: Callable[[Collection[str]], Awaitable[Mapping[str, str]]] | None = None,
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
            held=held,
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
            # Every target counts, seen or not: the view may not show the stage's writes yet.
            decision = publish.verdicts(
                await self._mine(),
                offline=offline,
                policy=policy,
                revision=revision.number,
                targets=self.labels,
            )
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
                            " (it is Offline or its agent never connected, and "
                            "rollout.offlineTargets is 'wait': 'skip' rolls out without it)"
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
        held = await self.held(clusters) if self.held is not None else {}
        if held:
            # As the engine holds a push cluster: neither released nor gated on here; the
            # release rule that follows the sync releases it once its dependencies are met.
            for cluster, why in sorted(held.items()):
                log.info("%s on %s: r%d not released, %s", self.app, cluster, revision, why)
            clusters = [c for c in clusters if c not in held]
        left = await self._release(clusters, revision=revision)
        if wait is None:
            for _ in range(RELEASE_TRIES - 1):
                if not left:
                    break
                await asyncio.sleep(POLL)
                left = await self._release(left, revision=revision)
            if left:
                # Ungated: the release rule releases again what this rollout delivered.
                log.warning(
                    "%s: r%d not released yet to %s", self.app, revision, ", ".join(sorted(left))
                )
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
            log.debug(
                "%s: r%d waits for %s%s",
                self.app,
                revision,
                ", ".join(verdict.waiting),
                f" (not released yet: {', '.join(sorted(left))})" if left else "",
            )
            await asyncio.sleep(POLL)
            if left:
                # Until the gate settles: a release lost to a conflict is not given up.
                left = await self._release(left, revision=revision)

    async def _release(self, clusters: Collection[str], *, revision: int) -> set[str]:
        """Release REVISION (staged) to CLUSTERS, from a fresh list (a release is conditional
        on the Deployment's resourceVersion, which the watch may show late); the clusters
        still to release (changed meanwhile, or not listed staged at REVISION yet)."""
        left = set(clusters)
        offline = publish.offline_clusters(await self.clusters())
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
            validated = verdict.get("result") == "Validated" and verdict.get("revision") == revision
            if not validated and self.rollout.offline_targets != "release":
                if cluster in offline:
                    # Offline and skipped: it gets the revision once its agent validated it
                    # (the release rule releases what this rollout delivered).
                    left.discard(cluster)
                # Online: kept for the next pass, never released unvalidated.
                continue
            if spec.get("released") == staged or await publish.release_one(
                self.kube, self.app, obj, None
            ):
                left.discard(cluster)
        return left

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

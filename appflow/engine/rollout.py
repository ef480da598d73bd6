"""The rollout runner: one app's revision delivered partition by partition, gated on health.

The decisions are pure (``appflow.model.rollout``: where to start, whether the rollout
holds, which clusters failed a gate, where auto-rollback returns them); this module acts
on them and keeps the rollout's record. A batch whose clusters do not all become Ready
within the health timeout fails the rollout: later clusters keep their revision, and
with autoRollback the failed ones return to the revision they had applied before.

A paused rollout holds: a sync (a poll, a resync, a webhook) delivers nothing past
where it stopped, marks the clusters it holds OutOfSync when a newer revision waits for
them, and leaves the record Paused (``engine.rollouts`` pauses and resumes). Once
resumed, the next sync continues from the partition it stopped at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Literal

from appflow.engine.fanout import Delivery, RemoteTargets, deliver, validated
from appflow.engine.parts import EngineParts
from appflow.engine.report import AppSyncReport
from appflow.engine.restore import restore_revision
from appflow.engine.stages.types import DesiredState, SyncOptions
from appflow.errors import AppflowError, NotFoundError
from appflow.model.appdef import RolloutSpec
from appflow.model.records import (
    PartitionState,
    RolloutPartitionRecord,
    RolloutRecord,
    RolloutState,
)
from appflow.model.rollout import (
    Partition,
    after_failure,
    delivered,
    gate,
    holds,
    partitions_allowed_to_fail,
    resume_point,
    rollback_plan,
)


class RolloutRunner:
    """Delivers one Delivery over PARTITIONS, keeping the app's rollout record."""

    def __init__(
        self,
        parts: EngineParts,
        delivery: Delivery,
        report: AppSyncReport,
        *,
        spec: RolloutSpec,
        partitions: Sequence[Partition],
        recorded: RolloutRecord | None,
        previous_revisions: Mapping[str, int | None],
        remote: RemoteTargets | None = None,
    ) -> None:
        self.parts = parts
        self.delivery = delivery
        self.report = report
        self.spec = spec
        self.partitions = list(partitions)
        self.recorded = recorded
        self.previous_revisions = previous_revisions
        self.remote = remote
        """Targets in the partitions that someone else writes (pull clusters): released
        through it, gated with the engine's own."""
        self.revision = delivery.revision.number if delivery.revision else None
        self.gate = replace(
            delivery.options,
            wait=True,
            wait_timeout=float(spec.health_timeout_seconds or delivery.options.wait_timeout),
        )
        self.allowed_to_fail = partitions_allowed_to_fail(spec, len(self.partitions))
        self.tolerated: list[str] = []
        self.records = [
            RolloutPartitionRecord(
                name=p.name, clusters=p.clusters, max_unavailable=p.max_unavailable
            )
            for p in self.partitions
        ]

    async def run(self) -> None:
        if holds(self.recorded):
            assert self.recorded is not None
            await self._hold(
                self.recorded, sorted(delivered(self.recorded, revision=self.revision))
            )
            return
        start = resume_point(self.recorded, revision=self.revision, partitions=self.partitions)
        before = [c for p in self.partitions[:start] for c in p.clusters]
        for index in range(start):
            self.records[index] = replace(self.records[index], state="Ready")
        # Partitions delivered before a pause or a failure: delivered again, ungated
        # (no-ops where nothing changed), so they are not left behind.
        await self._deliver(before, wait=False)
        for index in range(start, len(self.partitions)):
            state = await self._save("Progressing", current=index, partition="Progressing")
            if holds(state):
                await self._save("Progressing", current=index, partition="Pending")
                await self._paused_before(index)
                return
            outcome = await self._partition(index)
            if outcome == "stopped":
                return
            if outcome == "ready":
                self.records[index] = replace(self.records[index], state="Ready")
                await self._event("Ready", self._ready_message(self.partitions[index]))
        await self._save(
            "Complete", current=len(self.partitions), message="; ".join(self.tolerated)
        )

    async def _partition(self, index: int) -> Literal["ready", "tolerated", "stopped"]:
        """Deliver partition INDEX batch by batch: it became Ready, it failed but the rollout
        goes on (maxUnavailablePartitions), or the rollout stops here."""
        partition = self.partitions[index]
        for batch in partition.batches():
            if holds(await self._current()):
                await self._paused_before(index)
                return "stopped"
            batch = tuple(c for c in batch if c in self.delivery.prepared or self._remote(c))
            self.delivery.progress(
                f"{self.report.app}: rolling out to {', '.join(batch)} (partition {partition.name})"
            )
            remote = await self._deliver(batch, wait=True)
            failed = gate(
                batch,
                {
                    **{
                        r.cluster: (r.state, r.failing[0].message if r.failing else "")
                        for r in self.report.results
                    },
                    **remote,
                },
            )
            if failed and len(self.tolerated) < self.allowed_to_fail:
                self._tolerate(index, failed)
                return "tolerated"
            if failed:
                await self._fail(index, failed)
                return "stopped"
        return "ready"

    def _remote(self, cluster: str) -> bool:
        return self.remote is not None and cluster in self.remote.labels

    async def _deliver(self, clusters: Sequence[str], *, wait: bool) -> dict[str, tuple[str, str]]:
        """Deliver CLUSTERS, both kinds at once: the engine's own with its stages (gated on
        health with WAIT), the remote ones released (with WAIT, until each settled); the
        remote ones' states."""
        remote = [c for c in clusters if self._remote(c)]

        async def released() -> dict[str, tuple[str, str]]:
            if not remote or self.remote is None or self.revision is None:
                return {}
            return await self.remote.deliver(
                remote, revision=self.revision, wait=self.gate.wait_timeout if wait else None
            )

        _, states = await asyncio.gather(
            deliver(
                self.parts,
                self.delivery,
                self.report,
                [c for c in clusters if not self._remote(c)],
                options=self.gate if wait else None,
            ),
            released(),
        )
        return states

    def _tolerate(self, index: int, failed: dict[str, str]) -> None:
        """maxUnavailablePartitions: this partition stops, the rollout goes on."""
        detail = "; ".join(f"{c}: {why}" for c, why in sorted(failed.items()))
        self.records[index] = replace(self.records[index], state="Failed", message=detail)
        self.tolerated.append(
            f"partition {self.partitions[index].name!r} did not become Ready: {detail}"
        )
        self.report.warnings.append(
            f"{self.tolerated[-1]}; the rollout goes on "
            f"(maxUnavailablePartitions allows {self.allowed_to_fail})"
        )

    async def _fail(self, index: int, failed: dict[str, str]) -> None:
        partition = self.partitions[index]
        detail = "; ".join(f"{c}: {why}" for c, why in sorted(failed.items()))
        self.records[index] = replace(self.records[index], state="Failed", message=detail)
        message = f"partition {partition.name!r} did not become Ready: {detail}"
        self.report.rollout_failed = message
        final = after_failure(self.spec)
        if self.spec.auto_rollback:
            await self._roll_back(sorted(failed))
        await self._save(final, current=index, message=message)
        await self._event(final, message)

    async def _roll_back(self, clusters: list[str]) -> None:
        """Return CLUSTERS to the revision each had applied before this rollout."""
        back, none = rollback_plan(clusters, self.previous_revisions)
        for cluster in none:
            self.report.warnings.append(f"{cluster}: no earlier revision to roll back to")
        remote = {c: n for c, n in back.items() if self._remote(c)}
        if remote and self.remote is not None:
            for cluster, number in sorted((await self.remote.roll_back(remote)).items()):
                self.report.warnings.append(f"{cluster}: revision {number} released again")
        for cluster, number in sorted(back.items()):
            if cluster in remote:
                continue
            self.delivery.progress(
                f"{self.report.app}: rolling {cluster} back to revision {number}"
            )
            old = await asyncio.to_thread(self.parts.store.get_revision, self.report.app, number)
            recorded = {
                cluster: DesiredState(
                    app=self.report.app,
                    cluster=cluster,
                    objects=tuple(old.rendered.get(cluster, ())),
                    revision=old.digest,
                )
            }
            try:
                desired = await restore_revision(self.parts, self.report.app, old, recorded)
            except AppflowError as err:
                self.report.warnings.append(f"{cluster}: cannot roll back: {err}")
                continue
            record = self.delivery.clusters[cluster]
            back_report = AppSyncReport(app=self.report.app)
            found = await validated(
                self.parts,
                back_report,
                desired,
                clusters={cluster: record},
                source_ref=old.source_ref,
                trigger="rollback",
                options=SyncOptions(wait=True, wait_timeout=self.gate.wait_timeout, rollback=True),
                progress=self.delivery.progress,
                revision=old,
            )
            if found is not None:
                await deliver(self.parts, found, back_report, [cluster])
            self.report.rolled_back.extend(back_report.results)

    async def _hold(self, record: RolloutRecord, again: list[str]) -> None:
        """The rollout is paused: re-sync what it delivered, hold the rest."""
        self.report.warnings.append(
            f"rollout of {self.report.app} is paused (appflow rollout resume {self.report.app})"
        )
        await self._deliver(again, wait=False)
        held = [c for p in self.partitions for c in p.clusters if c not in set(again)]
        await self._mark_held(held, record)

    async def _paused_before(self, index: int) -> None:
        """Paused while running: what is not delivered yet is held."""
        self.report.warnings.append(
            f"rollout of {self.report.app} is paused before partition "
            f"{self.partitions[index].name!r}"
        )
        held = [
            c
            for p in self.partitions[index:]
            for c in p.clusters
            if c not in {r.cluster for r in self.report.results}
        ]
        current = await self._current()
        assert current is not None
        await self._mark_held(held, current)

    async def _mark_held(self, clusters: list[str], record: RolloutRecord) -> None:
        at = (
            record.partitions[record.current].name
            if record.current < len(record.partitions)
            else "the end"
        )
        why = f"rollout paused before partition {at!r}"
        for cluster in clusters:
            self.report.held[cluster] = why
            if self._remote(cluster):
                continue  # its agent reports its state: the revision was not released to it
            applied = self.previous_revisions.get(cluster)
            if self.revision is not None and applied != self.revision:
                await self.parts.recorder.deployment_state(
                    self.report.app,
                    cluster,
                    "OutOfSync",
                    f"revision {self.revision} waits: {why} (appflow rollout resume {self.report.app})",
                )

    async def _current(self) -> RolloutRecord | None:
        try:
            return await asyncio.to_thread(self.parts.store.get_rollout, self.report.app)
        except NotFoundError:
            return None

    async def _save(
        self,
        state: RolloutState,
        *,
        current: int,
        partition: PartitionState | None = None,
        message: str = "",
    ) -> RolloutRecord:
        """Record where the rollout stands; a pause made meanwhile wins (it is returned)."""
        if partition is not None:
            self.records[current] = replace(self.records[current], state=partition)
        record = RolloutRecord(
            app=self.report.app,
            revision=self.revision,
            state=state,
            partitions=tuple(self.records),
            current=current,
            message=message,
        )
        return await self.parts.recorder.rollout(record)

    async def _event(self, outcome: str, message: str) -> None:
        await self.parts.recorder.event(
            kind="rollout",
            app=self.report.app,
            trigger=self.delivery.trigger,
            outcome=outcome,
            message=message,
            commit=None if self.delivery.source_ref is None else str(self.delivery.source_ref),
        )

    @staticmethod
    def _ready_message(partition: Partition) -> str:
        return f"partition {partition.name!r} ({', '.join(partition.clusters)}) is Ready"

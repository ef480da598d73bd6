"""Rollout planning: which clusters get a new revision in which order (pure).

A rollout splits an app's target clusters into partitions, delivered one after
another; inside a partition, at most `maxUnavailable` clusters are updated at
once, and each batch must become Healthy before the next starts. Explicit
partitions select clusters by target (a cluster goes to the first partition
that matches it; clusters no partition matches form a last one); without them,
clusters are cut into partitions of `autoPartitionSize`, in name order.

Counts and percentages follow Fleet's rule for maxUnavailable: a percentage is
of the clusters concerned, rounded down, and never less than 1 (a rollout must
be able to move).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import datetime

from appflow.errors import ConfigError, Where
from appflow.model.appdef import CountOrPercent, RolloutSpec
from appflow.model.records import RolloutPartitionRecord, RolloutRecord, RolloutState
from appflow.model.targeting import ClusterGroup, ClusterInfo, target_matches


@dataclass(frozen=True)
class Partition:
    """Clusters delivered together, at most `max_unavailable` of them at a time."""

    name: str
    clusters: tuple[str, ...]
    max_unavailable: int

    def batches(self) -> list[tuple[str, ...]]:
        size = max(1, self.max_unavailable)
        return [self.clusters[i : i + size] for i in range(0, len(self.clusters), size)]


def resolve_count(value: CountOrPercent, total: int, *, field: str) -> int:
    """A count, or a percentage of TOTAL rounded down but at least 1."""
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{value} is negative", where=Where(field=field))
        return value
    text = str(value).strip()
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError as err:
            raise ConfigError(f"{value!r} is not a percentage", where=Where(field=field)) from err
        if not 0 <= percent <= 100:
            raise ConfigError(f"{value!r} is not between 0% and 100%", where=Where(field=field))
        return max(1, math.floor(total * percent / 100)) if total else 0
    try:
        return int(text)
    except ValueError as err:
        raise ConfigError(
            f"{value!r} is neither a count nor a percentage", where=Where(field=field)
        ) from err


def is_progressive(spec: RolloutSpec) -> bool:
    """Whether the spec asks for anything but 'every cluster at once'."""
    return bool(spec.partitions) or str(spec.max_unavailable) != "100%"


def plan_rollout(
    spec: RolloutSpec,
    clusters: Sequence[ClusterInfo],
    groups: Mapping[str, ClusterGroup] | None = None,
) -> list[Partition]:
    """The partitions, in delivery order, for CLUSTERS (sorted by name first)."""
    ordered = sorted(clusters, key=lambda c: c.name)
    total = len(ordered)
    if not ordered:
        return []
    default_unavailable = resolve_count(spec.max_unavailable, total, field="rollout.maxUnavailable")
    partitions: list[Partition] = []
    if spec.partitions:
        taken: set[str] = set()
        for index, p in enumerate(spec.partitions):
            members = tuple(
                c.name
                for c in ordered
                if c.name not in taken and target_matches(p.target, c, groups or {})
            )
            taken.update(members)
            if not members:
                continue
            limit = (
                resolve_count(
                    p.max_unavailable,
                    len(members),
                    field=f"rollout.partitions[{index}].maxUnavailable",
                )
                if p.max_unavailable is not None
                else default_unavailable
            )
            partitions.append(Partition(p.target.name or f"partition-{index + 1}", members, limit))
        rest = tuple(c.name for c in ordered if c.name not in taken)
        if rest:
            partitions.append(Partition("unpartitioned", rest, default_unavailable))
        return partitions
    if str(spec.max_unavailable) == "100%":
        return [Partition("all", tuple(c.name for c in ordered), total)]
    size = resolve_count(spec.auto_partition_size, total, field="rollout.autoPartitionSize")
    size = max(1, size)
    for start in range(0, total, size):
        members = tuple(c.name for c in ordered[start : start + size])
        partitions.append(
            Partition(
                f"partition-{start // size + 1}",
                members,
                min(default_unavailable, len(members)) or 1,
            )
        )
    return partitions


def partitions_allowed_to_fail(spec: RolloutSpec, partitions: int) -> int:
    """How many of PARTITIONS may fail to become Ready before the rollout stops.

    Fleet's maxUnavailablePartitions: 0 (the default) stops at the first one; a
    percentage is of the partitions, with the same rounding as maxUnavailable.
    """
    if spec.max_unavailable_partitions in (0, "0%"):
        return 0
    return resolve_count(
        spec.max_unavailable_partitions, partitions, field="rollout.maxUnavailablePartitions"
    )


# -- decisions while a rollout runs (pure; the engine's rollout runner acts on them) -------


def same_layout(record: RolloutRecord, partitions: Sequence[Partition]) -> bool:
    """Whether RECORD's partitions are PARTITIONS (same names and clusters, same order)."""
    return [(p.name, p.clusters) for p in record.partitions] == [
        (p.name, p.clusters) for p in partitions
    ]


def resume_point(
    record: RolloutRecord | None, *, revision: int | None, partitions: Sequence[Partition]
) -> int:
    """The partition a rollout of REVISION over PARTITIONS starts at.

    Where the recorded rollout of the same revision stopped (paused, failed, or
    interrupted), so that `rollout resume` continues from the paused partition;
    0 for a new revision, a changed layout, or a rollout that completed (its
    partitions are then delivered again, each a no-op where nothing changed).
    """
    if (
        record is None
        or record.revision != revision
        or record.state == "Complete"
        or not same_layout(record, partitions)
    ):
        return 0
    return min(record.current, len(partitions))


def holds(record: RolloutRecord | None) -> bool:
    """Whether the recorded rollout is paused: nothing is delivered beyond where it stopped."""
    return record is not None and record.state == "Paused"


def delivered(record: RolloutRecord, *, revision: int | None) -> frozenset[str]:
    """Clusters a paused rollout of REVISION already delivered to (none for another revision)."""
    if record.revision != revision:
        return frozenset()
    return frozenset(c for p in record.partitions[: record.current] for c in p.clusters)


def gate(batch: Sequence[str], states: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """The clusters of BATCH that did not become Ready, with why.

    STATES is (Deployment state, first failing object's message) per cluster that
    synced. A cluster that did not answer has no state: it keeps its revision,
    converges when it is back, and does not fail the gate.
    """
    failed: dict[str, str] = {}
    for cluster in batch:
        if cluster not in states:
            continue
        state, why = states[cluster]
        if state != "Ready":
            failed[cluster] = why or state
    return failed


def rollback_plan(
    failed: Sequence[str], previous: Mapping[str, int | None]
) -> tuple[dict[str, int], list[str]]:
    """Auto-rollback: per failed cluster, the revision it had applied before the rollout;
    and the clusters that had none (they stay where the rollout left them)."""
    back = {c: n for c in failed if (n := previous.get(c)) is not None}
    return back, [c for c in failed if c not in back]


def after_failure(spec: RolloutSpec) -> RolloutState:
    """The rollout's state once a partition failed."""
    return "RolledBack" if spec.auto_rollback else "Failed"


# -- pull clusters: the hub releases a staged revision partition by partition ---------------

DEFAULT_HEALTH_TIMEOUT = 300.0
"""Seconds a released batch of pull clusters has to become Ready when the rollout names none
(push mode's default wait)."""


@dataclass(frozen=True, kw_only=True)
class PullTarget:
    """One pull cluster of a rollout, as its AppFlowDeployment shows it."""

    released: int | None = None
    """The revision the hub released to it (None: none yet)."""
    applied: int | None = None
    """The revision its agent last applied successfully."""
    tried: int | None = None
    """The revision of its agent's latest apply attempt (its history's last entry)."""
    state: str = ""
    message: str = ""
    online: bool = True
    previous: int | None = None
    """The revision it ran before this rollout: where auto-rollback returns it."""


@dataclass(frozen=True, kw_only=True)
class PullStep:
    """What the hub does now for a pull rollout."""

    release: tuple[str, ...] = ()
    """Clusters the staged revision is released to now."""
    roll_back: Mapping[str, int] = field(default_factory=dict)
    """Per failed cluster, the revision it goes back to (autoRollback)."""
    record: RolloutRecord | None = None
    """Where the rollout stands after this step (None: not a progressive rollout)."""
    recheck: float | None = None
    """Seconds after which to look again even if no Deployment changed (a health timeout)."""


def previous_revision(history: Sequence[Mapping[str, object]], *, revision: int) -> int | None:
    """The last revision other than REVISION an agent applied successfully (its history)."""
    for entry in reversed(history):
        number = entry.get("revision")
        if entry.get("outcome") == "succeeded" and isinstance(number, int) and number != revision:
            return number
    return None


def pull_failure(target: PullTarget, *, revision: int, elapsed: float, timeout: float) -> str:
    """Why TARGET, released REVISION ELAPSED seconds ago, failed its gate ("" if it did not
    fail, yet): its agent's apply of REVISION failed, or it applied it and is not Ready
    within TIMEOUT seconds."""
    if target.tried == revision and target.applied != revision:
        return target.message or f"the apply of revision {revision} failed"
    if target.applied == revision and target.state != "Ready" and elapsed > timeout:
        return (
            f"not Ready within {timeout:.0f}s ({target.state or 'no state'}"
            f"{f': {target.message}' if target.message else ''})"
        )
    return ""


@dataclass(frozen=True, kw_only=True)
class BatchVerdict:
    """Where a released batch of pull clusters stands, for the gate of a rollout that
    delivers push and pull clusters in one partition order (``engine.rollout``)."""

    states: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Per cluster settled: (state, why), as ``gate`` reads a push cluster's sync."""
    waiting: tuple[str, ...] = ()
    """Clusters still on their way (released, not yet Ready nor failed)."""


def pull_batch(
    batch: Sequence[str],
    targets: Mapping[str, PullTarget],
    *,
    revision: int,
    elapsed: float,
    timeout: float,
) -> BatchVerdict:
    """BATCH (pull clusters released REVISION ELAPSED seconds ago) as their Deployments show
    (TARGETS). Ready at REVISION, or failed (``pull_failure``), settles a cluster; an Offline
    one, or one without a Deployment, has no state (it does not hold the gate: it converges
    when it is back, as a push cluster that does not answer)."""
    states: dict[str, tuple[str, str]] = {}
    waiting: list[str] = []
    for cluster in batch:
        target = targets.get(cluster)
        if target is None or not target.online:
            continue
        if target.applied == revision and target.state == "Ready":
            states[cluster] = ("Ready", "")
        elif why := pull_failure(target, revision=revision, elapsed=elapsed, timeout=timeout):
            states[cluster] = (target.state if target.state != "Ready" else "Failed", why)
        elif elapsed > timeout:
            # Online and still not applied (its agent is stuck): the gate does not wait forever.
            states[cluster] = ("NotReady", f"revision {revision} not applied within {timeout:.0f}s")
        else:
            waiting.append(cluster)
    return BatchVerdict(states=states, waiting=tuple(waiting))


def _pending_record(partitions: Sequence[Partition]) -> list[RolloutPartitionRecord]:
    return [
        RolloutPartitionRecord(name=p.name, clusters=p.clusters, max_unavailable=p.max_unavailable)
        for p in partitions
    ]


def pull_step(
    spec: RolloutSpec,
    partitions: Sequence[Partition],
    *,
    app: str,
    revision: int,
    targets: Mapping[str, PullTarget],
    releasable: Set[str],
    recorded: RolloutRecord | None,
    now: datetime,
) -> PullStep:
    """The next step of rolling REVISION out to pull clusters over PARTITIONS.

    RELEASABLE are the targets the fleet-wide validation lets have it (every online target
    validated, nothing rejected: ``model.agent.release_decision``); TARGETS is every target
    as its Deployment shows. As in push mode: partitions in order; inside one, at most its
    ``maxUnavailable`` clusters released and not yet Ready at a time; the next partition only
    once every online cluster of this one is Ready with REVISION. A paused rollout releases
    nothing new (``rollout resume`` continues from where it stopped). A cluster whose apply of
    REVISION failed, or that is not Ready within the health timeout, fails its partition:
    the rollout stops (unless maxUnavailablePartitions tolerates it) and, with autoRollback,
    the failed clusters return to their previous revision. An Offline cluster does not hold
    its partition's gate: it converges when it is back. Not progressive: everything
    releasable at once.
    """
    if not is_progressive(spec):
        return PullStep(release=tuple(sorted(releasable)))
    same = (
        recorded is not None and recorded.revision == revision and same_layout(recorded, partitions)
    )
    if same and recorded is not None and recorded.state in ("Failed", "RolledBack"):
        return PullStep(record=recorded)  # stopped: a new revision or a resume starts again
    if same and recorded is not None and recorded.state == "Complete":
        # Latecomers (an Offline cluster back and validated) get it at once.
        return PullStep(release=tuple(sorted(releasable)), record=recorded)
    records = _pending_record(partitions)
    start = resume_point(recorded, revision=revision, partitions=partitions)
    release: list[str] = []
    for index in range(start):
        records[index] = replace(records[index], state="Ready")
        release.extend(c for c in partitions[index].clusters if c in releasable)
    if holds(recorded):
        assert recorded is not None
        # Paused: what it delivered keeps it, nothing more goes out.
        done = delivered(recorded, revision=revision)
        return PullStep(
            release=tuple(sorted(c for c in releasable if c in done)),
            record=recorded,
        )
    allowed_to_fail = partitions_allowed_to_fail(spec, len(partitions))
    timeout = float(spec.health_timeout_seconds or DEFAULT_HEALTH_TIMEOUT)
    elapsed = (now - recorded.updated_at).total_seconds() if same and recorded is not None else 0.0
    tolerated: list[str] = []

    def record(state: RolloutState, current: int, message: str = "") -> RolloutRecord:
        return RolloutRecord(
            app=app,
            revision=revision,
            state=state,
            partitions=tuple(records),
            current=current,
            message=message,
            updated_at=now,
        )

    for index in range(start, len(partitions)):
        partition = partitions[index]
        members = [c for c in partition.clusters if c in targets and targets[c].online]
        ready = {
            c for c in members if targets[c].applied == revision and targets[c].state == "Ready"
        }
        at_partition = same and recorded is not None and recorded.current == index
        failed = {
            c: why
            for c in members
            if targets[c].released == revision
            and c not in ready
            and (
                why := pull_failure(
                    targets[c],
                    revision=revision,
                    elapsed=elapsed if at_partition else 0.0,
                    timeout=timeout,
                )
            )
        }
        if failed:
            detail = "; ".join(f"{c}: {why}" for c, why in sorted(failed.items()))
            records[index] = replace(records[index], state="Failed", message=detail)
            message = f"partition {partition.name!r} did not become Ready: {detail}"
            if len(tolerated) < allowed_to_fail:
                tolerated.append(message)
                continue
            back, _ = (
                rollback_plan(sorted(failed), {c: targets[c].previous for c in failed})
                if spec.auto_rollback
                else ({}, [])
            )
            return PullStep(
                release=tuple(sorted(release)),
                roll_back=back,
                record=record(after_failure(spec), index, message),
            )
        if len(ready) == len(members):
            records[index] = replace(records[index], state="Ready")
            release.extend(c for c in partition.clusters if c in releasable)
            continue
        in_flight = [c for c in members if targets[c].released == revision and c not in ready]
        room = max(1, partition.max_unavailable) - len(in_flight)
        batch = [c for c in partition.clusters if c in releasable][: max(0, room)]
        release.extend(batch)
        records[index] = replace(records[index], state="Progressing")
        waiting = [c for c in members if c not in ready]
        return PullStep(
            release=tuple(sorted(release)),
            record=record(
                "Progressing",
                index,
                f"partition {partition.name!r}: waiting for {', '.join(waiting)} to be Ready",
            ),
            recheck=max(1.0, timeout - (0.0 if batch else elapsed)),
        )
    return PullStep(
        release=tuple(sorted(release)),
        record=record("Complete", len(partitions), "; ".join(tolerated)),
    )

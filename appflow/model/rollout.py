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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from appflow.errors import ConfigError, Where
from appflow.model.appdef import CountOrPercent, RolloutSpec
from appflow.model.records import RolloutRecord, RolloutState
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

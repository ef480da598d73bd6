"""Rollouts: partitions, batches, maxUnavailable counts and percentages, and the decisions
made while one runs (where to resume, holding while paused, the gate, auto-rollback)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appflow.errors import ConfigError
from appflow.model.appdef import (
    ClusterTarget,
    LabelRequirement,
    LabelSelector,
    RolloutPartition,
    RolloutSpec,
)
from appflow.model.records import RolloutPartitionRecord, RolloutRecord
from appflow.model.rollout import (
    Partition,
    after_failure,
    delivered,
    gate,
    holds,
    is_progressive,
    plan_rollout,
    resolve_count,
    resume_point,
    rollback_plan,
)
from appflow.model.targeting import ClusterGroup, ClusterInfo


def fleet(count: int, env: str = "prod") -> list[ClusterInfo]:
    return [ClusterInfo(name=f"edge-{i:02d}", labels={"env": env}) for i in range(1, count + 1)]


def layout(partitions: list[Partition]) -> list[tuple[str, tuple[str, ...], int]]:
    return [(p.name, p.clusters, p.max_unavailable) for p in partitions]


def by_env(name: str, *values: str) -> ClusterTarget:
    return ClusterTarget(
        name=name,
        selector=LabelSelector(
            match_expressions=(LabelRequirement(key="env", operator="In", values=values),)
        ),
    )


# -- default: every cluster at once ------------------------------------------------


def test_default_spec_is_one_partition_with_every_cluster_at_once() -> None:
    spec = RolloutSpec()
    assert not is_progressive(spec)
    assert layout(plan_rollout(spec, fleet(3))) == [("all", ("edge-01", "edge-02", "edge-03"), 3)]


def test_no_clusters_no_partitions() -> None:
    assert plan_rollout(RolloutSpec(max_unavailable=1), []) == []


def test_clusters_are_delivered_in_name_order_whatever_order_they_come_in() -> None:
    clusters = [ClusterInfo(name=n) for n in ("c", "a", "b")]
    partitions = plan_rollout(RolloutSpec(max_unavailable=1, auto_partition_size=3), clusters)
    assert layout(partitions) == [("partition-1", ("a", "b", "c"), 1)]
    assert partitions[0].batches() == [("a",), ("b",), ("c",)]


# -- automatic partitions ------------------------------------------------------------


def test_max_unavailable_one_over_three_clusters_makes_three_partitions_of_one() -> None:
    # autoPartitionSize 25% of 3 is 0.75: rounded down, but never below one cluster.
    spec = RolloutSpec(max_unavailable=1)
    assert is_progressive(spec)
    assert layout(plan_rollout(spec, fleet(3))) == [
        ("partition-1", ("edge-01",), 1),
        ("partition-2", ("edge-02",), 1),
        ("partition-3", ("edge-03",), 1),
    ]


def test_auto_partition_size_as_a_count_leaves_a_short_last_partition() -> None:
    spec = RolloutSpec(max_unavailable=2, auto_partition_size=2)
    assert layout(plan_rollout(spec, fleet(5))) == [
        ("partition-1", ("edge-01", "edge-02"), 2),
        ("partition-2", ("edge-03", "edge-04"), 2),
        # maxUnavailable never exceeds the partition's own size.
        ("partition-3", ("edge-05",), 1),
    ]


def test_auto_partition_size_as_a_percentage_of_the_fleet() -> None:
    spec = RolloutSpec(max_unavailable="10%", auto_partition_size="50%")
    partitions = plan_rollout(spec, fleet(6))
    # 50% of 6 -> 3 per partition; 10% of 6 is 0.6 -> at least 1 at a time.
    assert layout(partitions) == [
        ("partition-1", ("edge-01", "edge-02", "edge-03"), 1),
        ("partition-2", ("edge-04", "edge-05", "edge-06"), 1),
    ]
    assert partitions[0].batches() == [("edge-01",), ("edge-02",), ("edge-03",)]


def test_max_unavailable_percentage_is_rounded_down() -> None:
    # 50% of 5 is 2.5 -> 2 clusters at a time, in one partition of all five.
    spec = RolloutSpec(max_unavailable="50%", auto_partition_size="100%")
    [partition] = plan_rollout(spec, fleet(5))
    assert partition.max_unavailable == 2
    assert partition.batches() == [("edge-01", "edge-02"), ("edge-03", "edge-04"), ("edge-05",)]


@pytest.mark.parametrize(
    ("value", "total", "expected"),
    [
        ("100%", 7, 7),
        ("50%", 5, 2),
        ("34%", 3, 1),
        ("99%", 10, 9),
        ("10%", 3, 1),
        ("0%", 4, 1),
        ("25%", 0, 0),
        (3, 10, 3),
        ("3", 10, 3),
        (0, 10, 0),
    ],
)
def test_resolve_count(value: int | str, total: int, expected: int) -> None:
    assert resolve_count(value, total, field="rollout.maxUnavailable") == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("many", "'many' is neither a count nor a percentage"),
        ("x%", "'x%' is not a percentage"),
        ("150%", "'150%' is not between 0% and 100%"),
        (-1, "-1 is negative"),
    ],
)
def test_resolve_count_names_the_field_of_a_bad_value(value: int | str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_count(value, 4, field="rollout.partitions[1].maxUnavailable")
    assert info.value.message == problem
    assert info.value.where.field == "rollout.partitions[1].maxUnavailable"


@given(
    total=st.integers(min_value=1, max_value=200),
    percent=st.integers(min_value=0, max_value=100),
)
def test_a_percentage_always_lets_the_rollout_move_and_never_exceeds_the_fleet(
    total: int, percent: int
) -> None:
    count = resolve_count(f"{percent}%", total, field="f")
    assert 1 <= count <= total
    assert count == max(1, total * percent // 100)


@given(
    total=st.integers(min_value=1, max_value=40),
    size=st.integers(min_value=1, max_value=40),
    unavailable=st.integers(min_value=1, max_value=40),
)
def test_automatic_partitions_deliver_every_cluster_exactly_once(
    total: int, size: int, unavailable: int
) -> None:
    clusters = fleet(total)
    partitions = plan_rollout(
        RolloutSpec(max_unavailable=unavailable, auto_partition_size=size), clusters
    )
    delivered = [c for p in partitions for batch in p.batches() for c in batch]
    assert delivered == [c.name for c in clusters]
    assert all(1 <= p.max_unavailable <= len(p.clusters) for p in partitions)


# -- explicit partitions -------------------------------------------------------------


CLUSTERS = [
    ClusterInfo(name="canary-1", labels={"env": "canary"}),
    ClusterInfo(name="prod-b", labels={"env": "prod", "region": "us"}),
    ClusterInfo(name="prod-a", labels={"env": "prod", "region": "eu"}),
    ClusterInfo(name="prod-c", labels={"env": "prod", "region": "eu"}),
    ClusterInfo(name="lab-1", labels={}),
]


def test_explicit_partitions_in_the_order_written_with_the_rest_last() -> None:
    spec = RolloutSpec(
        max_unavailable=1,
        partitions=(
            RolloutPartition(target=by_env("canary", "canary")),
            RolloutPartition(target=by_env("production", "prod"), max_unavailable="50%"),
        ),
    )
    assert layout(plan_rollout(spec, CLUSTERS)) == [
        ("canary", ("canary-1",), 1),
        # 50% of the partition's 3 clusters, not of the fleet's 5.
        ("production", ("prod-a", "prod-b", "prod-c"), 1),
        ("unpartitioned", ("lab-1",), 1),
    ]


def test_a_cluster_goes_to_the_first_partition_that_matches_it() -> None:
    eu = ClusterTarget(name="eu", selector=LabelSelector(match_labels={"region": "eu"}))
    spec = RolloutSpec(
        max_unavailable="100%",
        partitions=(
            RolloutPartition(target=eu),
            RolloutPartition(target=by_env("prod", "prod"), max_unavailable=2),
        ),
    )
    partitions = plan_rollout(spec, CLUSTERS)
    assert [(p.name, p.clusters) for p in partitions] == [
        ("eu", ("prod-a", "prod-c")),
        ("prod", ("prod-b",)),
        ("unpartitioned", ("canary-1", "lab-1")),
    ]
    assert partitions[1].max_unavailable == 2


def test_a_partition_that_matches_no_cluster_is_left_out() -> None:
    spec = RolloutSpec(
        partitions=(
            RolloutPartition(target=by_env("staging", "staging")),
            RolloutPartition(target=by_env("everything", "canary", "prod")),
        ),
    )
    assert [p.name for p in plan_rollout(spec, CLUSTERS)] == ["everything", "unpartitioned"]


def test_no_unpartitioned_rest_when_the_partitions_cover_every_cluster() -> None:
    spec = RolloutSpec(
        partitions=(RolloutPartition(target=ClusterTarget(name="all", selector=LabelSelector())),),
    )
    [only] = plan_rollout(spec, CLUSTERS)
    assert only.name == "all"
    assert len(only.clusters) == len(CLUSTERS)


def test_partition_by_cluster_group() -> None:
    groups = {"eu": ClusterGroup(name="eu", selector=LabelSelector(match_labels={"region": "eu"}))}
    spec = RolloutSpec(
        max_unavailable=1,
        partitions=(RolloutPartition(target=ClusterTarget(name="first", cluster_group="eu")),),
    )
    assert layout(plan_rollout(spec, CLUSTERS, groups)) == [
        ("first", ("prod-a", "prod-c"), 1),
        ("unpartitioned", ("canary-1", "lab-1", "prod-b"), 1),
    ]
    # Without the group defined, it matches nothing: every cluster is in the rest.
    assert [p.name for p in plan_rollout(spec, CLUSTERS)] == ["unpartitioned"]


def test_a_bad_partition_max_unavailable_names_its_partition() -> None:
    spec = RolloutSpec(
        partitions=(
            RolloutPartition(target=by_env("canary", "canary")),
            RolloutPartition(target=by_env("prod", "prod"), max_unavailable="lots"),
        ),
    )
    with pytest.raises(ConfigError) as info:
        plan_rollout(spec, CLUSTERS)
    assert info.value.where.field == "rollout.partitions[1].maxUnavailable"


# -- batches ---------------------------------------------------------------------------


def test_batches_are_max_unavailable_clusters_at_a_time() -> None:
    partition = Partition("p", ("a", "b", "c", "d", "e"), 2)
    assert partition.batches() == [("a", "b"), ("c", "d"), ("e",)]


def test_zero_max_unavailable_still_moves_one_cluster_at_a_time() -> None:
    assert Partition("p", ("a", "b"), 0).batches() == [("a",), ("b",)]


# -- decisions while a rollout runs ----------------------------------------------------------


def _record(
    state: str, *, revision: int | None = 3, current: int = 1, layout: list[Partition] | None = None
) -> RolloutRecord:
    parts = layout if layout is not None else PARTS
    return RolloutRecord(
        app="web",
        revision=revision,
        state=state,  # type: ignore[arg-type]
        partitions=tuple(
            RolloutPartitionRecord(name=p.name, clusters=p.clusters, max_unavailable=1)
            for p in parts
        ),
        current=current,
    )


PARTS = [
    Partition("p1", ("a", "b"), 1),
    Partition("p2", ("c",), 1),
    Partition("p3", ("d", "e"), 1),
]


def test_a_new_rollout_starts_at_the_first_partition() -> None:
    assert resume_point(None, revision=3, partitions=PARTS) == 0


@pytest.mark.parametrize("state", ["Paused", "Progressing", "Failed", "RolledBack"])
def test_the_same_revision_continues_where_its_rollout_stopped(state: str) -> None:
    assert resume_point(_record(state, current=1), revision=3, partitions=PARTS) == 1


def test_a_new_revision_a_new_layout_or_a_completed_rollout_start_again() -> None:
    assert resume_point(_record("Paused"), revision=4, partitions=PARTS) == 0
    assert resume_point(_record("Complete", current=3), revision=3, partitions=PARTS) == 0
    moved = [Partition("p1", ("a",), 1), *PARTS[1:]]
    assert resume_point(_record("Progressing"), revision=3, partitions=moved) == 0


def test_only_a_paused_rollout_holds_and_it_holds_what_it_did_not_deliver() -> None:
    paused = _record("Paused", current=2)

    assert holds(paused)
    assert not holds(_record("Progressing"))
    assert not holds(None)
    assert delivered(paused, revision=3) == {"a", "b", "c"}
    assert delivered(paused, revision=4) == frozenset()


def test_the_gate_fails_clusters_not_ready_and_passes_those_that_did_not_answer() -> None:
    states = {"a": ("Ready", ""), "b": ("NotReady", "0 of 1 replicas"), "c": ("ErrApplied", "")}

    assert gate(("a", "b", "c", "d"), states) == {"b": "0 of 1 replicas", "c": "ErrApplied"}
    assert gate(("a", "d"), states) == {}


def test_auto_rollback_returns_each_failed_cluster_to_its_own_earlier_revision() -> None:
    back, none = rollback_plan(["b", "c", "e"], {"b": 2, "c": None, "e": 1, "a": 2})

    assert back == {"b": 2, "e": 1}
    assert none == ["c"]
    assert after_failure(RolloutSpec(auto_rollback=True)) == "RolledBack"
    assert after_failure(RolloutSpec()) == "Failed"

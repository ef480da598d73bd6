"""Pull clusters' rollouts: the hub's release rule over partitions (``model.rollout.pull_step``).

Push mode's semantics, decided from what the agents report: every target validated before
anything is released, then partition by partition gated on Ready, at most maxUnavailable
at a time, held by a pause, stopped (and rolled back) by a failure.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from appflow.model.appdef import RolloutSpec
from appflow.model.records import RolloutRecord
from appflow.model.rollout import (
    BatchVerdict,
    Partition,
    PullStep,
    PullTarget,
    gate,
    plan_rollout,
    previous_revision,
    pull_batch,
    pull_step,
)
from appflow.model.targeting import ClusterInfo

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CLUSTERS = ("a1", "a2", "b1", "b2")
SPEC = RolloutSpec(max_unavailable=1, auto_partition_size=2)


def partitions(spec: RolloutSpec = SPEC) -> list[Partition]:
    return plan_rollout(spec, [ClusterInfo(name=c, labels={}) for c in CLUSTERS])


def step(
    targets: dict[str, PullTarget],
    *,
    recorded: RolloutRecord | None = None,
    spec: RolloutSpec = SPEC,
    releasable: set[str] | None = None,
    now: datetime = NOW,
) -> PullStep:
    return pull_step(
        spec,
        partitions(spec),
        app="web",
        revision=2,
        targets=targets,
        releasable={c for c, t in targets.items() if t.released != 2}
        if releasable is None
        else releasable,
        recorded=recorded,
        now=now,
    )


def fresh() -> dict[str, PullTarget]:
    return {c: PullTarget(applied=1, released=1, state="Ready", previous=1) for c in CLUSTERS}


def released(t: PullTarget) -> PullTarget:
    return replace(t, released=2)


def ready(t: PullTarget) -> PullTarget:
    return replace(t, released=2, applied=2, tried=2, state="Ready")


def test_partitions_are_released_in_order_each_gated_on_ready() -> None:
    assert [p.clusters for p in partitions()] == [("a1", "a2"), ("b1", "b2")]
    targets = fresh()
    first = step(targets)
    # maxUnavailable 1: one cluster at a time.
    assert first.release == ("a1",)
    assert first.record is not None
    assert (first.record.state, first.record.current) == ("Progressing", 0)
    # Released but not Ready yet: nothing more goes out.
    targets["a1"] = released(targets["a1"])
    held = step(targets, recorded=first.record)
    assert held.release == ()
    assert held.recheck is not None
    targets["a1"] = ready(targets["a1"])
    assert step(targets, recorded=first.record).release == ("a2",)
    targets["a2"] = ready(targets["a2"])
    second = step(targets, recorded=first.record)
    # Partition 1 Ready: partition 2 starts.
    assert second.release == ("b1",)
    assert second.record is not None
    assert second.record.current == 1
    assert [p.state for p in second.record.partitions] == ["Ready", "Progressing"]
    targets["b1"], targets["b2"] = ready(targets["b1"]), ready(targets["b2"])
    done = step(targets, recorded=second.record)
    assert done.record is not None
    assert (done.record.state, done.record.current) == ("Complete", 2)
    assert done.release == ()


def test_no_partition_is_released_before_every_target_validated() -> None:
    # The fleet-wide rule decides RELEASABLE: nothing validated anywhere, nothing released.
    assert step(fresh(), releasable=set()).release == ()


def test_a_pause_holds_and_resume_continues_from_the_paused_partition() -> None:
    targets = fresh()
    targets["a1"], targets["a2"] = ready(targets["a1"]), ready(targets["a2"])
    running = step(targets, recorded=None)
    assert running.record is not None
    paused = replace(running.record, state="Paused", current=1)
    assert step(targets, recorded=paused).release == ()
    assert step(targets, recorded=paused).record == paused
    resumed = step(targets, recorded=replace(paused, state="Progressing"))
    assert resumed.release == ("b1",)


def test_a_failed_apply_stops_the_rollout_and_rolls_back_with_auto_rollback() -> None:
    targets = fresh()
    targets["a1"] = replace(targets["a1"], released=2, tried=2, state="ErrApplied", message="boom")
    stopped = step(targets)
    assert stopped.record is not None
    assert stopped.record.state == "Failed"
    assert "a1: boom" in stopped.record.message
    assert stopped.release == ()
    assert dict(stopped.roll_back) == {}
    spec = replace(SPEC, auto_rollback=True)
    back = step(targets, spec=spec)
    assert back.record is not None
    assert back.record.state == "RolledBack"
    assert dict(back.roll_back) == {"a1": 1}
    # Once stopped, nothing more of that revision goes out.
    assert step(targets, recorded=back.record, spec=spec).release == ()


def test_not_ready_within_the_health_timeout_fails_the_partition() -> None:
    spec = replace(SPEC, health_timeout_seconds=60)
    targets = fresh()
    targets["a1"] = replace(ready(targets["a1"]), state="NotReady")
    first = step(targets, spec=spec)
    assert first.record is not None
    assert first.record.state == "Progressing"
    recorded = replace(first.record, updated_at=NOW)
    early = step(targets, recorded=recorded, spec=spec, now=NOW + timedelta(seconds=30))
    assert early.record is not None
    assert early.record.state == "Progressing"
    late = step(targets, recorded=recorded, spec=spec, now=NOW + timedelta(seconds=61))
    assert late.record is not None
    assert late.record.state == "Failed"
    assert "not Ready within 60s" in late.record.message


def test_max_unavailable_partitions_lets_the_rollout_go_on() -> None:
    spec = replace(SPEC, max_unavailable_partitions=1)
    targets = fresh()
    targets["a1"] = replace(targets["a1"], released=2, tried=2, state="ErrApplied")
    on = step(targets, spec=spec)
    assert on.record is not None
    assert [p.state for p in on.record.partitions] == ["Failed", "Progressing"]
    # As in push mode the failed partition stops where it is; the next one starts.
    assert on.release == ("b1",)


def test_an_offline_cluster_does_not_hold_its_partitions_gate() -> None:
    targets = fresh()
    targets["a1"] = ready(targets["a1"])
    targets["a2"] = replace(targets["a2"], online=False)
    moved = step(targets, releasable={"b1", "b2"})
    assert moved.release == ("b1",)


def test_without_partitions_everything_validated_goes_at_once() -> None:
    everything = step(fresh(), spec=RolloutSpec())
    assert everything.release == CLUSTERS
    assert everything.record is None


def test_the_previous_revision_is_the_last_other_one_applied() -> None:
    history = [
        {"revision": 1, "outcome": "succeeded"},
        {"revision": 3, "outcome": "failed"},
        {"revision": 2, "outcome": "succeeded"},
    ]
    assert previous_revision(history, revision=2) == 1
    assert previous_revision(history, revision=4) == 2
    assert previous_revision([], revision=2) is None


# -- one partition order over push and pull clusters: a released pull batch's gate ----------


def batch(targets: dict[str, PullTarget], *, elapsed: float = 0.0) -> BatchVerdict:
    return pull_batch(("a1", "a2"), targets, revision=2, elapsed=elapsed, timeout=60)


def test_a_pull_batch_settles_when_each_cluster_is_ready_or_failed() -> None:
    targets = {"a1": released(fresh()["a1"]), "a2": released(fresh()["a2"])}
    # Released, nothing applied yet: both on their way (still Ready at revision 1).
    assert batch(targets).waiting == ("a1", "a2")
    targets["a1"] = ready(targets["a1"])
    assert batch(targets).states == {"a1": ("Ready", "")}
    assert batch(targets).waiting == ("a2",)
    targets["a2"] = replace(targets["a2"], tried=2, state="ErrApplied", message="boom")
    settled = batch(targets)
    assert settled.waiting == ()
    # The engine's gate reads these as it reads a push cluster's sync: a2 fails it.
    assert gate(("a1", "a2"), settled.states) == {"a2": "boom"}


def test_a_pull_batch_applied_but_not_ready_fails_only_after_the_health_timeout() -> None:
    targets = {"a1": replace(ready(fresh()["a1"]), state="NotReady"), "a2": ready(fresh()["a2"])}
    assert batch(targets, elapsed=30).waiting == ("a1",)
    late = batch(targets, elapsed=61)
    assert late.waiting == ()
    assert "not Ready within 60s" in gate(("a1", "a2"), late.states)["a1"]


def test_an_offline_pull_cluster_does_not_hold_a_batch_and_a_stuck_one_does_not_forever() -> None:
    targets = {"a1": replace(released(fresh()["a1"]), online=False), "a2": released(fresh()["a2"])}
    # a1 Offline: no state (it converges when back), as a push cluster that does not answer.
    assert batch(targets).waiting == ("a2",)
    stuck = batch(targets, elapsed=61)
    assert stuck.waiting == ()
    assert "not applied within 60s" in gate(("a1", "a2"), stuck.states)["a2"]
    assert "a1" not in stuck.states

"""Deployment state from health and errors (one mapping for every sync path), and counts."""

from __future__ import annotations

import pytest

from appflow.model.health import HealthStatus
from appflow.model.records import AppRecord, ClusterRecord, DeploymentRecord, ResourceCounts
from appflow.model.status import deployment_state, resource_counts, resource_totals, status_grid


@pytest.mark.parametrize(
    ("health", "state"),
    [
        (HealthStatus.HEALTHY, "Ready"),
        (HealthStatus.MISSING, "Missing"),
        (HealthStatus.PROGRESSING, "NotReady"),
        (HealthStatus.DEGRADED, "NotReady"),
        (HealthStatus.UNKNOWN, "NotReady"),
        (HealthStatus.SUSPENDED, "NotReady"),
        (None, "Unknown"),
    ],
)
def test_health_decides_the_state_of_a_deployment_that_applied(
    health: HealthStatus | None, state: str
) -> None:
    assert deployment_state(health) == state


def test_a_failed_apply_outranks_health_and_orphans_outrank_an_empty_health() -> None:
    assert deployment_state(HealthStatus.HEALTHY, apply_failed=True) == "ErrApplied"
    assert deployment_state(HealthStatus.HEALTHY, apply_failed=True, orphaned=True) == "ErrApplied"
    # Nothing declared (an empty aggregate is Healthy) but objects kept: not Ready.
    assert deployment_state(HealthStatus.HEALTHY, orphaned=True) == "Orphaned"


def test_resource_counts_count_each_object_once() -> None:
    counts = resource_counts(
        [HealthStatus.HEALTHY, HealthStatus.HEALTHY, HealthStatus.MISSING, HealthStatus.DEGRADED]
    )

    assert counts == ResourceCounts(desired_ready=4, ready=2, missing=1, not_ready=1)


def test_totals_add_up_deployments() -> None:
    a = DeploymentRecord(
        app="web", cluster="a", resource_counts=ResourceCounts(ready=2, orphaned=1)
    )
    b = DeploymentRecord(app="web", cluster="b", resource_counts=ResourceCounts(ready=1, missing=1))

    assert resource_totals([a, b]) == ResourceCounts(ready=3, missing=1, orphaned=1)
    assert resource_totals([a, b]).as_dict()["orphaned"] == 1


def test_the_grid_names_the_revision_an_unfinished_sync_was_applying() -> None:
    app = AppRecord(name="web", source="local", local_path="/src")
    cluster = ClusterRecord(name="edge-1", kind="imported")
    interrupted = DeploymentRecord(
        app="web",
        cluster="edge-1",
        state="WaitApplied",
        desired_revision=2,
        applied_revision=1,
        message="revision 2 was interrupted",
    )
    [row] = status_grid([app], [cluster], [interrupted])["apps"]
    cell = row["deployments"]["edge-1"]
    assert (cell["state"], cell["revision"], cell["desiredRevision"]) == ("WaitApplied", 1, 2)

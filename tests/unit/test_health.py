"""Health checks per kind, driven by one YAML fixture per case.

Each file in testdata/health/ holds one live object and, on its first line, what a user must
see: ``# expect: <Status>: <message substring>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from appflow.model.health import Health, HealthStatus, aggregate, assess, worst

FIXTURES = Path(__file__).parent / "testdata" / "health"
EXPECT = "# expect:"


def _load(path: Path) -> tuple[dict[str, Any], HealthStatus, str]:
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith(EXPECT), f"{path.name}: first line must be '{EXPECT} <Status>: <text>'"
    status, _, message = first[len(EXPECT) :].strip().partition(": ")
    live = yaml.safe_load(text)
    assert isinstance(live, dict), f"{path.name}: not one object"
    return live, HealthStatus(status), message


FIXTURE_FILES = sorted(FIXTURES.glob("*.yaml"))


def test_fixture_folder_covers_every_status_a_check_can_give() -> None:
    # Guards the parametrized test below against an empty or half-read folder.
    statuses = {_load(path)[1] for path in FIXTURE_FILES}
    assert statuses == set(HealthStatus) - {HealthStatus.MISSING}


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.stem for p in FIXTURE_FILES])
def test_assess_fixture(path: Path) -> None:
    live, status, message = _load(path)

    health = assess(live)

    assert health.status is status, f"{path.name}: {health}"
    assert message in health.message, f"{path.name}: {health}"


def test_assess_does_not_mutate_the_live_object() -> None:
    live, _, _ = _load(FIXTURES / "deployment-progressing.yaml")
    before = yaml.safe_dump(live)

    assess(live)

    assert yaml.safe_dump(live) == before


def test_absent_object_is_missing() -> None:
    health = assess(None)

    assert health.status is HealthStatus.MISSING
    assert "does not exist" in health.message


def test_object_without_kind_is_unknown() -> None:
    assert assess({"apiVersion": "v1", "metadata": {"name": "x"}}).status is HealthStatus.UNKNOWN


def test_same_kind_in_another_group_uses_the_generic_check() -> None:
    # A CRD named Deployment in some other group is not an apps/v1 Deployment.
    live = {
        "apiVersion": "example.com/v1",
        "kind": "Deployment",
        "metadata": {"name": "x", "generation": 1},
        "spec": {"replicas": 3},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Done"}]},
    }

    assert assess(live) == Health(HealthStatus.HEALTHY, "Ready: Done")


def test_order_worst_first() -> None:
    order = [
        HealthStatus.DEGRADED,
        HealthStatus.MISSING,
        HealthStatus.UNKNOWN,
        HealthStatus.PROGRESSING,
        HealthStatus.SUSPENDED,
        HealthStatus.HEALTHY,
    ]
    for i, better in enumerate(order):
        for worse in order[:i]:
            assert worse.is_worse(better)
            assert not better.is_worse(worse)
            assert worst(worse, better) is worse
            assert worst(better, worse) is worse
        assert not better.is_worse(better)


def test_aggregate_names_how_many_are_not_healthy_and_the_worst() -> None:
    healths = [
        Health(HealthStatus.HEALTHY, "3 of 3 updated replicas are available"),
        Health(HealthStatus.PROGRESSING, "waiting for volume to be bound"),
        Health(HealthStatus.DEGRADED, 'container "web" is in CrashLoopBackOff'),
        Health(HealthStatus.HEALTHY, "exists"),
    ]

    health = aggregate(healths)

    assert health.status is HealthStatus.DEGRADED
    assert health.message == (
        "2 of 4 objects are not healthy (1 Degraded, 1 Progressing); "
        'Degraded: container "web" is in CrashLoopBackOff'
    )


def test_aggregate_all_healthy_and_empty() -> None:
    assert aggregate([Health(HealthStatus.HEALTHY, "exists")] * 2) == Health(
        HealthStatus.HEALTHY, "all 2 objects are healthy"
    )
    assert aggregate([]) == Health(HealthStatus.HEALTHY, "no objects")


def test_aggregate_counts_suspended_as_not_healthy() -> None:
    health = aggregate(
        [Health(HealthStatus.SUSPENDED, "CronJob is suspended"), Health(HealthStatus.HEALTHY, "")]
    )

    assert health.status is HealthStatus.SUSPENDED
    assert health.message.startswith("1 of 2 objects is not healthy (1 Suspended)")


# --- properties ---------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)

# Keys the checks read, so that generated content reaches past the first lookup.
_KEYS = st.sampled_from(
    [
        "replicas",
        "updatedReplicas",
        "availableReplicas",
        "readyReplicas",
        "observedGeneration",
        "conditions",
        "phase",
        "paused",
        "suspend",
        "containerStatuses",
        "initContainerStatuses",
        "loadBalancer",
        "updateStrategy",
        "currentRevision",
        "updateRevision",
        "desiredNumberScheduled",
        "updatedNumberScheduled",
        "numberAvailable",
        "message",
        "reason",
        "type",
        "active",
        "completions",
        "generation",
        "deletionTimestamp",
        "finalizers",
        "annotations",
        "volumeName",
        "minReplicas",
        "maxReplicas",
        "currentReplicas",
    ]
)
_CONDITION_TYPES = [
    "Ready",
    "Available",
    "Stalled",
    "Reconciling",
    "Progressing",
    "Failed",
    "Complete",
    "ReplicaFailure",
    "Established",
    "NamesAccepted",
    "ScalingActive",
    "AbleToScale",
    "PodScheduled",
]
_condition = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(_CONDITION_TYPES) | _json,
        "status": st.sampled_from(["True", "False", "Unknown"]) | _json,
        "reason": st.sampled_from(["ProgressDeadlineExceeded", "ScalingDisabled"]) | _json,
        "message": _json,
        "observedGeneration": _json,
    },
)
_section = st.dictionaries(
    _KEYS | st.text(max_size=6),
    _json | st.lists(_condition | _json, max_size=3),
    max_size=8,
)
_KINDS = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"),
    ("v1", "Pod"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "PersistentVolume"),
    ("v1", "Service"),
    ("v1", "Namespace"),
    ("networking.k8s.io/v1", "Ingress"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("apiregistration.k8s.io/v1", "APIService"),
    ("autoscaling/v1", "HorizontalPodAutoscaler"),
    ("example.com/v1", "Widget"),
]


@given(
    kind=st.sampled_from(_KINDS),
    metadata=_section | _json,
    spec=_section | _json,
    status=_section | _json,
)
def test_assess_never_raises_on_odd_status(
    kind: tuple[str, str], metadata: object, spec: object, status: object
) -> None:
    api_version, name = kind
    live = {"apiVersion": api_version, "kind": name, "metadata": metadata}
    live |= {"spec": spec, "status": status}

    health = assess(live)

    assert isinstance(health.status, HealthStatus)
    assert health.message


_health = st.builds(Health, st.sampled_from(HealthStatus), st.text(max_size=10))


@given(st.lists(_health, min_size=1, max_size=8))
def test_aggregate_returns_the_worst(healths: list[Health]) -> None:
    health = aggregate(healths)

    expected = max(healths, key=lambda h: h.status.severity).status
    assert health.status is expected
    assert all(not h.status.is_worse(health.status) for h in healths)
    unhealthy = sum(h.status is not HealthStatus.HEALTHY for h in healths)
    if unhealthy:
        assert health.message.startswith(f"{unhealthy} of {len(healths)} object")

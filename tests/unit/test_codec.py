"""Records to JSON and back: every persisted record round-trips, in camelCase, as plain JSON."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any, ForwardRef, cast, get_args, get_type_hints

import pytest

from appflow.errors import StoreError
from appflow.model import records
from appflow.model.appdef import Dependency, LabelRequirement, LabelSelector, SyncPolicy
from appflow.model.codec import JsonValue, from_json, to_json
from appflow.model.inventory import InventoryEntry
from appflow.model.objects import ObjectRef
from appflow.model.records import (
    AppRecord,
    CatalogChart,
    CatalogInstall,
    ClusterRecord,
    DeploymentRecord,
    FailingObject,
    GitCommit,
    HelmReleaseRef,
    InstalledChart,
    LocalContent,
    ReleaseRevision,
    ResourceCounts,
    RolloutPartitionRecord,
    RolloutRecord,
    SourceRef,
    TargetChoice,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

INSTALL = CatalogInstall(
    entry="mosquitto",
    chart=InstalledChart(kind="local", digest="sha256:abc", folder="/c/mosquitto/chart"),
    version="2.0.18",
    constraint="2.x",
    values={"persistence": {"size": "2Gi", "enabled": True}, "replicas": 2, "tags": ["a", None]},
    targets=TargetChoice(selector="site=berlin"),
    namespace="mqtt",
    upgrade_policy="auto",
)

RECORDS: list[object] = [
    AppRecord(
        name="web",
        source="local",
        local_path="/src/web",
        policy=SyncPolicy(auto=False, prune=False, self_heal=True),
        labels={"tier": "web"},
        depends_on=(
            Dependency(name="db"),
            Dependency(
                selector=LabelSelector(
                    match_labels={"tier": "db"},
                    match_expressions=(LabelRequirement("env", "In", ("prod", "test")),),
                )
            ),
        ),
        created_at=T0,
        updated_at=T0,
    ),
    AppRecord(name="mqtt", source="catalog", path="mosquitto", catalog=INSTALL, created_at=T0),
    DeploymentRecord(
        app="web",
        cluster="berlin-1",
        desired_revision=3,
        applied_revision=2,
        state="NotReady",
        inventory=(InventoryEntry(ObjectRef("apps", "Deployment", "shop", "web"), "apps/v1"),),
        applied={"shop_web_apps_Deployment": "d1:m1:uid"},
        release=HelmReleaseRef(
            namespace="shop",
            name="web",
            revision=4,
            history=(ReleaseRevision(revision=2, helm_revision=4),),
        ),
        resource_counts=ResourceCounts(desired_ready=1, not_ready=1),
        failing=(FailingObject(object="Deployment.apps/shop/web", message="0 of 1 ready"),),
        updated_at=T0,
    ),
    ClusterRecord(name="berlin-1", kind="eve-k", labels={"env": "prod"}, last_seen=T0),
    RolloutRecord(
        app="web",
        revision=3,
        state="Paused",
        partitions=(
            RolloutPartitionRecord(name="p1", clusters=("a", "b"), max_unavailable=1),
            RolloutPartitionRecord(name="p2", clusters=("c",), max_unavailable=1, state="Ready"),
        ),
        current=1,
        updated_at=T0,
    ),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_record_round_trips_through_plain_json(record: object) -> None:
    text = json.dumps(to_json(record))

    assert from_json(type(record), json.loads(text)) == record


def test_keys_are_camel_case_as_kubernetes_resources_spell_them() -> None:
    data = cast(dict[str, object], to_json(ResourceCounts(desired_ready=2, wait_applied=1)))

    assert data["desiredReady"] == 2
    assert data["waitApplied"] == 1
    assert "desired_ready" not in data


@pytest.mark.parametrize(
    "ref",
    [
        GitCommit(commit="3f2c1e9" * 5 + "abcde"),
        LocalContent(digest="0123456789ab"),
        CatalogChart(entry="repo/redis", version="18.1.0"),
    ],
)
def test_a_source_ref_is_a_tagged_object(ref: SourceRef) -> None:
    data = to_json(ref)

    assert isinstance(data, dict)
    assert data["kind"] == ref.kind
    assert from_json(SourceRef, data) == ref


def test_a_record_written_before_a_field_existed_reads_with_the_default() -> None:
    counts = from_json(ResourceCounts, {"ready": 3})

    assert counts == ResourceCounts(ready=3)


def test_data_that_does_not_fit_names_the_field() -> None:
    with pytest.raises(StoreError, match=r"field catalog.upgradePolicy"):
        from_json(
            CatalogInstall,
            {**cast(dict[str, object], to_json(INSTALL)), "upgradePolicy": "sometimes"},
            what="catalog",
        )
    with pytest.raises(StoreError, match=r"sourceRef\.kind"):
        from_json(SourceRef, {"kind": "svn", "commit": "1"}, what="sourceRef")
    with pytest.raises(StoreError, match="is missing"):
        from_json(HelmReleaseRef, {"namespace": "a", "name": "b"})


def _mentions_any(tp: object) -> bool:
    if tp is Any:
        return True
    return any(_mentions_any(arg) for arg in get_args(tp) if not isinstance(arg, ForwardRef))


def test_no_persisted_record_has_an_untyped_field() -> None:
    untyped = []
    for name, cls in vars(records).items():
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            continue
        if cls.__module__ != records.__name__:
            continue
        for field_name, hint in get_type_hints(cls, localns={"JsonValue": JsonValue}).items():
            if _mentions_any(hint):
                untyped.append(f"{name}.{field_name}: {hint}")

    assert untyped == []

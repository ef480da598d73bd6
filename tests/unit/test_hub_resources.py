"""Records as the hub's custom resources and back (appflow.model.resources), pure.

Every record the HubStore writes must come back equal from what it wrote, with the spec
fields a person (or kubectl, or Terraform) sees in the right places, and an AppFlow written by
a newer appflow is refused rather than half read.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from appflow.errors import StoreError
from appflow.model import resources as res
from appflow.model.appdef import Dependency, RolloutSpec, SyncPolicy
from appflow.model.hooks import HOOKS_KEY
from appflow.model.inventory import InventoryEntry
from appflow.model.objects import ObjectRef
from appflow.model.records import (
    AppRecord,
    CatalogChart,
    CatalogInstall,
    CatalogRepoRecord,
    ClusterGroupRecord,
    ClusterRecord,
    DeploymentRecord,
    FailingObject,
    GitCommit,
    HelmReleaseRef,
    HookRecord,
    InstalledChart,
    LocalContent,
    ReleaseRevision,
    RepoCredentials,
    RepoRecord,
    ResourceCounts,
    RevisionRecord,
    RolloutPartitionRecord,
    RolloutRecord,
    SyncRecord,
    TargetChoice,
)

T0 = datetime(2025, 3, 1, 12, 0, 5, 123456, tzinfo=UTC)


def _stored(obj: dict[str, Any], *, status: dict[str, Any] | None = None) -> dict[str, Any]:
    """OBJ as the API server gives it back: with a creation time and its status."""
    out = json.loads(json.dumps(obj))
    out["metadata"]["creationTimestamp"] = "2025-03-01T12:00:05Z"
    if status is not None:
        out["status"] = json.loads(json.dumps(status))
    return out


def test_a_cluster_round_trips_with_its_labels_and_secret() -> None:
    record = ClusterRecord(
        name="berlin-1",
        kind="eve-k",
        labels={"region": "eu", "appflow.dev/kind": "eve-k"},
        kubeconfig_path="/data/berlin-1.kubeconfig",
        context="admin@berlin",
        state="Offline",
        state_reason="the API server did not answer",
        k8s_version="v1.31.2+k3s1",
        distribution="k3s",
        mode="ha-3",
        node_count=3,
        last_seen=T0,
        created_at=datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC),
    )
    obj = res.cluster_resource(record, workspace="team", secret="appflow-kubeconfig-berlin-1")
    assert obj["metadata"]["labels"] == record.labels
    assert obj["spec"] == {
        "kind": "eve-k",
        "mode": "push",
        "kubeconfigSecretRef": {"name": "appflow-kubeconfig-berlin-1", "key": "kubeconfig"},
        "context": "admin@berlin",
    }
    status = res.cluster_status(record, namespace="team-c-berlin-1-abc123")
    back = res.cluster_record(
        _stored(obj, status=status), kubeconfig_path="/data/berlin-1.kubeconfig"
    )
    assert back == record
    assert res.secret_ref(obj) == ("appflow-kubeconfig-berlin-1", "kubeconfig")


def test_a_cluster_without_credentials_is_a_pull_cluster() -> None:
    obj = res.cluster_resource(
        ClusterRecord(name="edge-7", kind="eve-k"), workspace="team", secret=None
    )
    assert res.cluster_mode(obj) == "pull"
    assert res.secret_ref(obj) is None


def test_a_cleared_reason_is_written_as_empty() -> None:
    # A merge patch that left the reason out would keep an old one next to state Online.
    status = res.cluster_status(ClusterRecord(name="a", kind="imported"), namespace="n")
    assert status["reason"] == ""
    assert status["lastSeen"] is None  # null in a merge patch: removed


def test_a_group_keeps_its_selector() -> None:
    record = ClusterGroupRecord(name="eu-prod", selector="region=eu,tier notin (lab),!legacy")
    obj = res.group_resource(record, workspace="team")
    assert obj["spec"]["selector"] == {
        "matchLabels": {"region": "eu"},
        "matchExpressions": [
            {"key": "tier", "operator": "NotIn", "values": ["lab"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert res.group_record(_stored(obj)) == record


def test_a_repo_round_trips_with_its_webhook_secret_as_a_reference() -> None:
    record = RepoRecord(
        name="retail",
        url="https://git.example.com/retail.git",
        ref="main",
        paths=("apps/", "edge/"),
        auth=RepoCredentials(kind="token", secret_file="/secrets/token"),
        poll_interval_seconds=30,
        webhook_secret_ref="secret:appflow-webhook-retail/secret",
        last_commit="a" * 40,
        last_fetched=T0,
        created_at=datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC),
    )
    obj = res.repo_resource(record, workspace="team", webhook_secret="appflow-webhook-retail")
    assert obj["spec"]["webhookSecretRef"] == {"name": "appflow-webhook-retail", "key": "secret"}
    back = res.repo_record(_stored(obj, status=res.repo_status(record.last_commit, T0)))
    assert back == record


def test_a_catalog_repo_round_trips_and_one_written_with_kubectl_reads() -> None:
    record = CatalogRepoRecord(
        name="vendor",
        url="oci://registry.example.com/charts",
        username="robot",
        password_file="/secrets/vendor-password",
        poll_interval_seconds=600,
        created_at=datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC),
    )
    obj = res.catalog_repo_resource(record, workspace="team")
    assert obj["spec"] == {"url": "oci://registry.example.com/charts"}
    assert res.catalog_repo_record(_stored(obj)) == record
    by_hand = res.resource("CatalogRepo", "public", "team")
    by_hand["spec"] = {"url": "https://charts.example.com"}
    back = res.catalog_repo_record(_stored(by_hand))
    assert (back.name, back.url, back.username, back.poll_interval_seconds) == (
        "public",
        "https://charts.example.com",
        None,
        300,
    )


def _catalog_app() -> AppRecord:
    return AppRecord(
        name="mqtt",
        source="catalog",
        path="mosquitto",
        catalog=CatalogInstall(
            entry="mosquitto",
            chart=InstalledChart(kind="local", digest="abc", folder="/c/m", snapshot="/s/m"),
            version="2.0.18",
            constraint="2.x",
            values={"persistence": {"size": "2Gi"}},
            targets=TargetChoice(selector="site=berlin"),
            namespace="mqtt",
        ),
        pinned_revision=3,
        created_at=datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC),
        updated_at=T0,
    )


@pytest.mark.parametrize(
    "record",
    [
        AppRecord(
            name="web",
            source="git",
            repo="retail",
            path="apps/web",
            policy=SyncPolicy(auto=False, prune=True, self_heal=True),
            labels={"tier": "web"},
            depends_on=(Dependency(name="db"),),
            rollout=RolloutSpec(max_unavailable=1, auto_partition_size="25%"),
            created_at=datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC),
            updated_at=T0,
        ),
        _catalog_app(),
    ],
    ids=["git", "catalog"],
)
def test_an_app_round_trips(record: AppRecord) -> None:
    obj = res.app_resource(record, workspace="team")
    back = res.app_record(_stored(obj))
    assert back == record


def test_an_app_of_a_local_folder_names_its_snapshot_and_where_it_is_read() -> None:
    record = AppRecord(
        name="hello-edge",
        source="local",
        repo="examples",
        local_path="/home/me/repos-example",
        path="plain",
        created_at=datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC),
        updated_at=T0,
    )
    local = {"folder": "/home/me/repos-example", "snapshot": "sha256-" + "0" * 64}
    obj = res.app_resource(record, workspace="team", local=local)
    assert obj["spec"]["local"] == local
    assert "repo" not in obj["spec"]  # a GitRepo of that name cannot be fetched by the hub
    assert res.app_record(_stored(obj), local_path="/home/me/repos-example") == record
    copy = res.app_record(_stored(obj), local_path="/var/lib/appflow/snapshots/x")
    assert copy.local_path == "/var/lib/appflow/snapshots/x"
    assert copy.path == "plain"
    assert copy.repo == "examples"


def test_an_appflow_written_with_kubectl_is_a_git_app_of_its_spec() -> None:
    obj = {
        "apiVersion": "appflow.dev/v1alpha1",
        "kind": "AppFlow",
        "metadata": {
            "name": "web",
            "namespace": "team",
            "creationTimestamp": "2025-03-01T12:00:05Z",
        },
        "spec": {"repo": "retail", "path": "apps/web", "paused": False},
    }
    record = res.app_record(obj)
    assert (record.source, record.repo, record.path) == ("git", "retail", "apps/web")
    assert record.policy == SyncPolicy()


def test_an_appflow_of_a_newer_appflow_is_refused_with_what_to_do() -> None:
    obj = _stored(res.app_resource(_catalog_app(), workspace="team"))
    annotation = json.loads(obj["metadata"]["annotations"][res.ANNOTATION_RECORD])
    annotation["recordVersion"] = res.RECORD_VERSION + 1
    obj["metadata"]["annotations"][res.ANNOTATION_RECORD] = json.dumps(annotation)
    with pytest.raises(res.UnsupportedVersionError) as raised:
        res.app_record(obj)
    assert "upgrade the controllers" in str(raised.value)
    assert "AppFlow/mqtt" in str(raised.value)


def test_a_broken_record_annotation_names_the_resource() -> None:
    obj = _stored(res.app_resource(_catalog_app(), workspace="team"))
    obj["metadata"]["annotations"][res.ANNOTATION_RECORD] = "{not json"
    with pytest.raises(StoreError, match="AppFlow/mqtt"):
        res.app_record(obj)


@pytest.mark.parametrize(
    "ref",
    [
        GitCommit(commit="c" * 40),
        LocalContent(digest="0123456789ab"),
        CatalogChart(entry="a/b", version="1.2.3"),
    ],
)
def test_source_refs_read_back(ref: Any) -> None:
    assert res.source_ref_of(res.source_ref_text(ref)) == ref


def test_a_revision_entry_round_trips() -> None:
    record = RevisionRecord(
        app="web",
        number=7,
        digest="d" * 64,
        source_ref=GitCommit(commit="e" * 40),
        message="m",
        created_at=T0,
    )
    entry = res.revision_entry(record, rendered="sha256-" + "1" * 64)
    assert entry["rendered"] == "sha256-" + "1" * 64
    assert res.revision_record("web", entry) == record


def test_a_rollout_keeps_its_partitions_clusters() -> None:
    record = RolloutRecord(
        app="web",
        revision=3,
        state="Paused",
        partitions=(
            RolloutPartitionRecord(
                name="canary", clusters=("a",), max_unavailable=1, state="Ready"
            ),
            RolloutPartitionRecord(name="rest", clusters=("b", "c"), max_unavailable=1),
        ),
        current=1,
        message="paused by user",
        updated_at=T0,
    )
    data = res.rollout_status(record)
    assert data["partitions"][1]["clusterCount"] == 2
    assert res.rollout_record("web", data) == record


def _deployment() -> DeploymentRecord:
    web = ObjectRef(group="apps", kind="Deployment", namespace="web", name="web")
    page = ObjectRef(group="", kind="ConfigMap", namespace="web", name="page")
    return DeploymentRecord(
        app="web",
        cluster="berlin-1",
        desired_revision=4,
        applied_revision=3,
        state="NotReady",
        message="1 of 2 replicas available",
        inventory=(InventoryEntry(web, "apps/v1"), InventoryEntry(page, "v1")),
        applied={web.encode(): "fp-web", "v1|Secret|web|gone": "fp-gone"},
        release=HelmReleaseRef(
            namespace="web",
            name="web",
            revision=5,
            history=(ReleaseRevision(revision=3, helm_revision=5),),
        ),
        resource_counts=ResourceCounts(desired_ready=2, ready=1, not_ready=1),
        hooks=HookRecord(revision="r4"),
        failing=(FailingObject(object="Deployment/web/web", message="1 of 2 available"),),
        updated_at=T0,
    )


def test_hook_state_of_a_deployment_written_before_it_had_a_line_is_read() -> None:
    # Before DeploymentRecord.hooks, the hook state was one more fingerprint line.
    record = _deployment()
    old_lines = [
        line for line in res.inventory_objects(replace(record, hooks=None)) if "hooks" not in line
    ]
    old_lines.append({"object": HOOKS_KEY, "fingerprint": "install-failed"})
    obj = _stored(
        res.deployment_resource("web", "berlin-1", workspace="team", namespace="ns"),
        status=res.deployment_status(record, inventory="sha256-" + "2" * 64),
    )
    read = res.deployment_record(obj, inventory=old_lines)
    assert read.hooks == HookRecord(install_failed=True)
    assert HOOKS_KEY not in read.applied
    assert read.applied == record.applied
    # Written back, it has a line of its own.
    assert {"hooks": {"revision": "", "installFailed": True}} in res.inventory_objects(read)


def test_a_deployment_round_trips_through_its_status_and_inventory_content() -> None:
    record = _deployment()
    lines = res.inventory_objects(record)
    json.dumps(lines)  # content is JSON
    status = res.deployment_status(record, inventory="sha256-" + "2" * 64)
    assert status["inventory"] == {"count": 2, "index": "sha256-" + "2" * 64}
    obj = _stored(
        res.deployment_resource("web", "berlin-1", workspace="team", namespace="ns"), status=status
    )
    assert res.deployment_record(obj, inventory=lines) == record
    assert res.deployment_summary(obj).failing == 1


def test_history_is_bounded_and_keeps_a_running_sync() -> None:
    def entry(i: int, outcome: str = "succeeded") -> dict[str, Any]:
        sync = SyncRecord(
            id=i,
            app="web",
            cluster="c",
            revision=1,
            trigger="poll",
            started_at=T0,
            outcome=outcome,  # type: ignore[arg-type]
        )
        return res.history_entry(sync, writer="replica-a")

    history = [entry(1, "running"), *(entry(i) for i in range(2, 11))]
    out = res.bounded_history(history, entry(11), limit=10)
    assert [e["id"] for e in out] == [1, *range(3, 12)]
    assert out[0]["outcome"] == "running"
    replaced = res.bounded_history(out, entry(1, "failed"), limit=10)
    assert [e["id"] for e in replaced] == [1, *range(3, 12)]
    assert replaced[0]["outcome"] == "failed"
    assert res.sync_record("web", "c", replaced[0], sync_id=1).outcome == "failed"


def test_who_asked_for_a_sync_is_kept_in_its_history_entry() -> None:
    asked = SyncRecord(
        id=3, app="web", cluster="c", revision=1, trigger="user", actor="ops", started_at=T0
    )
    own = replace(asked, trigger="poll", actor="")
    entries = [res.history_entry(s, writer="replica-a") for s in (asked, own)]
    assert entries[0]["actor"] == "ops"
    assert "actor" not in entries[1]
    read = [res.sync_record("web", "c", e, sync_id=3) for e in entries]
    assert read == [asked, own]
    assert [s.asked_by for s in read] == ["ops", "poll"]


def test_an_event_is_an_events_k8s_io_event_regarding_the_app() -> None:
    long = "x" * 3000
    event = res.event_manifest(
        event_id=42,
        workspace="team",
        kind="failure",
        message=long,
        app="web",
        cluster="berlin-1",
        trigger="poll",
        commit="abc",
        outcome="failed",
        time=T0,
        reporter="replica-a",
    )
    assert event["regarding"] == {
        "apiVersion": "appflow.dev/v1alpha1",
        "kind": "AppFlow",
        "name": "web",
        "namespace": "team",
    }
    assert event["type"] == "Warning"
    assert event["reason"] == "Failed"
    assert len(event["note"]) <= res.EVENT_NOTE_LIMIT
    back = res.event_record(_stored(event))
    assert back is not None
    assert (back.id, back.message, back.app, back.cluster, back.commit) == (
        42,
        long,
        "web",
        "berlin-1",
        "abc",
    )
    assert res.event_record({"metadata": {"name": "someone-elses"}}) is None


def test_an_event_about_the_workspace_regards_its_namespace_in_its_namespace() -> None:
    event = res.event_manifest(
        event_id=7,
        workspace="team",
        kind="failure",
        message="repository edge: cannot list the refs",
        app=None,
        cluster=None,
        trigger="poll",
        commit=None,
        outcome="fetch-failed",
        time=T0,
        reporter="replica-a",
    )
    # The API server refuses an Event in "team" whose regarding namespace is not "team".
    assert event["metadata"]["namespace"] == event["regarding"]["namespace"] == "team"
    assert (event["regarding"]["kind"], event["regarding"]["name"]) == ("Namespace", "team")


def test_a_pending_request_is_one_not_finished_yet() -> None:
    obj: dict[str, Any] = {"spec": {"syncRequest": {"id": "r1"}}}
    assert res.pending_request(obj) == {"id": "r1"}
    obj["status"] = {"syncRequest": {"id": "r1", "phase": "Running"}}
    assert res.pending_request(obj) is not None  # its runner may have died
    obj["status"] = {"syncRequest": {"id": "r1", "phase": "Failed"}}
    assert res.pending_request(obj) is None
    obj["spec"]["syncRequest"] = {"id": "r2"}
    assert res.pending_request(obj) == {"id": "r2"}

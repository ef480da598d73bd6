"""What the hub shows of an AppFlow, what a sync's report looks like after the trip through the
hub, when a staged revision is released, and source snapshots (pure or local files only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from appflow.engine.report import AppSyncReport
from appflow.engine.stages.types import SyncResult
from appflow.errors import ApplyError, ClusterUnreachableError, Where
from appflow.hub.publish import offline_clusters, release_decision, verdicts
from appflow.hub.reports import report_data, report_of
from appflow.hub.snapshots import folder_files, write_files
from appflow.model.health import Health, HealthStatus
from appflow.model.hubstatus import app_status, cluster_apps
from appflow.model.inventory import Inventory
from appflow.model.objects import ObjectRef
from appflow.model.plan import Action, Change, Plan
from appflow.model.records import FailingObject, GitCommit, ResourceCounts, RevisionRecord
from appflow.sources.folders import folder_digest

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def afd(cluster: str, state: str | None, *, message: str = "", ready: int = 0) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if state is not None:
        status = {
            "state": state,
            "message": message,
            "resourceCounts": {"desiredReady": 2, "ready": ready, "notReady": 2 - ready},
        }
    return {"spec": {"app": "web", "cluster": cluster}, "status": status}


def test_an_app_is_as_ready_as_its_clusters_and_never_ready_while_one_waits() -> None:
    status = app_status(
        [
            afd("a", "Ready", ready=2),
            afd("b", "NotReady", message="1 of 2 available", ready=1),
            afd("c", None),
        ],
        before={},
        generation=3,
        reconciling=False,
        stalled="",
        now=T0,
    )
    assert status["summary"] == {
        "ready": 1,
        "notReady": 1,
        "waitApplied": 1,
        "errApplied": 0,
        "outOfSync": 0,
        "modified": 0,
        "missing": 0,
        "orphaned": 0,
        "unknown": 0,
        "desiredReady": 3,
    }
    assert status["resourceCounts"]["ready"] == 3
    assert status["display"] == {
        "readyClusters": "1/3",
        "state": "NotReady",
        "message": "b: NotReady: 1 of 2 available",
    }
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["observedGeneration"] == 3


def test_a_condition_keeps_its_transition_time_while_it_holds() -> None:
    first = app_status(
        [afd("a", "Ready")], before={}, generation=1, reconciling=False, stalled="", now=T0
    )
    later = app_status(
        [afd("a", "Ready")],
        before=first,
        generation=1,
        reconciling=False,
        stalled="",
        now=T0 + timedelta(minutes=5),
    )
    assert first["conditions"] == later["conditions"]
    stalled = app_status(
        [afd("a", "Ready")],
        before=later,
        generation=1,
        reconciling=False,
        stalled="render failed",
        now=T0 + timedelta(minutes=9),
    )
    kinds = {c["type"]: c for c in stalled["conditions"]}
    assert kinds["Stalled"]["status"] == "True"
    assert kinds["Stalled"]["message"] == "render failed"
    assert kinds["Ready"]["status"] == "False"
    assert kinds["Ready"]["lastTransitionTime"] != first["conditions"][0]["lastTransitionTime"]


def test_an_offline_cluster_shows_what_it_last_reported() -> None:
    offline = afd("a", "Unknown", message="cluster silent")
    offline["status"]["display"] = {"state": "Offline (last known: Ready r7)"}
    status = app_status([offline], before={}, generation=1, reconciling=False, stalled="", now=T0)
    assert (
        status["display"]["message"] == "a: Unknown: Offline (last known: Ready r7): cluster silent"
    )
    assert status["summary"]["unknown"] == 1
    assert status["summary"]["ready"] == 0


def test_a_cluster_counts_its_apps() -> None:
    out = cluster_apps([afd("a", "Ready"), afd("a", "ErrApplied")])
    assert out["display"] == {"readyApps": "1/2"}
    assert out["apps"]["errApplied"] == 1


def test_a_report_reads_back_as_the_cli_prints_it() -> None:
    ref = ObjectRef(group="", kind="ConfigMap", namespace="web", name="page")
    result = SyncResult(
        app="web",
        cluster="a",
        revision="r" * 12,
        plan=Plan(changes=(Change(ref, Action.CONFIGURE), Change(ref, Action.SKIP, reason="kept"))),
        state="NotReady",
        health=Health(HealthStatus.PROGRESSING, "waiting"),
        inventory=Inventory("web", ()),
        fingerprints={"x": "y"},
        errors=(ApplyError("refused", where=Where(cluster="a", object="ConfigMap/web/page")),),
        failing=(FailingObject(object="ConfigMap/web/page", message="refused"),),
        resource_counts=ResourceCounts(desired_ready=1, not_ready=1),
        seconds=1.25,
    )
    report = AppSyncReport(
        app="web",
        revision=RevisionRecord(
            app="web", number=2, digest="d", source_ref=GitCommit(commit="c" * 40), created_at=T0
        ),
        results=[result],
        unreachable={"b": ClusterUnreachableError("did not answer", where=Where(cluster="b"))},
        warnings=["w"],
        held={"c": "rollout paused"},
    )
    back = report_of(report_data(report))
    assert back.revision is not None
    assert back.revision.number == 2
    assert back.results[0].plan.counts() == result.plan.counts()
    assert back.results[0].plan.of(Action.SKIP)[0].reason == "kept"
    assert [str(e) for e in back.results[0].errors] == [str(e) for e in result.errors]
    assert back.unreachable["b"].retryable
    assert str(back.unreachable["b"]) == str(report.unreachable["b"])
    assert (back.ok, back.ready, back.retry) == (report.ok, report.ready, report.retry)
    assert back.held == report.held
    assert back.warnings == ["w"]


def staged(
    cluster: str, revision: int, result: str | None, *, released: bool = False
) -> dict[str, Any]:
    desired = {"revision": revision, "index": f"sha256-{revision}"}
    spec: dict[str, Any] = {"cluster": cluster, "staged": desired}
    if released:
        spec["released"] = desired
    status = {"staged": {"revision": revision, "result": result}} if result else {}
    return {"spec": spec, "status": status}


def test_a_staged_revision_is_released_only_when_every_target_validated_it() -> None:
    assert release_decision([staged("a", 2, "Validated"), staged("b", 2, None)]) == ([], {})
    assert release_decision([staged("a", 2, "Validated"), staged("b", 2, "Validated")]) == (
        ["a", "b"],
        {},
    )
    names, rejected = release_decision([staged("a", 2, "Validated"), staged("b", 2, "Rejected")])
    assert names == []
    assert list(rejected) == ["b"]
    # A validation of an older revision does not count for the new one.
    old = staged("b", 2, "Validated")
    old["spec"]["staged"]["revision"] = 3
    assert release_decision([staged("a", 3, "Validated"), old]) == ([], {})
    # What is released already is not released again.
    assert release_decision(
        [staged("a", 2, "Validated", released=True), staged("b", 2, "Validated")]
    ) == (["b"], {})


def test_offline_pull_clusters_follow_the_apps_offline_targets() -> None:
    fleet = [staged("a", 2, "Validated"), staged("b", 2, "Validated"), staged("c", 2, None)]
    assert release_decision(fleet, offline={"c"}) == ([], {})
    assert release_decision(fleet, offline={"c"}, policy="skip") == (["a", "b"], {})
    assert release_decision(fleet, offline={"c"}, policy="release") == (["a", "b", "c"], {})
    # An online cluster that has not validated holds the release back whatever the policy.
    assert release_decision(fleet, policy="release") == ([], {})
    # A rejection anywhere still releases nothing, offline or not.
    refused = [*fleet[:1], staged("b", 2, "Rejected")]
    assert release_decision([*refused, fleet[2]], offline={"c"}, policy="release")[0] == []
    # Back from offline and validated, the skipped cluster gets the revision.
    skipped = [
        staged("a", 2, "Validated", released=True),
        staged("b", 2, "Validated", released=True),
        staged("c", 2, "Validated"),
    ]
    assert release_decision(skipped, policy="skip") == (["c"], {})


def test_a_view_that_lags_behind_the_stage_holds_the_verdict_of_a_mixed_rollout() -> None:
    # The watch shows b's Deployment staged at revision 2 only, not yet the stage of 3 that
    # was just written for a and b: nothing of revision 3 is decided yet.
    view = [staged("b", 2, "Rejected")]
    decision = verdicts(view, offline=set(), policy="wait", revision=3, targets=["a", "b"])
    assert (set(decision.waiting), dict(decision.rejected)) == ({"a", "b"}, {})
    # Without the targets, an empty view passed for a fleet that validated.
    assert not verdicts([], offline=set(), policy="wait", revision=3).blocked
    shown = [staged("a", 3, "Validated"), staged("b", 3, None)]
    assert set(verdicts(shown, offline=set(), policy="wait", revision=3, targets="ab").waiting) == {
        "b"
    }
    # A target the view does not show yet that is Offline follows rollout.offlineTargets.
    decision = verdicts(shown[:1], offline={"b"}, policy="skip", revision=3, targets="ab")
    assert (decision.blocked, set(decision.release)) == (False, {"a"})
    # One released at the revision already is done, not waited for.
    done = [staged("a", 3, "Validated"), staged("b", 3, "Validated", released=True)]
    decision = verdicts(done, offline=set(), policy="wait", revision=3, targets="ab")
    assert (decision.blocked, set(decision.release)) == (False, {"a"})
    refused = [staged("a", 3, "Validated"), staged("b", 3, "Rejected")]
    decision = verdicts(refused, offline=set(), policy="wait", revision=3, targets="ab")
    assert list(decision.rejected) == ["b"]


def test_a_snapshot_holds_what_folder_digest_covers(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "templates").mkdir(parents=True)
    (app / ".git").mkdir()
    (app / ".git" / "HEAD").write_text("ref: x\n")
    (app / "Chart.yaml").write_text("name: x\n")
    (app / "templates" / "cm.yaml").write_bytes(b"kind: ConfigMap\n\x00binary")
    (app / "run.sh").write_text("#!/bin/sh\n")
    (app / "run.sh").chmod(0o755)
    files = folder_files(app)
    assert {f["path"] for f in files} == {"Chart.yaml", "templates/cm.yaml", "run.sh"}
    copy = write_files(files, tmp_path / "copy" / "app")
    assert folder_digest(copy) == folder_digest(app)
    assert (copy / "run.sh").stat().st_mode & 0o111


def _cluster(name: str, mode: str, state: str | None, *, seen: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {} if state is None else {"state": state}
    if seen:
        status["lastSeen"] = "2025-03-01T12:00:00Z"
    return {"metadata": {"name": name}, "spec": {"mode": mode}, "status": status}


def test_a_pull_cluster_that_never_connected_follows_the_offline_targets_policy() -> None:
    clusters = [
        _cluster("online", "pull", "Online", seen=True),
        _cluster("suspect", "pull", "Suspect", seen=True),
        _cluster("offline", "pull", "Offline", seen=True),
        # Added with `cluster add --mode pull`, its agent never registered.
        _cluster("never", "pull", "Init"),
        _cluster("new", "pull", None),
        # Registered a moment ago, its first heartbeat on its way: its verdict is waited for.
        _cluster("registered", "pull", "Init", seen=True),
        # A push cluster's state is its probe's, never a reason to skip it.
        _cluster("push", "push", "Offline"),
    ]
    unheard = offline_clusters(clusters)
    assert unheard == {"offline", "never", "new"}
    # With the default policy the fleet waits for them; skip goes on without them.
    fleet = [staged("online", 2, "Validated"), staged("never", 2, None)]
    assert release_decision(fleet, offline=unheard) == ([], {})
    assert release_decision(fleet, offline=unheard, policy="skip") == (["online"], {})

"""The pull agent's pure rules: two-phase publish, history, the status queue, backoff, and how
the hub shows a silent cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from appflow.errors import ConfigError
from appflow.model.agent import (
    BackoffPolicy,
    Desired,
    StatusQueue,
    Validation,
    append_history,
    liveness,
    next_actions,
    offline_display,
    offline_status,
    release_decision,
)
from appflow.sources.appdef import load_app_definitions

R1 = Desired(revision=1, index="sha256-" + "1" * 64)
R2 = Desired(revision=2, index="sha256-" + "2" * 64)


def test_a_staged_revision_is_validated_once_and_never_applied_before_release() -> None:
    assert next_actions(staged=R2, released=R1, paused=False, validated=None, applied=R1.key) == [
        "validate"
    ]
    done = Validation(revision=2, index=R2.index, result="Validated")
    assert next_actions(staged=R2, released=R1, paused=False, validated=done, applied=R1.key) == [
        "keep"
    ]
    rejected = Validation(revision=2, index=R2.index, result="Rejected", message="no")
    assert next_actions(
        staged=R2, released=R1, paused=False, validated=rejected, applied=R1.key
    ) == ["keep"]
    # Released: applied (the staged one equals it, nothing left to validate).
    assert next_actions(staged=R2, released=R2, paused=False, validated=done, applied=R1.key) == [
        "apply"
    ]
    assert next_actions(staged=R2, released=R2, paused=False, validated=None, applied=R1.key) == [
        "apply"
    ]


def test_a_new_staged_revision_and_a_new_release_at_once() -> None:
    r3 = Desired(revision=3, index="sha256-" + "3" * 64)
    assert next_actions(staged=r3, released=R2, paused=False, validated=None, applied=R1.key) == [
        "validate",
        "apply",
    ]


def test_paused_deployments_get_nothing_new_but_still_validate() -> None:
    assert next_actions(staged=R2, released=R2, paused=True, validated=None, applied=R1.key) == [
        "keep"
    ]
    assert next_actions(staged=R2, released=R1, paused=True, validated=None, applied=R1.key) == [
        "validate"
    ]


def test_release_needs_every_online_target_and_stops_at_any_rejection() -> None:
    online = {"a", "b", "c"}
    ok = release_decision(
        {"a": ("Validated", ""), "b": ("Validated", ""), "c": ("Validated", "")}, online=online
    )
    assert ok.release == frozenset(online)
    assert not ok.blocked
    waiting = release_decision(
        {"a": ("Validated", ""), "b": (None, ""), "c": ("Validated", "")}, online=online
    )
    assert waiting.release == frozenset()
    assert waiting.waiting == frozenset({"b"})
    refused = release_decision(
        {
            "a": ("Validated", ""),
            "b": ("Validated", ""),
            "c": ("Rejected", "replicas: Invalid value"),
        },
        online=online,
    )
    assert refused.release == frozenset()
    assert refused.rejected == {"c": "replicas: Invalid value"}


@pytest.mark.parametrize(
    ("policy", "released", "waiting"),
    [("wait", set(), {"c"}), ("skip", {"a", "b"}, set()), ("release", {"a", "b", "c"}, set())],
)
def test_offline_targets_follow_the_policy(
    policy: str, released: set[str], waiting: set[str]
) -> None:
    results = {"a": ("Validated", ""), "b": ("Validated", ""), "c": (None, "")}
    decision = release_decision(results, online={"a", "b"}, policy=policy)  # type: ignore[arg-type]
    assert decision.release == frozenset(released)
    assert decision.waiting == frozenset(waiting)


def test_the_offline_policy_is_the_apps_rollout_offline_targets(tmp_path: Path) -> None:
    app_dir = tmp_path / "edge-app"
    app_dir.mkdir()
    (app_dir / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    (app_dir / "appflow.yaml").write_text("rollout:\n  offlineTargets: skip\n")
    (app,) = load_app_definitions(tmp_path)
    assert app.rollout.offline_targets == "skip"
    (app_dir / "appflow.yaml").write_text("rollout: {}\n")
    (app,) = load_app_definitions(tmp_path)
    assert app.rollout.offline_targets == "wait"
    (app_dir / "appflow.yaml").write_text("rollout:\n  offlineTargets: later\n")
    with pytest.raises(ConfigError) as info:
        load_app_definitions(tmp_path)
    assert "rollout.offlineTargets" in str(info.value)
    assert "edge-app/appflow.yaml" in str(info.value)


def test_history_is_in_sequence_and_bounded() -> None:
    history: list[dict[str, object]] = []
    for n in range(12):
        history = append_history(history, {"revision": 1, "trigger": "selfHeal", "n": n})
    assert [e["id"] for e in history] == list(range(3, 13))
    assert [e["n"] for e in history] == list(range(2, 12))


def test_the_status_queue_keeps_the_latest_per_deployment() -> None:
    queue = StatusQueue()
    queue.put("web", {"state": "NotReady"})
    queue.put("db", {"state": "Ready"})
    queue.put("web", {"state": "Ready"})
    pending = queue.pending()
    assert [(n, s["state"]) for n, s, _ in pending] == [("db", "Ready"), ("web", "Ready")]
    (_, _, version) = pending[1]
    queue.put("web", {"state": "Modified"})  # arrives while the first is being sent
    queue.sent("web", version)
    assert [(n, s["state"]) for n, s, _ in queue.pending()] == [
        ("db", "Ready"),
        ("web", "Modified"),
    ]
    for name, _, v in queue.pending():
        queue.sent(name, v)
    assert len(queue) == 0


def test_backoff_doubles_is_jittered_and_capped() -> None:
    policy = BackoffPolicy(base=1.0, cap=60.0)
    assert policy.delay(0, draw=lambda: 0.0) == 0.5
    assert policy.delay(0, draw=lambda: 1.0) == 1.0
    assert policy.delay(3, draw=lambda: 1.0) == 8.0
    assert policy.delay(50, draw=lambda: 1.0) == 60.0
    assert policy.delay(50, draw=lambda: 0.0) == 30.0


def test_liveness_counts_missed_heartbeats() -> None:
    assert liveness(seen_ago=50, interval=60) == "Online"
    assert liveness(seen_ago=80, interval=60) == "Suspect"
    assert liveness(seen_ago=190, interval=60) == "Suspect"
    assert liveness(seen_ago=200, interval=60) == "Offline"


def test_a_silent_clusters_deployments_show_their_last_state_never_ready() -> None:
    assert offline_display("Ready", 7) == "Offline (last known: Ready r7)"
    assert offline_display("Offline (last known: Ready r7)", 7) == "Offline (last known: Ready r7)"
    assert offline_display(None, None) == "Offline"
    patch = offline_status({"state": "Ready", "appliedRevision": 7}, cluster="berlin-1", since="T")
    assert patch["state"] == "Unknown"
    assert patch["display"] == {"state": "Offline (last known: Ready r7)"}
    again = offline_status({**patch, "appliedRevision": 7}, cluster="berlin-1", since="T")
    assert again["display"] == {"state": "Offline (last known: Ready r7)"}

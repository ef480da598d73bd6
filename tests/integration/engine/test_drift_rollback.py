"""Drift, field ownership and rollback, against real API servers (which track field managers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    deployment,
    exists,
    history_json,
    kubectl,
    live,
    one_line,
    register_local,
    status_json,
    write_files,
)

pytestmark = pytest.mark.cluster


def test_hand_edit_shows_in_diff_and_sync_restores_only_appflows_fields(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("drift")
    sandbox = fleet.sandbox
    first, second = fleet.cluster_names[0], fleet.cluster_names[1]
    folder = write_files(
        tmp_path / "drift",
        {"web.yaml": [deployment("web", ns, replicas=2), configmap("settings", ns, {"a": "1"})]},
    )
    register_local(fleet, app, folder)
    synced = cli("sync", app, "--wait", "--timeout", "120")
    assert synced.exit_code == 0, synced.output

    clean = cli("app", "diff", app, "--cluster", first)
    assert clean.exit_code == 0, clean.output

    # By hand on the first cluster: kubectl's writes are Updates, as `kubectl edit` makes.
    kubectl(sandbox, 0, "-n", ns, "scale", "deployment/web", "--replicas=5")
    kubectl(sandbox, 0, "-n", ns, "label", "deployment/web", "team=ops")
    # And another declarative tool applies an annotation of its own.
    kube = sandbox.kube(0)
    try:
        kube.apply_sync(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "web",
                    "namespace": ns,
                    "annotations": {"monitoring.example/scrape": "true"},
                },
            },
            field_manager="monitoring-operator",
        )
    finally:
        kube.close()

    diff = cli("app", "diff", app)
    assert diff.exit_code == 1, diff.output
    text = diff.stdout
    assert f"# {app} on {first}: 1 configured, 1 unchanged" in text, text
    assert f"# {app} on {second}: 2 unchanged" in text, text
    assert "-  replicas: 5" in text, text
    assert "+  replicas: 2" in text, text
    # Fields other managers own are theirs: not drift.
    assert "team" not in text
    assert "monitoring.example/scrape" not in text

    restored = cli("sync", app, "--wait", "--timeout", "120")
    assert restored.exit_code == 0, restored.output
    out = one_line(restored.stdout)
    assert f"-> {first}: Ready (0 created, 1 configured, 1 unchanged, 0 pruned)" in out, out
    assert f"-> {second}: Ready (0 created, 0 configured, 2 unchanged, 0 pruned)" in out, out
    web = live(sandbox, 0, "apps/v1", "Deployment", "web", ns)
    assert web["spec"]["replicas"] == 2
    assert web["metadata"]["labels"]["team"] == "ops"
    assert web["metadata"]["annotations"]["monitoring.example/scrape"] == "true"

    after = cli("app", "diff", app)
    assert after.exit_code == 0, after.output


def test_conflict_with_another_apply_manager_is_reported_and_force_takes_over(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("owned")
    sandbox = fleet.sandbox
    folder = write_files(
        tmp_path / "owned",
        {"cm.yaml": [configmap("settings", ns, {"mode": "blue"}), configmap("other", ns, {})]},
    )
    register_local(fleet, app, folder)
    assert cli("sync", app).exit_code == 0

    # Another GitOps tool claims data.mode on the first cluster, by apply (not a hand edit).
    kube = sandbox.kube(0)
    try:
        kube.apply_sync(
            configmap("settings", ns, {"mode": "red"}), field_manager="rival-gitops", force=True
        )
    finally:
        kube.close()

    refused = cli("sync", app)
    assert refused.exit_code != 0
    text = one_line(refused.output)
    assert f"sync of {app} refused before any change" in text, text
    assert (
        f"app {app}, cluster {fleet.cluster_names[0]}, ConfigMap/{ns}/settings: "
        "server-side apply conflict with rival-gitops"
    ) in text, text
    assert "--force-conflicts" in text
    assert live(sandbox, 0, "v1", "ConfigMap", "settings", ns)["data"] == {"mode": "red"}

    forced = cli("sync", app, "--force-conflicts")
    assert forced.exit_code == 0, forced.output
    assert f"-> {fleet.cluster_names[0]}: Ready (0 created, 1 configured, 1 unchanged" in (
        one_line(forced.stdout)
    )
    settings = live(sandbox, 0, "v1", "ConfigMap", "settings", ns)
    assert settings["data"] == {"mode": "blue"}
    owners = {
        e["manager"]
        for e in settings["metadata"]["managedFields"]
        if "f:mode" in str(e.get("fieldsV1", {}))
    }
    assert owners == {"appflow"}

    # Taken over for good: the next plain sync has nothing to do.
    again = cli("sync", app)
    assert again.exit_code == 0, again.output
    assert one_line(again.stdout).count("(0 created, 0 configured, 2 unchanged") == 3


def test_rollback_restores_earlier_objects_and_prunes_later_ones(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("roll")
    sandbox = fleet.sandbox
    clusters = range(len(fleet.cluster_names))
    folder = write_files(
        tmp_path / "roll",
        {
            "a.yaml": [configmap("a", ns, {"v": "1"})],
            "b.yaml": [configmap("b", ns, {"v": "1"})],
        },
    )
    register_local(fleet, app, folder)
    assert cli("sync", app).exit_code == 0

    write_files(
        folder,
        {
            "a.yaml": [configmap("a", ns, {"v": "2"})],
            "b.yaml": None,
            "c.yaml": [configmap("c", ns, {"v": "2"}), deployment("c-web", ns)],
        },
    )
    second = cli("sync", app)
    assert second.exit_code == 0, second.output
    assert "revision 2" in second.stdout
    for index in clusters:
        assert not exists(sandbox, index, "v1", "ConfigMap", "b", ns)
        assert exists(sandbox, index, "apps/v1", "Deployment", "c-web", ns)

    rolled = cli("app", "rollback", app, "--to", "1")
    assert rolled.exit_code == 0, rolled.output
    out = one_line(rolled.stdout)
    for name in fleet.cluster_names:
        assert (
            f"{app} revision 1 -> {name}: Ready (1 created, 1 configured, 0 unchanged, 2 pruned)"
            in (out)
        ), out
    assert f"app {app} is pinned to revision 1" in out
    for index in clusters:
        assert live(sandbox, index, "v1", "ConfigMap", "a", ns)["data"] == {"v": "1"}
        assert live(sandbox, index, "v1", "ConfigMap", "b", ns)["data"] == {"v": "1"}
        assert not exists(sandbox, index, "v1", "ConfigMap", "c", ns)
        assert not exists(sandbox, index, "apps/v1", "Deployment", "c-web", ns)

    rollbacks = [s for s in history_json(app) if s["trigger"] == "rollback"]
    assert sorted(s["cluster"] for s in rollbacks) == sorted(fleet.cluster_names)
    for s in rollbacks:
        assert s["revision"] == 1
        assert s["outcome"] == "succeeded"
        assert s["counts"]["pruned"] == 2
    [entry] = [a for a in status_json()["apps"] if a["name"] == app]
    assert {d["revision"] for d in entry["deployments"].values()} == {1}
    shown = cli("app", "show", app, "-o", "json")
    assert '"pinnedRevision": 1' in shown.stdout

    # Resuming returns to what the source says now.
    back = cli("app", "resume", app)
    assert back.exit_code == 0, back.output
    for index in clusters:
        assert live(sandbox, index, "v1", "ConfigMap", "a", ns)["data"] == {"v": "2"}
        assert not exists(sandbox, index, "v1", "ConfigMap", "b", ns)
        assert exists(sandbox, index, "apps/v1", "Deployment", "c-web", ns)

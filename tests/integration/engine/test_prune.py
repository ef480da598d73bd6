"""Prune: only what the inventory names and the app still owns is deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from appflow.model.objects import ANNOTATION_OWNER, LABEL_APP
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
    write_files,
)

pytestmark = pytest.mark.cluster


def test_removed_manifest_is_pruned_and_nothing_else(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("shop")
    sandbox = fleet.sandbox
    clusters = range(len(fleet.cluster_names))
    folder = write_files(
        tmp_path / "shop",
        {
            "keep.yaml": [configmap("keep", ns, {"k": "v"})],
            "gone.yaml": [configmap("gone", ns, {"k": "v"}), deployment("gone-web", ns)],
            "pinned.yaml": [
                configmap("pinned", ns, {"k": "v"}, annotations={"appflow.dev/prune": "false"})
            ],
            "adopted-away.yaml": [configmap("handed-over", ns, {"k": "v"})],
        },
    )
    register_local(fleet, app, folder)
    first = cli("sync", app)
    assert first.exit_code == 0, first.output

    # By hand: an object with the app's label and even its owner annotation,
    # but never in the app's inventory.
    lookalike = configmap(
        "lookalike",
        ns,
        {"made": "by hand"},
        labels={LABEL_APP: app},
        annotations={ANNOTATION_OWNER: app},
    )
    for index in clusters:
        kube = sandbox.kube(index)
        try:
            kube.apply_sync(lookalike, field_manager="someone")
        finally:
            kube.close()
        # Another team takes one of the app's objects over: it is no longer the app's.
        kubectl(
            sandbox, index, "-n", ns, "label", "configmap", "handed-over",
            f"{LABEL_APP}=other-team", "--overwrite",
        )  # fmt: skip

    # The next commit removes every file but keep.yaml.
    write_files(folder, {"gone.yaml": None, "pinned.yaml": None, "adopted-away.yaml": None})
    second = cli("sync", app)
    assert second.exit_code == 0, second.output
    text = one_line(second.stdout)
    for name in fleet.cluster_names:
        assert f"-> {name}: Ready (0 created, 0 configured, 1 unchanged, 2 pruned)" in text, (
            second.output
        )
    assert (
        text.count(f"kept ConfigMap/{ns}/pinned: kept by annotation appflow.dev/prune=false") == 3
    )
    assert text.count(f"kept ConfigMap/{ns}/handed-over: not owned by app {app}") == 3

    for index in clusters:
        assert not exists(sandbox, index, "v1", "ConfigMap", "gone", ns)
        assert not exists(sandbox, index, "apps/v1", "Deployment", "gone-web", ns)
        assert live(sandbox, index, "v1", "ConfigMap", "keep", ns)["data"] == {"k": "v"}
        assert live(sandbox, index, "v1", "ConfigMap", "pinned", ns)["data"] == {"k": "v"}
        assert live(sandbox, index, "v1", "ConfigMap", "handed-over", ns)["data"] == {"k": "v"}
        assert live(sandbox, index, "v1", "ConfigMap", "lookalike", ns)["data"] == {
            "made": "by hand"
        }
    for sync in history_json(app):
        if sync["revision"] == 2:
            assert sync["counts"]["pruned"] == 2
            assert sync["counts"]["skipped"] == 2

    # Kept objects left the inventory: a later sync neither deletes nor mentions them.
    write_files(folder, {"keep.yaml": [configmap("keep", ns, {"k": "changed"})]})
    third = cli("sync", app)
    assert third.exit_code == 0, third.output
    assert "kept" not in third.stdout
    for index in clusters:
        assert exists(sandbox, index, "v1", "ConfigMap", "pinned", ns)
        assert exists(sandbox, index, "v1", "ConfigMap", "handed-over", ns)


def test_app_delete_prunes_its_objects_and_leaves_lookalikes(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("temp")
    folder = write_files(
        tmp_path / "temp",
        {"all.yaml": [configmap("a", ns, {"k": "v"}), deployment("web", ns)]},
    )
    register_local(fleet, app, folder)
    assert cli("sync", app).exit_code == 0
    lookalike = configmap(
        "lookalike", ns, {"k": "v"}, labels={LABEL_APP: app}, annotations={ANNOTATION_OWNER: app}
    )
    kube = fleet.sandbox.kube(0)
    try:
        kube.apply_sync(lookalike, field_manager="someone")
    finally:
        kube.close()

    deleted = cli("app", "delete", app)
    assert deleted.exit_code == 0, deleted.output
    assert f"deleted app {app}" in deleted.stdout
    for index in range(len(fleet.cluster_names)):
        assert not exists(fleet.sandbox, index, "v1", "ConfigMap", "a", ns)
        assert not exists(fleet.sandbox, index, "apps/v1", "Deployment", "web", ns)
        assert not exists(
            fleet.sandbox, index, "v1", "ConfigMap", f"appflow-inventory-{app}", "appflow-system"
        )
    assert exists(fleet.sandbox, 0, "v1", "ConfigMap", "lookalike", ns)

"""A first sync (as far as the store knows) reads no LIST, yet forgets nothing on the cluster."""

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
    live,
    one_line,
    register_local,
    write_files,
)

pytestmark = pytest.mark.cluster


def test_a_store_that_forgot_the_app_still_prunes_what_the_cluster_inventory_names(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("forgot")
    folder = write_files(
        tmp_path / "forgot",
        {
            "keep.yaml": [configmap("keep", ns, {"k": "v"})],
            "gone.yaml": [configmap("gone", ns, {"k": "v"}), deployment("gone-web", ns)],
        },
    )
    register_local(fleet, app, folder)
    first = cli("sync", app)
    assert first.exit_code == 0, first.output

    # The store loses its records of the app (a new appflow home, a restored backup):
    # only the clusters' inventories still know what the app owns.
    for name in fleet.cluster_names:
        fleet.store.delete_deployment(app, name)
    write_files(folder, {"gone.yaml": None})
    second = cli("sync", app)

    assert second.exit_code == 0, second.output
    text = one_line(second.stdout)
    for name in fleet.cluster_names:
        assert f"-> {name}: Ready (0 created, 0 configured, 1 unchanged, 2 pruned)" in text, (
            second.output
        )
    for index in range(len(fleet.cluster_names)):
        assert not exists(fleet.sandbox, index, "v1", "ConfigMap", "gone", ns)
        assert not exists(fleet.sandbox, index, "apps/v1", "Deployment", "gone-web", ns)
        assert live(fleet.sandbox, index, "v1", "ConfigMap", "keep", ns)["data"] == {"k": "v"}


def test_first_sync_plans_objects_made_by_hand_as_configured(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("adopt")
    for index in range(len(fleet.cluster_names)):
        kube = fleet.sandbox.kube(index)
        try:
            kube.apply_sync(configmap("made", ns, {"k": "by hand"}), field_manager="someone")
        finally:
            kube.close()
    folder = write_files(
        tmp_path / "adopt",
        {
            "made.yaml": [configmap("made", ns, {"k": "by appflow"})],
            "new.yaml": [configmap("new", ns, {"k": "v"})],
        },
    )
    register_local(fleet, app, folder)

    result = cli("sync", app, "--force-conflicts")

    assert result.exit_code == 0, result.output
    text = one_line(result.stdout)
    for name in fleet.cluster_names:
        assert f"-> {name}: Ready (1 created, 1 configured, 0 unchanged, 0 pruned)" in text, (
            result.output
        )
    for index in range(len(fleet.cluster_names)):
        assert live(fleet.sandbox, index, "v1", "ConfigMap", "made", ns)["data"] == {
            "k": "by appflow"
        }

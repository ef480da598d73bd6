"""`app rollback` pins the revision visibly; `sync` explains; `app resume` unpins (issue 9 item 9)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, configmap, live, one_line, write_files

pytestmark = pytest.mark.cluster


def show(app: str) -> dict[str, Any]:
    result = cli("app", "show", app, "-o", "json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_rollback_pins_until_resume(fleet: Fleet, space: Space, tmp_path: Path) -> None:
    ns = space.namespace
    app = space.app("pinned")
    clusters = range(len(fleet.cluster_names))
    folder = write_files(
        tmp_path / "pinned",
        {
            "fleet.yaml": f"defaultNamespace: {ns}\n",
            "settings.yaml": [configmap("settings", ns, {"mode": "blue"})],
        },
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    assert cli("sync", app).exit_code == 0
    write_files(folder, {"settings.yaml": [configmap("settings", ns, {"mode": "green"})]})
    assert cli("sync", app).exit_code == 0
    assert show(app).get("pinnedRevision", "absent") is None

    rolled = cli("app", "rollback", app, "--to", "1")
    assert rolled.exit_code == 0, rolled.output
    text = one_line(rolled.output)
    assert f"app {app} is pinned to revision 1" in text, text
    assert f"appflow app resume {app}" in text, text
    shown = show(app)
    assert shown["pinnedRevision"] == 1
    assert {d["appliedRevision"] for d in shown["deployments"]} == {1}

    # A later sync does not silently leave the pinned revision, and says how to unpin.
    refused = cli("sync", app)
    assert refused.exit_code != 0, refused.output
    said = one_line(refused.output)
    assert f"app {app} is pinned to revision 1" in said, said
    assert f"`appflow app resume {app}`" in said, said
    for index in clusters:
        assert live(fleet.sandbox, index, "v1", "ConfigMap", "settings", ns)["data"] == {
            "mode": "blue"
        }

    resumed = cli("app", "resume", app)
    assert resumed.exit_code == 0, resumed.output
    assert show(app)["pinnedRevision"] is None
    for index in clusters:
        assert live(fleet.sandbox, index, "v1", "ConfigMap", "settings", ns)["data"] == {
            "mode": "green"
        }
    assert cli("sync", app).exit_code == 0


def test_sync_all_leaves_a_pinned_app_out_and_syncs_the_others(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    pinned, other = space.app("held"), space.app("moving")
    folders = {
        name: write_files(
            tmp_path / name,
            {
                "fleet.yaml": f"defaultNamespace: {ns}\n",
                "settings.yaml": [configmap(f"{name}-settings", ns, {"mode": "blue"})],
            },
        )
        for name in (pinned, other)
    }
    for name, folder in folders.items():
        assert cli("app", "add", name, "--local", str(folder)).exit_code == 0
        assert cli("sync", name).exit_code == 0
        write_files(
            folder, {"settings.yaml": [configmap(f"{name}-settings", ns, {"mode": "green"})]}
        )
    rolled = cli("app", "rollback", pinned, "--to", "1")
    assert rolled.exit_code == 0, rolled.output

    synced = cli("sync", "--all")
    assert synced.exit_code == 0, synced.output
    said = one_line(synced.output)
    assert f"skipped app {pinned}: pinned to revision 1" in said, said
    assert f"`appflow app resume {pinned}`" in said, said
    assert f"{other} revision 2 -> " in said, said
    for index in range(len(fleet.cluster_names)):
        assert live(fleet.sandbox, index, "v1", "ConfigMap", f"{other}-settings", ns)["data"] == {
            "mode": "green"
        }
        assert live(fleet.sandbox, index, "v1", "ConfigMap", f"{pinned}-settings", ns)["data"] == {
            "mode": "blue"
        }
    # Named, a pinned app still refuses.
    assert cli("sync", pinned).exit_code != 0

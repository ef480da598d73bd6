"""Local folders never lead appflow out of themselves through symlinks (issue 10, item 9).

A file of the app linked to a file elsewhere on this machine (a cluster's stored
kubeconfig, in the reported case) would be rendered and sent to a cluster.
Git checkouts refuse such links; local folders are checked the same way, for
files and for folders, before anything is rendered.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    exists,
    live,
    one_line,
    register_local,
    snapshot,
    write_files,
)

pytestmark = pytest.mark.cluster


def outside(tmp_path: Path, namespace: str) -> Path:
    """A folder beside the app, with what a link must not bring in."""
    folder = tmp_path / "elsewhere"
    leaked = configmap("leaked", namespace, {"kubeconfig": "client-key-data: TOP-SECRET"})
    write_files(folder, {"stolen.yaml": yaml.safe_dump(leaked)})
    return folder


@pytest.mark.parametrize("link", ["file", "folder"])
def test_a_link_out_of_a_local_app_is_refused_and_nothing_applied(
    fleet: Fleet, space: Space, tmp_path: Path, link: str
) -> None:
    app = space.app("links")
    elsewhere = outside(tmp_path, space.namespace)
    folder = write_files(tmp_path / "app", {"app.yaml": [configmap("mine", space.namespace, {})]})
    if link == "file":
        os.symlink(elsewhere / "stolen.yaml", folder / "leak.yaml")
        named = "leak.yaml"
    else:
        os.symlink(elsewhere, folder / "more")
        named = "more"
    register_local(fleet, app, folder)
    before = snapshot(fleet.sandbox, space)

    result = cli("sync", app)

    assert result.exit_code == 1, result.output
    text = one_line(result.output)
    assert f"symlink {named!r} in folder {folder} points outside the repository" in text
    assert f"app {app}" in text
    assert snapshot(fleet.sandbox, space) == before
    for index in range(len(fleet.cluster_names)):
        assert not exists(fleet.sandbox, index, "v1", "ConfigMap", "leaked", space.namespace)


def test_a_link_inside_the_folder_is_fine(fleet: Fleet, space: Space, tmp_path: Path) -> None:
    app = space.app("inside")
    # A hidden folder is not read as manifests: only the link to it brings the file in.
    folder = write_files(
        tmp_path / "app",
        {".shared/app.yml": [configmap("mine", space.namespace, {"k": "v"})]},
    )
    os.symlink(".shared/app.yml", folder / "main.yaml")
    register_local(fleet, app, folder)
    result = cli("sync", app)
    assert result.exit_code == 0, result.output
    for index in range(len(fleet.cluster_names)):
        assert live(fleet.sandbox, index, "v1", "ConfigMap", "mine", space.namespace)

"""An app's render inputs (``renderOn: agent``): what the hub ships for a pull cluster to render
itself, and what the agent reads back. Pure apart from a small folder in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from appflow.engine.render_inputs import (
    inputs_objects,
    read_inputs,
    request_of,
    source_files,
)
from appflow.errors import ConfigError, ContentError
from appflow.model.appdef import AppDefinition, DecryptionSpec, EncryptedValues
from appflow.model.capabilities import Capabilities
from appflow.render.types import HelmChartRef, RenderRequest


def chart_app(root: Path) -> tuple[RenderRequest, AppDefinition]:
    app = root / "apps" / "bridge"
    (app / "templates").mkdir(parents=True)
    (app / "Chart.yaml").write_text("apiVersion: v2\nname: bridge\nversion: 0.1.0\n")
    (app / "templates" / "cm.yaml").write_text("kind: ConfigMap\n")
    (app / "values-cloud.sops.yaml").write_text("cloud: ENC[...]\nsops: {}\n")
    (app / ".git-keep").write_text("not the app's")
    shared = root / "shared"
    shared.mkdir()
    (shared / "common.yaml").write_text("region: eu\n")
    request = RenderRequest(
        app="bridge",
        cluster="site-1",
        kind="helm",
        source_dir=app,
        source_digest="d1",
        capabilities=Capabilities(kube_version="v1.31.0", api_versions=("v1", "apps/v1")),
        namespace="bridge",
        helm=HelmChartRef(path=app, version=None, dependency_update=False),
        values={"site": "site-1"},
        values_files=(shared / "common.yaml", app / "values-cloud.sops.yaml"),
        source_root=root,
        object_annotations={"appflow.dev/take-ownership": "true"},
    )
    definition = AppDefinition(
        name="bridge",
        path="apps/bridge",
        kind="helm",
        namespace="bridge",
        namespace_labels={"team": "edge"},
        decryption=DecryptionSpec(
            paths=("*.sops.yaml",), values=(EncryptedValues(name="extra.yaml", content="x"),)
        ),
        origin="appflow.yaml",
    )
    return request, definition


def test_the_agent_rebuilds_the_request_the_hub_would_have_rendered(tmp_path: Path) -> None:
    request, definition = chart_app(tmp_path / "repo")
    objects = inputs_objects(request, definition)
    header, files = read_inputs(objects)
    names = [n for n, _ in files]
    # The app folder without its dot-files, and a values file outside it.
    assert names == [
        "apps/bridge/Chart.yaml",
        "apps/bridge/templates/cm.yaml",
        "apps/bridge/values-cloud.sops.yaml",
        "shared/common.yaml",
    ]
    edge = tmp_path / "edge"
    shipped = request_of(header, edge, app="bridge")
    rebuilt = shipped.request
    assert rebuilt.source_dir == edge / "apps/bridge"
    assert rebuilt.helm is not None
    assert rebuilt.helm.path == edge / "apps/bridge"
    assert rebuilt.helm.dependency_update is False
    assert rebuilt.values_files == (
        edge / "shared/common.yaml",
        edge / "apps/bridge/values-cloud.sops.yaml",
    )
    assert rebuilt.root == edge
    for same in (
        "kind",
        "cluster",
        "capabilities",
        "namespace",
        "values",
        "source_digest",
        "object_annotations",
    ):
        assert getattr(rebuilt, same) == getattr(request, same), same
    assert shipped.definition.decryption == definition.decryption
    assert shipped.definition.namespace_labels == {"team": "edge"}
    assert shipped.definition.origin == "appflow.yaml"


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "apps/../../outside", ".hidden", ""])
def test_a_file_outside_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    request, definition = chart_app(tmp_path)
    objects = inputs_objects(request, definition)
    objects[1] = {**objects[1], "metadata": {"name": name}}
    with pytest.raises(ContentError, match="outside their folder"):
        read_inputs(objects)


def test_anything_but_render_inputs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match="not an app's render inputs"):
        read_inputs([{"apiVersion": "v1", "kind": "ConfigMap"}])
    request, definition = chart_app(tmp_path)
    objects = inputs_objects(request, definition)
    with pytest.raises(ContentError, match="not a SourceFile"):
        read_inputs([*objects, {"kind": "Secret"}])
    with pytest.raises(ContentError, match="malformed"):
        read_inputs([objects[0], {"kind": "SourceFile", "metadata": {"name": "a"}}])


def test_an_app_too_large_to_ship_names_the_file(tmp_path: Path) -> None:
    request, _ = chart_app(tmp_path)
    (request.source_dir / "big.bin").write_bytes(b"x" * 2048)
    with pytest.raises(ConfigError, match="too much to ship") as caught:
        source_files(request, limit=1024)
    assert "apps/bridge/big.bin" in str(caught.value)
    assert "bridge" in str(caught.value)

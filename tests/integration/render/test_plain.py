"""Plain YAML folders: discovery rules, object checks, Fleet-style overlays."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from appflow.errors import RenderError
from appflow.render import Capabilities, Rendered, RenderRequest, render


def yaml_request(source: Path, capabilities: Capabilities, **overrides: Any) -> RenderRequest:
    fields: dict[str, Any] = {
        "app": "shop",
        "cluster": "berlin-1",
        "kind": "yaml",
        "source_dir": source,
        "source_digest": f"test:{source}",
        "capabilities": capabilities,
        "namespace": "shop",
    }
    fields.update(overrides)
    return RenderRequest(**fields)


def index(rendered: Rendered) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects}


async def test_folder_rules(testdata: Path, capabilities: Capabilities) -> None:
    rendered = await render(yaml_request(testdata / "plain", capabilities))
    objects = index(rendered)

    assert sorted(objects) == [
        ("ClusterRole", "web-reader"),
        ("ConfigMap", "listed-a"),
        ("ConfigMap", "listed-b"),
        ("ConfigMap", "settings"),
        ("Deployment", "web"),
        ("Service", "nested-svc"),
        ("Service", "web"),
    ]
    # Namespaced objects get the app namespace unless they name one; cluster-scoped never do.
    assert objects[("ConfigMap", "listed-a")]["metadata"]["namespace"] == "elsewhere"
    assert objects[("ConfigMap", "listed-b")]["metadata"]["namespace"] == "shop"
    assert "namespace" not in objects[("ClusterRole", "web-reader")]["metadata"]
    # A date in YAML/JSON stays the string the API server would receive.
    assert objects[("ConfigMap", "settings")]["data"]["released"] == "2024-01-02"
    # Sorted paths, then document order.
    assert [o["metadata"]["name"] for o in rendered.objects][:2] == ["web", "web"]


async def test_fleet_overlays(testdata: Path, capabilities: Capabilities) -> None:
    rendered = await render(yaml_request(testdata / "plain", capabilities, yaml_overlays=("edge",)))
    objects = index(rendered)

    assert objects[("ConfigMap", "settings")]["data"] == {"source": "edge overlay"}
    assert objects[("ConfigMap", "edge-extra")]["data"] == {"site": "edge"}
    deployment = objects[("Deployment", "web")]
    assert deployment["spec"]["replicas"] == 2
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web"]
    assert containers[0]["image"] == "registry.example/web:1.0"
    assert containers[0]["env"] == [
        {"name": "MODE", "value": "edge"},
        {"name": "KEEP", "value": "yes"},
    ]
    nested = objects[("Service", "nested-svc")]
    assert nested["spec"]["ports"] == [{"port": 9090}]
    assert nested["metadata"]["labels"] == {"patched": "json-patch"}
    assert (
        rendered.revision != (await render(yaml_request(testdata / "plain", capabilities))).revision
    )


async def test_unknown_overlay(testdata: Path, capabilities: Capabilities) -> None:
    with pytest.raises(RenderError) as caught:
        await render(yaml_request(testdata / "plain", capabilities, yaml_overlays=("moon",)))
    assert "moon" in str(caught.value)
    assert "edge" in str(caught.value)  # the overlays that do exist


async def test_patch_without_target_file(tmp_path: Path, capabilities: Capabilities) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "overlays" / "x").mkdir(parents=True)
    (tmp_path / "overlays" / "x" / "b_patch.yaml").write_text("data: {k: v}\n")
    with pytest.raises(RenderError) as caught:
        await render(yaml_request(tmp_path, capabilities, yaml_overlays=("x",)))
    assert "b.yaml" in str(caught.value)
    assert caught.value.where.file == "overlays/x/b_patch.yaml"


async def test_broken_yaml_names_file_line_and_column(
    tmp_path: Path, capabilities: Capabilities
) -> None:
    nested = tmp_path / "config"
    nested.mkdir()
    (nested / "good.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\n")
    (nested / "bad.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  key: [unclosed\n"
    )
    with pytest.raises(RenderError) as caught:
        await render(yaml_request(tmp_path, capabilities))

    err = caught.value
    assert err.where.file == "config/bad.yaml"
    assert err.where.line is not None
    assert err.where.line >= 6
    assert err.where.column is not None
    assert f"config/bad.yaml:{err.where.line}:{err.where.column}" in str(err)
    assert err.where.app == "shop"
    assert err.where.cluster == "berlin-1"


async def test_broken_json_names_file_and_line(tmp_path: Path, capabilities: Capabilities) -> None:
    (tmp_path / "x.json").write_text(
        '{\n  "apiVersion": "v1",\n  "kind": "ConfigMap"\n  "metadata": {}\n}\n'
    )
    with pytest.raises(RenderError) as caught:
        await render(yaml_request(tmp_path, capabilities))
    assert caught.value.where.file == "x.json"
    assert caught.value.where.line == 4


async def test_non_object_documents_are_refused(tmp_path: Path, capabilities: Capabilities) -> None:
    (tmp_path / "objs.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n"
        "---\n"
        "apiVersion: v1\nmetadata: {name: no-kind}\n"
    )
    with pytest.raises(RenderError) as caught:
        await render(yaml_request(tmp_path, capabilities))
    text = str(caught.value)
    assert "document 2" in text
    assert "missing kind" in text
    assert caught.value.where.file == "objs.yaml"
    assert caught.value.where.line == 5

    (tmp_path / "objs.yaml").write_text("- just\n- a list\n")
    with pytest.raises(RenderError, match="not a Kubernetes object"):
        await render(yaml_request(tmp_path, capabilities))


async def test_duplicate_objects_are_refused(tmp_path: Path, capabilities: Capabilities) -> None:
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: twice}\n"
    (tmp_path / "a.yaml").write_text(doc)
    (tmp_path / "b.yml").write_text(doc)
    with pytest.raises(RenderError) as caught:
        await render(yaml_request(tmp_path, capabilities))
    assert "ConfigMap/shop/twice" in str(caught.value)
    assert "a.yaml" in str(caught.value)
    assert caught.value.where.file == "b.yml"


async def test_hooks_are_kept_and_may_be_named_by_the_server(
    tmp_path: Path, capabilities: Capabilities
) -> None:
    (tmp_path / "jobs.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\n"
        "metadata:\n  generateName: schema-migrate-\n"
        "  annotations: {argocd.argoproj.io/hook: PreSync}\n"
        "---\n"
        "apiVersion: batch/v1\nkind: Job\n"
        "metadata:\n  generateName: integration-test-\n"
        "  annotations: {argocd.argoproj.io/hook: PostSync}\n"
    )
    rendered = await render(yaml_request(tmp_path, capabilities))
    # Both kept, in the app namespace, with their annotations: the sync runs them.
    assert [o["metadata"]["generateName"] for o in rendered.objects] == [
        "schema-migrate-",
        "integration-test-",
    ]
    assert {o["metadata"]["namespace"] for o in rendered.objects} == {"shop"}


async def test_generate_name_is_for_hooks_only(tmp_path: Path, capabilities: Capabilities) -> None:
    (tmp_path / "job.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n"
    )
    with pytest.raises(RenderError) as caught:
        await render(yaml_request(tmp_path, capabilities))
    assert "missing metadata.name" in str(caught.value)
    assert "only a hook" in str(caught.value)
    assert caught.value.where.file == "job.yaml"


async def test_unknown_hook_names_file_line_object_and_annotation(
    tmp_path: Path, capabilities: Capabilities
) -> None:
    (tmp_path / "crds.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n"
        "---\n"
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata:\n  name: old\n  annotations: {helm.sh/hook: crd-install}\n"
    )
    with pytest.raises(RenderError) as caught:
        await render(yaml_request(tmp_path, capabilities))
    text = str(caught.value)
    assert "ConfigMap/shop/old" in text
    assert "unknown hook crd-install in annotation helm.sh/hook" in text
    assert caught.value.where.file == "crds.yaml"
    assert caught.value.where.line == 5


async def test_revision_ignores_file_layout(
    tmp_path: Path, testdata: Path, capabilities: Capabilities
) -> None:
    one = tmp_path / "one"
    shutil.copytree(testdata / "plain", one)
    two = tmp_path / "two"
    two.mkdir()
    # Same objects, all in one file, in another order.
    texts = [p.read_text() for p in sorted((one / "nested").rglob("*.y*ml"))] + [
        (one / "app.yaml").read_text()
    ]
    (two / "all.yaml").write_text("\n---\n".join(texts))
    shutil.copy(one / "settings.json", two / "settings.json")

    first = await render(yaml_request(one, capabilities))
    second = await render(yaml_request(two, capabilities))
    assert [o["metadata"]["name"] for o in first.objects] != [
        o["metadata"]["name"] for o in second.objects
    ]
    assert first.revision == second.revision

"""kustomize rendering with the real kustomize binary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appflow.errors import RenderError
from appflow.render import Capabilities, RenderRequest, render

pytestmark = pytest.mark.tools


def kustomize_request(source: Path, capabilities: Capabilities, **overrides: Any) -> RenderRequest:
    fields: dict[str, Any] = {
        "app": "web",
        "cluster": "berlin-1",
        "kind": "kustomize",
        "source_dir": source,
        "source_digest": f"test:{source}",
        "capabilities": capabilities,
        "namespace": "shop",
    }
    fields.update(overrides)
    return RenderRequest(**fields)


async def test_overlay_chosen_by_target_customization(
    testdata: Path, capabilities: Capabilities
) -> None:
    rendered = await render(
        kustomize_request(testdata / "kustomize", capabilities, kustomize_dir="overlays/prod")
    )

    by_kind = {o["kind"]: o for o in rendered.objects}
    assert set(by_kind) == {"Deployment", "Service"}
    deployment = by_kind["Deployment"]
    assert deployment["metadata"]["name"] == "prod-web"
    assert deployment["metadata"]["namespace"] == "shop"
    assert deployment["metadata"]["labels"]["tier"] == "prod"
    assert deployment["spec"]["replicas"] == 3
    assert by_kind["Service"]["metadata"]["name"] == "prod-web"


async def test_base_alone(testdata: Path, capabilities: Capabilities) -> None:
    rendered = await render(
        kustomize_request(
            testdata / "kustomize", capabilities, kustomize_dir="base", namespace=None
        )
    )
    names = sorted((o["kind"], o["metadata"]["name"]) for o in rendered.objects)
    assert names == [("Deployment", "web"), ("Service", "web")]
    assert all("namespace" not in o["metadata"] for o in rendered.objects)


async def test_kustomize_error_names_folder_and_message(
    tmp_path: Path, capabilities: Capabilities
) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing-deployment.yaml\n")
    with pytest.raises(RenderError) as caught:
        await render(kustomize_request(tmp_path, capabilities))

    text = str(caught.value)
    assert "missing-deployment.yaml" in text
    assert str(tmp_path) in text
    assert caught.value.where.app == "web"


async def test_folder_without_kustomization(testdata: Path, capabilities: Capabilities) -> None:
    with pytest.raises(RenderError, match=r"no kustomization\.yaml"):
        await render(
            kustomize_request(testdata / "kustomize", capabilities, kustomize_dir="overlays")
        )

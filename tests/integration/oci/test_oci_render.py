"""Charts from a real OCI registry through appflow's render API: version constraints
resolved against the registry's tags, objects rendered, plain HTTP only where asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appflow.errors import RenderError, SourceError
from appflow.render import Capabilities, HelmChartRef, Rendered, RenderRequest, render
from appflow.render.helm import helm_pull, resolve_chart_version
from tests.integration.oci.conftest import Registry, needs_registry

pytestmark = [pytest.mark.tools, needs_registry]

CAPABILITIES = Capabilities(kube_version="v1.36.3", api_versions=("v1", "apps/v1"))


def oci_request(chart: HelmChartRef, tmp_path: Path, **values: Any) -> RenderRequest:
    return RenderRequest(
        app="greeter",
        cluster="berlin-1",
        kind="helm",
        source_dir=tmp_path,
        source_digest="test:oci",
        capabilities=CAPABILITIES,
        namespace="shop",
        helm=chart,
        values=values,
    )


def configmaps(rendered: Rendered) -> list[dict[str, Any]]:
    return [o for o in rendered.objects if o["kind"] == "ConfigMap"]


async def test_a_constraint_renders_the_highest_matching_tag(
    plain_http: Registry, tmp_path: Path
) -> None:
    chart = HelmChartRef(repo=plain_http.charts, name="greeter", version="1.x")
    rendered = await render(oci_request(chart, tmp_path, greeting="moin"))

    assert rendered.chart_version == "1.2.0"
    [cm] = configmaps(rendered)
    assert cm["metadata"]["namespace"] == "shop"
    assert cm["data"] == {"greeting": "moin", "chartVersion": "1.2.0"}
    assert cm["metadata"]["name"] == "greeter-greeter"


async def test_a_full_reference_with_a_caret_constraint_and_an_exact_version(
    plain_http: Registry, tmp_path: Path
) -> None:
    reference = f"{plain_http.charts}/greeter"
    latest = await render(oci_request(HelmChartRef(name=reference, version=">=1.0.0"), tmp_path))
    older = await render(oci_request(HelmChartRef(name=reference, version="1.0.0"), tmp_path))

    assert latest.chart_version == "2.0.0"
    assert older.chart_version == "1.0.0"
    assert [c["data"]["chartVersion"] for c in configmaps(latest)] == ["2.0.0"]
    assert [c["data"]["chartVersion"] for c in configmaps(older)] == ["1.0.0"]
    assert latest.revision != older.revision


async def test_resolve_and_pull_a_version(plain_http: Registry, tmp_path: Path) -> None:
    reference = f"{plain_http.charts}/greeter"
    version = await resolve_chart_version(HelmChartRef(name=reference, version="~1.0"))
    folder = await helm_pull(reference, version=version, destination=tmp_path / "pulled")

    assert version == "1.0.0"
    assert (folder / "Chart.yaml").read_text().count("version: 1.0.0") == 1
    assert (folder / "templates" / "configmap.yaml").is_file()


async def test_a_constraint_no_tag_matches_is_a_render_error(
    plain_http: Registry, tmp_path: Path
) -> None:
    chart = HelmChartRef(repo=plain_http.charts, name="greeter", version="3.x")
    with pytest.raises(RenderError) as caught:
        await render(oci_request(chart, tmp_path))
    assert "greeter" in str(caught.value)
    assert caught.value.where.app == "greeter"


async def test_a_plain_http_registry_not_named_is_refused_with_the_setting_to_use(
    registry: Registry, tmp_path: Path
) -> None:
    chart = HelmChartRef(repo=registry.charts, name="greeter", version="1.x")
    with pytest.raises(SourceError) as caught:
        await render(oci_request(chart, tmp_path))
    assert "APPFLOW_HELM_PLAIN_HTTP" in (caught.value.hint or "")


async def test_plain_http_is_only_used_for_the_hosts_named(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPFLOW_HELM_PLAIN_HTTP", "registry.example.com:5000, other.example")
    chart = HelmChartRef(repo=registry.charts, name="greeter", version="1.x")
    with pytest.raises(SourceError):
        await render(oci_request(chart, tmp_path))
    monkeypatch.setenv("APPFLOW_HELM_PLAIN_HTTP", f"registry.example.com:5000, {registry.host}")
    assert (await render(oci_request(chart, tmp_path))).chart_version == "1.2.0"

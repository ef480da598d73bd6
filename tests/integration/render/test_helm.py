"""Helm rendering with the real helm binary: capabilities, values precedence, repos, errors."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from appflow.errors import ClusterUnreachableError, RenderError
from appflow.model.hooks import Phase, split_hooks
from appflow.render import Capabilities, HelmChartRef, RenderCache, Rendered, RenderRequest, render
from appflow.render.helm import helm_install_or_upgrade, helm_uninstall

pytestmark = pytest.mark.tools


def chart_request(
    testdata: Path, chart: str, capabilities: Capabilities, **overrides: Any
) -> RenderRequest:
    fields: dict[str, Any] = {
        "app": chart,
        "cluster": "berlin-1",
        "kind": "helm",
        "source_dir": testdata / "charts",
        "source_digest": f"test:{chart}",
        "capabilities": capabilities,
        "namespace": "shop",
        "helm": HelmChartRef(path=Path(chart)),
    }
    fields.update(overrides)
    return RenderRequest(**fields)


def by_kind(rendered: Rendered, kind: str) -> list[dict[str, Any]]:
    return [o for o in rendered.objects if o["kind"] == kind]


async def test_capabilities_reach_the_chart(testdata: Path, capabilities: Capabilities) -> None:
    rendered = await render(chart_request(testdata, "caps", capabilities))

    settings = by_kind(rendered, "ConfigMap")[0]["data"]
    assert settings["kubeVersion"] == "v1.36.3"
    assert settings["kubeMinor"] == "36"
    assert settings["hasMonitoring"] == "true"
    assert [o["metadata"]["name"] for o in by_kind(rendered, "ServiceMonitor")] == ["caps"]
    assert by_kind(rendered, "Deployment")[0]["metadata"]["namespace"] == "shop"
    assert by_kind(rendered, "CustomResourceDefinition"), "CRDs from crds/ are included"
    # The chart's test is rendered, marked by its annotation; it never joins the main objects.
    [test] = by_kind(rendered, "Pod")
    assert test["metadata"]["annotations"]["helm.sh/hook"] == "test"
    split = split_hooks(rendered.objects)
    assert [h.ref.name for h in split.hooks] == ["caps-test-connection"]
    assert [t.phase for t in split.hooks[0].triggers] == [Phase.TEST]
    assert "Pod" not in {m["kind"] for m in split.main}
    assert rendered.chart_version == "0.3.0"
    assert len(rendered.revision) == 64
    assert rendered.short_revision == rendered.revision[:12]


async def test_older_cluster_without_monitoring_api_gets_less(testdata: Path) -> None:
    old = Capabilities(kube_version="v1.29.4", api_versions=("v1", "apps/v1"))
    rendered = await render(chart_request(testdata, "caps", old))

    assert by_kind(rendered, "ConfigMap")[0]["data"]["hasMonitoring"] == "false"
    assert by_kind(rendered, "ConfigMap")[0]["data"]["kubeVersion"] == "v1.29.4"
    assert by_kind(rendered, "ServiceMonitor") == []
    assert by_kind(rendered, "Deployment") == []  # the chart needs >= 1.30


async def test_values_precedence_chart_then_files_then_values(
    testdata: Path, capabilities: Capabilities, tmp_path: Path
) -> None:
    first = tmp_path / "values-site.yaml"
    first.write_text("fromFile: first-file\nfromInline: first-file\n")
    second = tmp_path / "values-env.yaml"
    second.write_text("fromFile: second-file\n")
    request = chart_request(
        testdata,
        "caps",
        capabilities,
        values_files=(first, second),
        values={"fromInline": "inline"},
    )

    data = by_kind(await render(request), "ConfigMap")[0]["data"]

    assert data["fromChart"] == "chart"
    assert data["fromFile"] == "second-file"
    assert data["fromInline"] == "inline"


async def test_missing_values_file_is_named(
    testdata: Path, capabilities: Capabilities, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RenderError) as caught:
        await render(chart_request(testdata, "caps", capabilities, values_files=(missing,)))
    assert str(missing) in str(caught.value)


async def test_template_error_names_app_cluster_chart_and_template(
    testdata: Path, capabilities: Capabilities
) -> None:
    with pytest.raises(RenderError) as caught:
        await render(chart_request(testdata, "broken", capabilities))

    err = caught.value
    text = str(err)
    assert "broken/templates/needs-name.yaml" in text
    assert "set .Values.name to the site name" in text
    assert err.where.app == "broken"
    assert err.where.cluster == "berlin-1"
    assert err.where.file == "broken/templates/needs-name.yaml"
    assert err.where.line == 6


async def test_template_error_fixed_by_values(testdata: Path, capabilities: Capabilities) -> None:
    rendered = await render(
        chart_request(testdata, "broken", capabilities, values={"name": "berlin"})
    )
    names = {o["metadata"]["name"]: o for o in rendered.objects}
    assert names["needs-name"]["data"]["name"] == "berlin"


async def test_chart_from_http_repository_with_constraint(
    helm_repo: str, testdata: Path, capabilities: Capabilities
) -> None:
    request = chart_request(
        testdata,
        "greeter",
        capabilities,
        helm=HelmChartRef(repo=helm_repo, name="greeter", version="1.x"),
        values={"greeting": "moin"},
    )

    rendered = await render(request)

    assert rendered.chart_version == "1.2.0"
    [configmap] = by_kind(rendered, "ConfigMap")
    assert configmap["data"] == {"greeting": "moin", "chartVersion": "1.2.0"}
    assert configmap["metadata"]["namespace"] == "shop"

    exact = await render(
        chart_request(
            testdata,
            "greeter",
            capabilities,
            helm=HelmChartRef(repo=helm_repo, name="greeter", version="2.0.0"),
        )
    )
    assert by_kind(exact, "ConfigMap")[0]["data"]["chartVersion"] == "2.0.0"


async def test_repository_constraint_matching_nothing(
    helm_repo: str, testdata: Path, capabilities: Capabilities
) -> None:
    request = chart_request(
        testdata,
        "greeter",
        capabilities,
        helm=HelmChartRef(repo=helm_repo, name="greeter", version="3.x"),
    )
    with pytest.raises(RenderError) as caught:
        await render(request)
    assert "greeter" in str(caught.value)
    assert caught.value.where.app == "greeter"


async def test_cache_key_pins_the_resolved_repository_version(
    helm_repo: str, testdata: Path, capabilities: Capabilities
) -> None:
    cache = RenderCache()
    constraint = HelmChartRef(repo=helm_repo, name="greeter", version="~1.0")
    exact = HelmChartRef(repo=helm_repo, name="greeter", version="1.0.0")

    first = await render(
        chart_request(testdata, "greeter", capabilities, helm=constraint), cache=cache
    )
    second = await render(chart_request(testdata, "greeter", capabilities, helm=exact), cache=cache)

    assert first.chart_version == "1.0.0"
    assert (cache.misses, cache.hits) == (1, 1)
    assert second.revision == first.revision


async def test_chart_dependencies_built_in_a_copy(
    testdata: Path, capabilities: Capabilities
) -> None:
    chart_dir = testdata / "charts" / "withdeps"
    assert not (chart_dir / "charts").exists()

    rendered = await render(chart_request(testdata, "withdeps", capabilities))

    [configmap] = by_kind(rendered, "ConfigMap")
    assert configmap["metadata"]["name"] == "withdeps-greeter"
    assert configmap["data"]["greeting"] == "hello from the parent"
    assert by_kind(rendered, "Service")[0]["metadata"]["name"] == "withdeps-web"
    # The checkout is left as it was: the build ran in a temporary copy.
    assert not (chart_dir / "charts").exists()
    assert not (chart_dir / "Chart.lock").exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster:
    server: https://127.0.0.1:{_closed_port()}
    insecure-skip-tls-verify: true
contexts:
- name: dead
  context: {{cluster: dead, user: dead}}
current-context: dead
users:
- name: dead
  user: {{token: nothing}}
"""
    )
    return path


async def test_server_render_asks_the_cluster_and_is_not_cached(
    testdata: Path, capabilities: Capabilities, tmp_path: Path
) -> None:
    cache = RenderCache()
    request = chart_request(
        testdata, "caps", capabilities, server_render_kubeconfig=_kubeconfig(tmp_path)
    )
    # The same request renders client-side; with --dry-run=server helm must reach the API server.
    await render(chart_request(testdata, "caps", capabilities), cache=cache)

    with pytest.raises(ClusterUnreachableError) as caught:
        await render(request, cache=cache)

    assert caught.value.where.cluster == "berlin-1"
    assert (cache.misses, cache.hits) == (1, 0)


async def test_release_mode_maps_unreachable_cluster(testdata: Path, tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path)
    with pytest.raises(ClusterUnreachableError) as caught:
        await helm_install_or_upgrade(
            release="greeter",
            namespace="shop",
            chart=HelmChartRef(path=Path("greeter")),
            source_dir=testdata / "charts",
            kubeconfig=kubeconfig,
            values={"greeting": "hi"},
            app="greeter",
            cluster="berlin-1",
        )
    assert caught.value.where.object == "helm release greeter"
    assert caught.value.where.app == "greeter"

    with pytest.raises(ClusterUnreachableError):
        await helm_uninstall(release="greeter", namespace="shop", kubeconfig=kubeconfig)

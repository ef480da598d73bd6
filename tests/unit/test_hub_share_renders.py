"""A hub renders an app once per distinct render of its pull clusters (hub.publish)."""

from __future__ import annotations

from pathlib import Path

from appflow.hub.publish import share_renders
from appflow.model.appdef import AppDefinition, HelmSpec
from appflow.model.records import ClusterRecord
from appflow.render.types import Capabilities, HelmChartRef, RenderRequest

ENVS = ("dev", "test", "prod")


def request(cluster: str, env: str, *, tmp: Path) -> RenderRequest:
    return RenderRequest(
        app="shop",
        cluster=cluster,
        kind="helm",
        source_dir=tmp,
        source_digest="git:abc",
        capabilities=Capabilities(kube_version="v1.31.0"),
        namespace="shop",
        helm=HelmChartRef(path=Path("chart")),
        # What a targetCustomization per environment and ${ .ClusterLabels.env } leave.
        values={"env": env, "replicas": ENVS.index(env) + 1},
    )


def fleet(tmp: Path, count: int) -> tuple[dict[str, RenderRequest], dict[str, ClusterRecord]]:
    names = [f"edge-{i:03d}" for i in range(count)]
    clusters = {
        n: ClusterRecord(name=n, kind="eve-k", labels={"env": ENVS[i % 3]})
        for i, n in enumerate(names)
    }
    requests = {n: request(n, ENVS[i % 3], tmp=tmp) for i, n in enumerate(names)}
    return requests, clusters


async def test_clusters_with_one_render_share_it(tmp_path: Path) -> None:
    requests, clusters = fleet(tmp_path, 30)
    app = AppDefinition(name="shop", path="", kind="helm", helm=HelmSpec(chart="chart"))

    groups = await share_renders(app, requests, clusters)

    assert len(groups) == 3
    assert sorted(len(g) for g in groups) == [10, 10, 10]
    for group in groups:
        assert len({c.labels["env"] for c in group}) == 1
    assert sorted(c.name for g in groups for c in g) == sorted(clusters)


async def test_a_chart_that_looks_up_renders_for_each_cluster(tmp_path: Path) -> None:
    requests, clusters = fleet(tmp_path, 6)
    app = AppDefinition(
        name="shop", path="", kind="helm", helm=HelmSpec(chart="chart", lookup=True)
    )

    groups = await share_renders(app, requests, clusters)

    assert sorted(c.name for g in groups for c in g) == sorted(clusters)
    assert all(len(g) == 1 for g in groups)

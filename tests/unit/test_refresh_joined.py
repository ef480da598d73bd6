"""A cluster that joined a revision with content other clusters already had (held by
dependsOn when the revision was recorded) is judged by that content when there is only one."""

from __future__ import annotations

from appflow.engine.refresh import only_render
from appflow.model.objects import Manifest


def web(image: str) -> list[Manifest]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "top"}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "top"},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
        },
    ]


def test_one_content_for_every_cluster_is_the_joining_clusters() -> None:
    assert only_render({"site-1": web("nginx:1.27"), "site-2": web("nginx:1.27")}) == web(
        "nginx:1.27"
    )


def test_several_contents_leave_the_joining_cluster_unjudged() -> None:
    assert only_render({"site-1": web("nginx:1.27"), "site-2": web("nginx:1.28")}) is None


def test_a_revision_without_renders_judges_nothing() -> None:
    assert only_render({}) is None

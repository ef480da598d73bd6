"""The render cache: same inputs are a hit that runs no helm, changed inputs a miss."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from appflow.errors import RenderError, ToolMissingError
from appflow.render import (
    Capabilities,
    HelmChartRef,
    RenderCache,
    RenderRequest,
    render,
    render_key,
)

pytestmark = pytest.mark.tools


@pytest.fixture
def request_(testdata: Path, capabilities: Capabilities, tmp_path: Path) -> RenderRequest:
    values_file = tmp_path / "values-site.yaml"
    values_file.write_text("fromFile: site\n")
    return RenderRequest(
        app="caps",
        cluster="berlin-1",
        kind="helm",
        source_dir=testdata / "charts",
        source_digest="commit-1:charts/caps",
        capabilities=capabilities,
        namespace="shop",
        helm=HelmChartRef(path=Path("caps")),
        values={"fromInline": "one"},
        values_files=(values_file,),
    )


@pytest.fixture
def failing_helm(tmp_path: Path) -> str:
    script = tmp_path / "helm-that-fails"
    script.write_text("#!/bin/sh\necho 'helm must not run on a cache hit' >&2\nexit 3\n")
    script.chmod(0o755)
    return str(script)


async def test_second_render_is_a_hit_without_helm(
    request_: RenderRequest, failing_helm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RenderCache()
    first = await render(request_, cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)

    monkeypatch.setenv("APPFLOW_HELM_BIN", failing_helm)
    second = await render(request_, cache=cache)

    assert (cache.hits, cache.misses) == (1, 1)
    assert second == first
    # The failing helm really is what a miss would run.
    with pytest.raises(RenderError, match="must not run"):
        await render(dataclasses.replace(request_, values={"fromInline": "two"}), cache=cache)


async def test_hit_across_processes_from_disk(
    request_: RenderRequest,
    failing_helm: str,
    monkeypatch: pytest.MonkeyPatch,
    isolated_cache: Path,
) -> None:
    first = await render(request_, cache=RenderCache())
    assert list((isolated_cache / "render").glob("*.json")), "an entry was written to disk"

    monkeypatch.setenv("APPFLOW_HELM_BIN", failing_helm)
    fresh = RenderCache()  # a new process has only the disk
    again = await render(request_, cache=fresh)

    assert (fresh.hits, fresh.misses, fresh.disk_hits) == (1, 0, 1)
    assert again.revision == first.revision
    assert again.objects == first.objects


async def test_changed_inputs_are_misses(request_: RenderRequest, tmp_path: Path) -> None:
    cache = RenderCache()
    base = await render(request_, cache=cache)

    changed_value = await render(
        dataclasses.replace(request_, values={"fromInline": "two"}), cache=cache
    )
    assert cache.misses == 2
    assert changed_value.revision != base.revision

    request_.values_files[0].write_text("fromFile: another-site\n")
    changed_file = await render(request_, cache=cache)
    assert cache.misses == 3
    assert changed_file.revision != base.revision

    older_cluster = Capabilities(kube_version="v1.31.0", api_versions=("apps/v1",))
    await render(dataclasses.replace(request_, capabilities=older_cluster), cache=cache)
    assert cache.misses == 4

    await render(dataclasses.replace(request_, source_digest="commit-2:charts/caps"), cache=cache)
    assert (cache.misses, cache.hits) == (5, 0)


async def test_capabilities_do_not_split_plain_renders(
    testdata: Path, capabilities: Capabilities
) -> None:
    cache = RenderCache()
    request = RenderRequest(
        app="shop",
        cluster="berlin-1",
        kind="yaml",
        source_dir=testdata / "plain",
        source_digest="commit-1:plain",
        capabilities=capabilities,
        namespace="shop",
    )
    other_cluster = dataclasses.replace(
        request, cluster="hamburg-2", capabilities=Capabilities(kube_version="v1.30.1")
    )
    assert render_key(request) == render_key(other_cluster)
    await render(request, cache=cache)
    await render(other_cluster, cache=cache)
    assert (cache.hits, cache.misses) == (1, 1)
    await render(dataclasses.replace(request, yaml_overlays=("edge",)), cache=cache)
    assert cache.misses == 2


async def test_corrupt_disk_entry_is_rendered_again(
    request_: RenderRequest, isolated_cache: Path
) -> None:
    await render(request_, cache=RenderCache())
    [entry] = (isolated_cache / "render").glob("*.json")
    entry.write_text(entry.read_text().replace("chart", "chort"))

    fresh = RenderCache()
    await render(request_, cache=fresh)
    assert (fresh.hits, fresh.misses) == (0, 1)


async def test_concurrent_renders_of_one_key_render_once(request_: RenderRequest) -> None:
    cache = RenderCache(persist=False)
    results = await asyncio.gather(*(render(request_, cache=cache) for _ in range(3)))
    assert cache.misses == 1
    assert cache.hits == 2
    assert len({r.revision for r in results}) == 1


async def test_cached_objects_cannot_be_edited_through_a_result(request_: RenderRequest) -> None:
    cache = RenderCache(persist=False)
    first = await render(request_, cache=cache)
    first.objects[0]["metadata"]["name"] = "edited"
    second = await render(request_, cache=cache)
    assert second.objects[0]["metadata"]["name"] != "edited"


async def test_missing_helm_on_a_miss_says_how_to_get_it(
    request_: RenderRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("APPFLOW_HELM_BIN", str(tmp_path / "no-such-helm"))
    with pytest.raises(ToolMissingError) as caught:
        await render(request_, cache=RenderCache())
    assert caught.value.where.app == "caps"


async def test_one_failed_render_shared_by_clusters_names_each_cluster(
    request_: RenderRequest, failing_helm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPFLOW_HELM_BIN", failing_helm)
    cache = RenderCache(persist=False)
    clusters = ["berlin-1", "paris-1", "rome-1"]
    requests = [dataclasses.replace(request_, cluster=c) for c in clusters]
    assert len({render_key(r) for r in requests}) == 1  # one render serves all three
    results = await asyncio.gather(
        *(render(r, cache=cache) for r in requests), return_exceptions=True
    )
    assert cache.misses == 1
    assert all(isinstance(r, RenderError) for r in results), results
    assert [r.where.cluster for r in results if isinstance(r, RenderError)] == clusters

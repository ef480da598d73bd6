"""Parsing and digesting renders never runs on the event loop (issue 10, item 11).

`appflow serve` answers health checks and webhooks on the loop its syncs run on:
a render that parses megabytes of YAML there stops them all. Real helm,
kustomize and plain renders run here, with the YAML loader and the canonical
JSON of the digest watched for the thread they run on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appflow.render import Capabilities, RenderRequest, documents, render, types

pytestmark = pytest.mark.tools


@pytest.fixture
def threads_used(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The threads the YAML loader and the digest's JSON were called on, by name."""
    used: dict[str, list[int]] = {"yaml": [], "digest": []}
    loader_init = documents._Loader.__init__
    canonical_json: Callable[[Any], str] = types.canonical_json

    def watched_loader(self: Any, *args: Any, **kwargs: Any) -> None:
        used["yaml"].append(threading.get_ident())
        loader_init(self, *args, **kwargs)

    def watched_json(data: Any) -> str:
        used["digest"].append(threading.get_ident())
        return canonical_json(data)

    monkeypatch.setattr(documents._Loader, "__init__", watched_loader)
    monkeypatch.setattr(types, "canonical_json", watched_json)
    return used


def request(source: Path, capabilities: Capabilities, **fields: Any) -> RenderRequest:
    base: dict[str, Any] = {
        "app": "web",
        "cluster": "berlin-1",
        "source_dir": source,
        "source_digest": f"test:{source}:{fields.get('kind')}",
        "capabilities": capabilities,
        "namespace": "shop",
    }
    return RenderRequest(**{**base, **fields})


@pytest.mark.parametrize("kind", ["helm", "kustomize", "yaml"])
async def test_renders_parse_and_digest_in_worker_threads(
    testdata: Path, capabilities: Capabilities, threads_used: dict[str, list[int]], kind: str
) -> None:
    from appflow.render.types import HelmChartRef

    loop_thread = threading.get_ident()
    if kind == "helm":
        chart = HelmChartRef(path=testdata / "charts" / "caps")
        rendered = await render(request(testdata, capabilities, kind="helm", helm=chart))
    elif kind == "kustomize":
        rendered = await render(
            request(testdata / "kustomize", capabilities, kind="kustomize", kustomize_dir="base")
        )
    else:
        rendered = await render(request(testdata / "plain", capabilities, kind="yaml"))
    assert rendered.objects
    assert threads_used["yaml"], "the render parsed no YAML"
    assert threads_used["digest"], "the render was not digested"
    on_loop = {name: ids.count(loop_thread) for name, ids in threads_used.items()}
    assert on_loop == {"yaml": 0, "digest": 0}

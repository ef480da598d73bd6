"""Content objects on a real API server: a render over 5 MB round-trips, no object near 1 MiB."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from appflow.errors import ContentError
from appflow.kube.content import KIND, ContentStore
from appflow.model.hub import API_VERSION
from tests.integration.hub.conftest import Hub

MIB = 1024 * 1024


def _big_render() -> list[dict[str, object]]:
    """Over 5 MB: 40 ConfigMaps of 128 KiB of random (incompressible) text, one object larger
    than a chunk, and 600 small objects."""
    objects: list[dict[str, object]] = []
    for i in range(40):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"blob-{i}", "namespace": "edge"},
                "data": {"payload": os.urandom(64 * 1024).hex()},
            }
        )
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "huge", "namespace": "edge"},
            "data": {"model": os.urandom(600 * 1024).hex()},
        }
    )
    for i in range(600):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"svc-{i}", "namespace": "edge"},
                "spec": {"ports": [{"port": 80, "targetPort": 8000 + i}]},
            }
        )
    return objects


@pytest.mark.cluster
def test_a_render_over_5_mb_round_trips_and_no_object_exceeds_1_mib(
    hub_crds: Hub, hub_namespace: str
) -> None:
    objects = _big_render()
    size = sum(len(json.dumps(o)) for o in objects)
    assert size > 5 * 1000 * 1000

    async def write_then_read() -> tuple[str, list[dict[str, object]]]:
        kube = hub_crds.kube(timeout=60)
        try:
            stored = await ContentStore(kube, hub_namespace).put_render(objects)
            # A fresh store (another replica, an agent) reads it back from the API server.
            back = await ContentStore(kube, hub_namespace).get_render(stored.digest)
            return stored.digest, back
        finally:
            kube.close()

    digest, back = asyncio.run(write_then_read())
    assert back == objects

    kube = hub_crds.kube(timeout=60)
    try:
        stored = kube.list_sync(API_VERSION, KIND, namespace=hub_namespace)
    finally:
        kube.close()
    sizes = {o["metadata"]["name"]: len(json.dumps(o)) for o in stored}
    assert digest in sizes
    assert len(sizes) > 10
    largest = max(sizes.values())
    print(f"render {size} bytes in {len(sizes)} objects; largest stored object {largest} bytes")
    assert largest < MIB


@pytest.mark.cluster
def test_a_missing_chunk_is_a_clear_error(hub_crds: Hub, hub_namespace: str) -> None:
    objects = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"c{i}"},
            "data": {"i": str(i)},
        }
        for i in range(20)
    ]

    async def scenario() -> None:
        kube = hub_crds.kube()
        try:
            stored = await ContentStore(kube, hub_namespace).put_render(objects)
            chunk = stored.index.chunks[0][0]
            await kube.delete(API_VERSION, KIND, chunk, hub_namespace)
            with pytest.raises(ContentError, match=f"content {chunk} is missing"):
                await ContentStore(kube, hub_namespace).get_render(stored.digest)
        finally:
            kube.close()

    asyncio.run(scenario())

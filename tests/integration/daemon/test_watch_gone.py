"""A drift watch that fell too far behind re-lists, as informers do (issue 10, item 20).

The API server keeps a window of history; a watch resumed from a resourceVersion
older than that is answered 410 Gone. That is not a failure of the drift task:
the kind is listed again, every object is looked at (``RELISTED``), and the
watch goes on from the list.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from appflow.model.objects import LABEL_APP
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, configmap

pytestmark = pytest.mark.cluster


async def next_event(events: AsyncIterator[tuple[str, dict]], name: str) -> str:
    """The type of the next event about ConfigMap NAME (events of others are skipped)."""
    async with asyncio.timeout(60):
        async for event_type, obj in events:
            if obj["metadata"]["name"] == name:
                return event_type
    raise AssertionError("the watch ended")


async def test_a_watch_from_a_forgotten_version_relists_and_goes_on(
    fleet: Fleet, space: Space
) -> None:
    app = space.app("gone")
    labelled = configmap("watched", space.namespace, {"v": "1"}, labels={LABEL_APP: app})
    kube = fleet.engine.kube(fleet.store.get_cluster(fleet.cluster_names[0]))
    await kube.apply(labelled, field_manager="someone")
    stop = asyncio.Event()
    # Resource version 1 is long gone from any API server's watch window.
    events = kube.watch(
        "v1", "ConfigMap", label_selector=f"{LABEL_APP}={app}", stop=stop, since="1"
    )
    try:
        assert await next_event(events, "watched") == "RELISTED"
        await kube.apply({**labelled, "data": {"v": "2"}}, field_manager="someone")
        assert await next_event(events, "watched") == "MODIFIED"
        await kube.delete("v1", "ConfigMap", "watched", space.namespace)
        assert await next_event(events, "watched") == "DELETED"
    finally:
        stop.set()
        await events.aclose()

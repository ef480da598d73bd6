"""A drift watch that fell too far behind re-lists, as informers do (issue 10, item 20).

The API server keeps a window of history; a watch resumed from a resourceVersion
older than that is answered 410 Gone. That is not a failure of the drift task:
the kind is listed again, what changed since the watcher's last view is delivered
(ADDED, MODIFIED, DELETED: issue 12), and the watch goes on from the list.
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
        # The watcher knew nothing: the relist shows the object as new.
        assert await next_event(events, "watched") == "ADDED"
        await kube.apply({**labelled, "data": {"v": "2"}}, field_manager="someone")
        assert await next_event(events, "watched") == "MODIFIED"
        await kube.delete("v1", "ConfigMap", "watched", space.namespace)
        assert await next_event(events, "watched") == "DELETED"
    finally:
        stop.set()
        await events.aclose()


async def test_what_changed_in_the_gap_is_delivered_after_410(fleet: Fleet, space: Space) -> None:
    """A watcher that had listed A, B and D falls behind (its version is forgotten); meanwhile
    A changed, B was deleted and C created. The 410 makes the watch list again, and the
    watcher gets exactly the difference: A MODIFIED (with its new data), B DELETED, C ADDED,
    nothing for D; then live events again."""
    app = space.app("gap")
    selector = f"{LABEL_APP}={app}"
    kube = fleet.engine.kube(fleet.store.get_cluster(fleet.cluster_names[0]))

    def cm(name: str, value: str) -> dict:
        return configmap(name, space.namespace, {"v": value}, labels={LABEL_APP: app})

    for name in ("a", "b", "d"):
        await kube.apply(cm(name, "1"), field_manager="someone")
    had, _ = await kube.list_versioned("v1", "ConfigMap", label_selector=selector)
    assert sorted(o["metadata"]["name"] for o in had) == ["a", "b", "d"]
    # The gap: changes the watcher does not see.
    await kube.apply(cm("a", "2"), field_manager="someone")
    await kube.delete("v1", "ConfigMap", "b", space.namespace)
    await kube.apply(cm("c", "1"), field_manager="someone")

    stop = asyncio.Event()
    # Resource version 1 is long gone from any API server's watch window: 410.
    events = kube.watch("v1", "ConfigMap", label_selector=selector, stop=stop, since="1", known=had)
    try:
        got: dict[str, tuple[str, dict]] = {}
        async with asyncio.timeout(60):
            async for event_type, obj in events:
                got[obj["metadata"]["name"]] = (event_type, obj)
                if len(got) == 3:
                    break
        assert {n: e for n, (e, _) in got.items()} == {
            "a": "MODIFIED",
            "b": "DELETED",
            "c": "ADDED",
        }
        assert got["a"][1]["data"] == {"v": "2"}
        # D was unchanged: the next event is a live one, not D.
        await kube.apply(cm("d", "2"), field_manager="someone")
        async with asyncio.timeout(60):
            async for event_type, obj in events:
                assert (obj["metadata"]["name"], event_type) == ("d", "MODIFIED")
                break
    finally:
        stop.set()
        await events.aclose()

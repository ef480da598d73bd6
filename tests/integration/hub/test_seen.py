"""A replica reads its AppFlows from its watch instead of GETting them, and stays as correct
as the GET (issue 12, appflow.hub.seen), on a real hub API server.

The store's reads go through a KubeCluster that counts its GETs of AppFlows: the first read
after the object's key moved is a GET, the next ones are not; a write is read back at once
(before the watch may show it); another writer's change and deletion arrive through the
watch; a
conditional write from a copy another writer made stale fails as a retryable conflict, and
the next read is a GET that sees the other writer's change.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from appflow.errors import NotFoundError, WriteConflict
from appflow.hub.controller import follow
from appflow.hub.seen import Seen
from appflow.hub.store import HubStore
from appflow.kube.client import Connection, KubeCluster
from appflow.model import resources as res
from appflow.model.hub import API_VERSION
from appflow.model.records import AppRecord
from tests.integration.hub.conftest import Hub

pytestmark = pytest.mark.cluster


class CountingKube(KubeCluster):
    """The hub, counting the GETs of AppFlows sent to it."""

    gets = 0

    def get_sync(
        self, api_version: str, kind: str, name: str, namespace: str = ""
    ) -> dict[str, Any] | None:
        if kind == "AppFlow":
            self.gets += 1
        return super().get_sync(api_version, kind, name, namespace)


async def test_reads_come_from_the_watch_and_stay_as_correct_as_a_get(
    hub_crds: Hub, hub_namespace: str, tmp_path: Path
) -> None:
    workspace = hub_namespace
    kube = CountingKube(Connection(name=hub_crds.name, kubeconfig=hub_crds.kubeconfig, timeout=30))
    other = hub_crds.kube(timeout=30)  # another writer: the CLI
    seen = Seen({"AppFlow"})
    store = HubStore(kube, workspace=workspace, writer="replica", seen=seen)
    cli = HubStore(other, workspace=workspace)
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    await asyncio.to_thread(
        cli.put_app, AppRecord(name="web", source="local", local_path=str(tmp_path / "web"))
    )
    changed = asyncio.Event()

    def observe(event: str, obj: dict[str, Any]) -> None:
        seen.observe(event, obj)
        changed.set()

    listed = asyncio.Event()

    def note_listed(found: list[dict[str, Any]]) -> None:
        seen.listed("AppFlow", found)
        listed.set()
        changed.set()

    stop = asyncio.Event()
    task = asyncio.create_task(
        follow(
            hub_crds.kube(timeout=30),
            "AppFlow",
            observe,
            stop,
            listed=note_listed,
            failed=partial(seen.stopped, "AppFlow"),
        )
    )

    async def status_of() -> dict[str, Any]:
        obj = await asyncio.to_thread(store.app_object, "web")
        return dict(obj.get("status") or {})

    async def until(check: Any, what: str) -> None:
        try:
            async with asyncio.timeout(60):
                while True:
                    changed.clear()
                    if await check():
                        return
                    await changed.wait()
        except TimeoutError:
            pytest.fail(f"not within 60 s: {what}")

    try:
        # The watch has listed once it delivered the app.
        async with asyncio.timeout(60):
            await listed.wait()
        await status_of()
        assert kube.gets == 1  # the first read confirms the object
        for _ in range(5):
            await status_of()
        assert kube.gets == 1, "reads after the first must come from the watch"

        # The replica's own write is read back at once, whatever the watch shows yet.
        obj = await asyncio.to_thread(store.app_object, "web")
        await asyncio.to_thread(store.patch_status, obj, {"revision": 7})
        assert (await status_of()).get("revision") == 7
        assert kube.gets == 1

        # Another writer's change arrives through the watch.
        stale = await asyncio.to_thread(store.app_object, "web")
        other.patch_sync(
            API_VERSION,
            "AppFlow",
            "web",
            workspace,
            {"status": {"revision": 8}},
            subresource="status",
        )

        async def shows_8() -> bool:
            return (await status_of()).get("revision") == 8

        await until(shows_8, "the other writer's change reached the watch")
        assert kube.gets == 1

        # A conditional write from the stale copy conflicts (retryable); the next read is a
        # GET, which sees the other writer's change.
        with pytest.raises(WriteConflict) as caught:
            await asyncio.to_thread(store.patch_status, stale, {"revision": 9})
        assert caught.value.retryable
        assert (await status_of()).get("revision") == 8
        assert kube.gets == 2

        # The key moved (the membership took it away and gave it back): a GET again.
        seen.forget("AppFlow", workspace, "web")
        await status_of()
        assert kube.gets == 3

        # A deletion by another writer is not served once the watch showed it (until then a
        # read is as of the watch, as a GET sent a moment earlier would have been).
        await asyncio.to_thread(cli.delete_app, "web")

        async def gone() -> bool:
            try:
                await status_of()
            except NotFoundError:
                return True
            return False

        await until(gone, "the deletion reached the watch")
    finally:
        stop.set()
        await task
        kube.close()
        other.close()


async def test_a_request_the_replica_writes_is_read_back_before_its_watch_shows_it(
    hub_crds: Hub, hub_namespace: str, tmp_path: Path
) -> None:
    """A replica that asks for a sync itself (a catalog auto-upgrade) waits for the request's
    outcome reading its AppFlow: it must read the request it wrote, though no watch event
    brought it (here no watch runs after the list: the worst lag there is)."""
    workspace = hub_namespace
    kube = CountingKube(Connection(name=hub_crds.name, kubeconfig=hub_crds.kubeconfig, timeout=30))
    seen = Seen({"AppFlow"})
    store = HubStore(kube, workspace=workspace, writer="replica", seen=seen)
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    try:
        await asyncio.to_thread(
            store.put_app, AppRecord(name="web", source="local", local_path=str(tmp_path / "web"))
        )
        listed = await asyncio.to_thread(
            kube.list_sync, API_VERSION, "AppFlow", namespace=workspace
        )
        seen.listed("AppFlow", listed)
        await asyncio.to_thread(store.app_object, "web")  # a GET: confirmed from now on
        gets = kube.gets

        await asyncio.to_thread(
            store.patch_app, "web", {"spec": {"syncRequest": {"id": "r-1", "trigger": "poll"}}}
        )
        obj = await asyncio.to_thread(store.app_object, "web")
        assert res.sync_request(obj).get("id") == "r-1"
        assert kube.gets == gets, "read from the replica's view, not with a GET"
    finally:
        kube.close()

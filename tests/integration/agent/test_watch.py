"""The agent's hub client: a watch resumes from its resourceVersion, and one the API server no
longer remembers (410 Gone) says so, for the agent to list again."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from appflow.agent.hubclient import Credential, HubSession, WatchExpired
from tests.integration.agent.conftest import Hub, register_fleet, registration
from tests.integration.agent.publish import desired, write_deployment
from tests.integration.agent.test_sync import app_objects

pytestmark = pytest.mark.cluster


def session(hub: Hub, edge: int) -> HubSession:
    reg = registration(hub, edge)
    return HubSession(
        Credential(
            server=str(reg["server"]),
            ca=str(reg["serverCA"]).encode(),
            token=str(reg["token"]),
            namespace=str(reg["namespace"]),
            cluster=str(reg["cluster"]),
            generation=int(str(reg["generation"])),
        )
    )


def test_watch_resumes_and_an_expired_version_asks_for_a_list(hub: Hub) -> None:
    names = register_fleet(hub)
    app = f"w-{secrets.token_hex(3)}"
    kube = hub.fleet.hub_kube()
    try:
        state = desired(kube, hub.workspace, app_objects("w-ns", value="one"), revision=1)
    finally:
        kube.close()

    async def go() -> None:
        hub_session = session(hub, 0)
        try:
            items, version = await hub_session.list_deployments()
            assert all(i["metadata"]["name"] != app for i in items)
            kube = hub.fleet.hub_kube()
            try:
                await asyncio.to_thread(
                    write_deployment,
                    kube,
                    workspace=hub.workspace,
                    cluster=names[0],
                    app=app,
                    staged=state,
                )
            finally:
                kube.close()
            seen = []
            async for kind, obj in hub_session.watch_deployments(version, timeout=5):
                if kind != "BOOKMARK":
                    seen.append((kind, obj["metadata"]["name"]))
                    break
            assert seen == [("ADDED", app)]
            with pytest.raises(WatchExpired):
                async for _ in hub_session.watch_deployments("1", timeout=5):
                    pass
        finally:
            await hub_session.close()

    asyncio.run(go())

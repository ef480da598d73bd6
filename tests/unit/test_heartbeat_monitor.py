"""The heartbeat monitor judges a cluster only from a view of the Leases it knows is current."""

from __future__ import annotations

import asyncio
from typing import Any

from appflow.hub.heartbeats import HeartbeatMonitor
from appflow.model.hub import LABEL_CLUSTER, LABEL_WORKSPACE


class Recorder:
    """Stands in for the hub's client: records the status patches the monitor writes."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    async def patch(self, api_version: str, kind: str, name: str, namespace: str,
                    body: dict[str, Any], **_: Any) -> dict[str, Any]:  # fmt: skip
        self.patches.append((kind, name, body))
        return {"metadata": {"name": name}, "status": body.get("status", {})}

    async def list_objects(self, *_: Any, **__: Any) -> list[dict[str, Any]]:
        return []


def lease(renewed: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"leaseDurationSeconds": 2}
    if renewed is not None:
        spec["renewTime"] = renewed
    return {"metadata": {"labels": {LABEL_WORKSPACE: "w", LABEL_CLUSTER: "edge-1"}}, "spec": spec}


def monitor(clock: list[float], *, state: str = "Online") -> tuple[HeartbeatMonitor, Recorder]:
    recorder = Recorder()
    watched = HeartbeatMonitor(
        read=recorder,  # type: ignore[arg-type]
        write=recorder,  # type: ignore[arg-type]
        workspace="w",
        owns=lambda _: True,
        clock=lambda: clock[0],
    )
    watched.on_cluster(
        "ADDED",
        {
            "metadata": {"name": "edge-1", "namespace": "w"},
            "spec": {"mode": "pull"},
            "status": {"state": state},
        },
    )
    return watched, recorder


def test_a_replica_cut_off_from_the_hub_does_not_judge_the_silence_it_did_not_see() -> None:
    clock = [0.0]
    watched, recorder = monitor(clock)
    watched._saw(lease("2026-12-02T00:00:00.000000Z"), listed=False)
    watched.current = False  # its Lease watch broke (the hub restarted)
    clock[0] = 60.0
    asyncio.run(watched.tick())
    assert recorder.patches == []
    # Listed again: the agent renewed meanwhile, so it stays Online.
    watched._saw(lease("2026-12-02T00:01:00.000000Z"), listed=True)
    watched.current = True
    asyncio.run(watched.tick())
    assert recorder.patches == []


def test_a_silence_seen_through_a_current_view_makes_the_cluster_offline() -> None:
    clock = [0.0]
    watched, recorder = monitor(clock)
    watched._saw(lease("2026-12-02T00:00:00.000000Z"), listed=False)
    watched.current = True
    clock[0] = 60.0
    asyncio.run(watched.tick())
    assert [(kind, body["status"]["state"]) for kind, _, body in recorder.patches] == [
        ("Cluster", "Offline")
    ]


def test_an_agent_that_registered_and_never_sent_a_heartbeat_goes_offline() -> None:
    clock = [0.0]
    watched, recorder = monitor(clock, state="Init")
    # Registration made the Lease; the agent died before its first renewal.
    watched._saw(lease(None), listed=False)
    watched.current = True
    clock[0] = 5.0  # within three intervals of 2 s: its first heartbeat may still come
    asyncio.run(watched.tick())
    assert recorder.patches == []
    clock[0] = 7.0
    asyncio.run(watched.tick())
    [(kind, name, body)] = recorder.patches
    assert (kind, name, body["status"]["state"]) == ("Cluster", "edge-1", "Offline")
    assert "registered but sent no heartbeat" in body["status"]["reason"]
    # A first heartbeat after all: Online again, as after any silence.
    watched._saw(lease("2026-12-02T00:00:07.000000Z"), listed=False)
    clock[0] = 7.5
    asyncio.run(watched.tick())
    assert recorder.patches[-1][2]["status"]["state"] == "Online"

"""`appflow controller` replicas as processes against the hub: they share the AppFlows, and
each answers its readiness probe."""

from __future__ import annotations

import urllib.request

import pytest

from tests.integration.hub.controllers import HubFleet, free_port

pytestmark = pytest.mark.cluster


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_two_controllers_share_the_appflows_of_their_workspace(fleet: HubFleet) -> None:
    names = [f"app-{i:02d}" for i in range(12)]
    fleet.create_appflows(names, {"definition": {"namespace": "web"}})
    ports = [free_port() for _ in range(2)]
    for port in ports:
        fleet.start(extra=("--listen", f"127.0.0.1:{port}"))
    # Each held once, and each replica holds a share.
    fleet.wait_owned(names)
    assert all(r.held() for r in fleet.replicas)
    assert all(_ready(port) for port in ports)

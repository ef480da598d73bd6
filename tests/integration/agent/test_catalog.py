"""A catalog install targeting pull clusters: an AppFlow like any other, rendered on the hub,
validated by every targeted agent, released and applied by them (issue 13 item 6)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agent.conftest import Hub, register_fleet, wait_for

pytestmark = pytest.mark.cluster

CATALOG = Path(__file__).resolve().parents[3] / "catalog"


def cells(hub: Hub, app: str) -> dict[str, Any]:
    grid = json.loads(hub.hub_cli("status", "-o", "json").stdout)
    found = [a for a in grid["apps"] if a["name"] == app]
    return dict(found[0]["deployments"]) if found else {}


def test_a_catalog_install_reaches_the_pull_clusters_its_selector_names(hub: Hub) -> None:
    names = register_fleet(hub)
    dev, prod = names[0], names[1:]
    hub.start_controller()
    name = f"cache-{secrets.token_hex(3)}"
    hub.hub_cli(
        "catalog", "install", "redis", "--name", name, "-n", name, "-l", "env=prod",
        "--catalog", str(CATALOG),
    )  # fmt: skip

    def ready_on_prod() -> bool:
        on = cells(hub, name)
        return all(on.get(c, {}).get("state") == "Ready" for c in prod)

    wait_for(ready_on_prod, timeout=240, what=f"{name} Ready on the two prod pull clusters")
    assert dev not in cells(hub, name)
    for edge in (1, 2):
        kube = hub.fleet.edge_kube(edge)
        try:
            found = kube.list_sync("apps/v1", "StatefulSet", namespace=name) + kube.list_sync(
                "apps/v1", "Deployment", namespace=name
            )
        finally:
            kube.close()
        assert found, f"nothing of {name} on edge {edge}"
    kube = hub.fleet.edge_kube(0)
    try:
        assert kube.get_sync("v1", "Namespace", name) is None
    finally:
        kube.close()
    listed = json.loads(
        hub.hub_cli("catalog", "installs", "-o", "json", "--catalog", str(CATALOG)).stdout
    )
    rows = {r["name"]: r for r in listed}
    assert rows[name]["entry"] == "redis"
    assert rows[name]["clusters"] == {c: "Ready" for c in prod}

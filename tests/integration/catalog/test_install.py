"""Catalog installs of starter apps on the sandbox clusters, through the CLI as a user runs it."""

from __future__ import annotations

import json

from tests.integration.catalog.conftest import CATALOG
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    exists,
    live,
    one_line,
    snapshot,
    status_json,
)


def _install(*args: str) -> str:
    result = cli(
        "catalog", "install", *args, "--catalog", str(CATALOG), "--wait", "--timeout", "120"
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_install_upgrade_uninstall_starter_apps(fleet: Fleet, space: Space) -> None:
    broker, cache = space.app("mosquitto"), space.app("redis")
    first, second, _third = fleet.cluster_names
    out = _install(
        "mosquitto",
        "--name",
        broker,
        "-n",
        space.namespace,
        "--cluster",
        first,
        "--cluster",
        second,
        "--set",
        "persistence.size=2Gi",
    )
    assert f"{broker} revision 1 -> {first}: Ready" in out
    assert f"{broker} revision 1 -> {second}: Ready" in out
    out = _install("redis", "--name", cache, "-n", space.namespace, "--all")
    for cluster in fleet.cluster_names:
        assert f"{cache} revision 1 -> {cluster}: Ready" in out

    # The installs are AppFlows like any other: in `appflow status`, with their version.
    grid = {a["name"]: a for a in status_json()["apps"]}
    assert {c: d["state"] for c, d in grid[broker]["deployments"].items()} == {
        first: "Ready",
        second: "Ready",
    }
    listed = cli("catalog", "installs", "-o", "json", "--catalog", str(CATALOG))
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert rows[broker]["entry"] == "mosquitto"
    assert rows[broker]["version"] == "1.0.0"
    assert rows[cache]["clusters"] == {c: "Ready" for c in fleet.cluster_names}
    assert not exists(fleet.sandbox, 2, "apps/v1", "Deployment", broker, space.namespace)

    # Upgrade: new values, the earlier ones kept.
    result = cli(
        "catalog",
        "upgrade",
        broker,
        "--set",
        "websockets.enabled=true",
        "--wait",
        "--timeout",
        "120",
        "--catalog",
        str(CATALOG),
    )
    assert result.exit_code == 0, result.output
    assert f"{broker} revision 2 -> {first}: Ready" in result.output
    service = live(fleet.sandbox, 0, "v1", "Service", broker, space.namespace)
    assert {p["port"] for p in service["spec"]["ports"]} == {1883, 9001}
    record = fleet.store.get_app(broker)
    assert record.catalog is not None
    persistence = record.catalog.values["persistence"]
    assert isinstance(persistence, dict)
    assert persistence["size"] == "2Gi"

    # Rollback like any other app: back to revision 1 (no websockets port).
    result = cli("app", "rollback", broker, "--to", "1")
    assert result.exit_code == 0, result.output
    service = live(fleet.sandbox, 0, "v1", "Service", broker, space.namespace)
    assert {p["port"] for p in service["spec"]["ports"]} == {1883}

    for name in (broker, cache):
        result = cli("catalog", "uninstall", name)
        assert result.exit_code == 0, result.output
    assert not exists(fleet.sandbox, 0, "apps/v1", "Deployment", broker, space.namespace)
    assert not exists(fleet.sandbox, 2, "apps/v1", "Deployment", cache, space.namespace)
    assert {a.name for a in fleet.store.list_apps()}.isdisjoint({broker, cache})


def test_schema_violation_blocks_the_install_and_changes_no_cluster(
    fleet: Fleet, space: Space
) -> None:
    name = space.app("mosquitto")
    before = snapshot(fleet.sandbox, space)
    result = cli(
        "catalog",
        "install",
        "mosquitto",
        "--name",
        name,
        "-n",
        space.namespace,
        "--all",
        "--set",
        "persistence.size=10X",
        "--set",
        "persistence.sise=1Gi",
        "--catalog",
        str(CATALOG),
    )
    assert result.exit_code == 1
    text = one_line(result.output)
    assert "values rejected before any cluster was touched" in text
    assert "persistence.size: '10X' does not match '^[0-9]+(Mi|Gi)$' (from --set)" in text
    assert (
        "persistence.sise: unknown key; allowed keys at persistence: accessMode, enabled, existingClaim, size, storageClass (from --set)"
        in text
    )
    assert snapshot(fleet.sandbox, space) == before
    assert name not in {a.name for a in fleet.store.list_apps()}


def test_a_constraint_that_matches_nothing_names_the_versions(fleet: Fleet, space: Space) -> None:
    result = cli(
        "catalog",
        "install",
        "mosquitto",
        "--name",
        space.app("m"),
        "--version",
        "2.x",
        "--all",
        "--catalog",
        str(CATALOG),
    )
    assert result.exit_code == 1
    assert (
        "no version of chart mosquitto matches '^1.0.0' and '2.x'; versions that exist: 1.0.0"
        in one_line(result.output)
    )

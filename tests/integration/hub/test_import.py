"""`appflow hub import`: a standalone fleet of 3 clusters, 5 apps and 2 catalog installs moves to
a hub, and the hub's first syncs (its own, and a user's `sync --all`) change nothing on the
clusters: every object is unchanged. The standalone store is left as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from appflow.model.hub import API_VERSION
from tests.helpers import Sandbox, eventually, run_cli
from tests.integration.hub.controllers import HubFleet

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[3]
PATHS = ("plain", "helm-web", "kustomize-telemetry", "fleet-mqtt", "edge-site/broker")
APPS = ("hello-edge", "edge-web", "telemetry", "fleet-mqtt", "site-broker")
INSTALLS = ("mosquitto", "redis")


def _counts(entry: dict[str, Any]) -> tuple[int, int, int]:
    counts = entry.get("counts") or {}
    return (counts.get("created", 0), counts.get("configured", 0), counts.get("pruned", 0))


def test_import_moves_a_standalone_fleet_and_the_hub_changes_nothing(
    fleet: HubFleet, sandbox: Sandbox, tmp_path: Path
) -> None:
    examples = tmp_path / "repos-example"
    shutil.copytree(ROOT / "repos-example", examples)
    home = tmp_path / "standalone"
    env = {
        "APPFLOW_HOME": str(home),
        "APPFLOW_CACHE_DIR": str(tmp_path / "standalone-cache"),
        "APPFLOW_SANDBOX_DIR": str(sandbox.root),
        "APPFLOW_HUB": "",
        "COLUMNS": "200",
    }

    def standalone(*args: str) -> str:
        result = run_cli(*args, env=env)
        assert result.exit_code == 0, f"appflow {' '.join(args)}:\n{result.output}"
        return result.output

    standalone("cluster", "add", "--from-sandbox")
    standalone("repo", "add", "examples", str(examples), *(a for p in PATHS for a in ("--path", p)))
    try:
        standalone("sync", "--all", "--wait")
        standalone("catalog", "install", "mosquitto", "--all", "--wait")
        standalone("catalog", "install", "redis", "--selector", "env=prod", "--wait")
        store = home / "appflow.db"
        before = hashlib.sha256(store.read_bytes()).hexdigest()

        imported = fleet.cli("hub", "import", "--from", str(store))
        assert imported.exit_code == 0, imported.output
        assert "clusters: test-1, test-2, test-3" in imported.output
        assert "catalog installs: mosquitto, redis" in imported.output
        assert hashlib.sha256(store.read_bytes()).hexdigest() == before
        again = fleet.cli("hub", "import", "--from", str(store))
        assert again.exit_code != 0
        assert "nothing was imported" in again.output
        assert "the hub has a cluster named test-1 already" in again.output

        fleet.start()
        everything = (*APPS, *INSTALLS)

        def synced_once() -> bool:
            for app in everything:
                deployments = fleet.deployments(app)
                if not deployments or any(
                    (d.get("status") or {}).get("state") != "Ready" for d in deployments
                ):
                    return False
            return True

        eventually(synced_once, timeout=240, what="every imported app synced by the hub")
        result = fleet.cli("sync", "--all", "-o", "json")
        assert result.exit_code == 0, result.output
        reports = json.loads(result.output)
        assert sorted(r["app"] for r in reports) == sorted(everything)
        for report in reports:
            for cluster in report["clusters"]:
                counts = cluster["counts"]
                changed = {k: v for k, v in counts.items() if k != "unchanged" and v}
                assert not changed, (report["app"], cluster["cluster"], counts)
        # Nothing the hub did, its own first syncs included, changed an object.
        for app in everything:
            for d in fleet.deployments(app):
                for entry in d["status"]["history"]:
                    assert _counts(entry) == (0, 0, 0), (app, d["spec"]["cluster"], entry)
        kube = fleet.kube()
        try:
            secrets = kube.list_sync("v1", "Secret", namespace=fleet.workspace)
            assert {s["metadata"]["name"] for s in secrets} >= {
                f"appflow-kubeconfig-test-{i}" for i in (1, 2, 3)
            }
            clusters = kube.list_sync(API_VERSION, "Cluster", namespace=fleet.workspace)
            assert {c["spec"]["mode"] for c in clusters} == {"push"}
        finally:
            kube.close()
    finally:
        fleet.stop()  # the hub's replicas must not re-apply what standalone prunes now
        for app in (*APPS, *INSTALLS):
            run_cli("app", "delete", app, env=env)

"""One app's unreadable inventory entry never stops drift detection for the other apps."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from appflow.engine.daemon import Daemon, DaemonOptions
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    dev_cluster,
    dev_only,
    kubectl,
    write_files,
)

pytestmark = pytest.mark.cluster


def _spoil_inventory(store: Path, app: str) -> None:
    """Add an entry no appflow could read to APP's mirrored inventory (a damaged store)."""
    conn = sqlite3.connect(str(store), isolation_level=None)
    try:
        for cluster, inventory in conn.execute(
            "SELECT cluster, inventory FROM deployments WHERE app = ?", (app,)
        ).fetchall():
            lines = [*json.loads(inventory), "v1 not-an-inventory-id"]
            conn.execute(
                "UPDATE deployments SET inventory = ? WHERE app = ? AND cluster = ?",
                (json.dumps(lines), app, cluster),
            )
    finally:
        conn.close()


async def test_an_unreadable_entry_of_one_app_leaves_drift_detection_of_others_running(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    broken, watched = space.app("broken"), space.app("watched")
    index, dev = dev_cluster(fleet.sandbox)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "read_only", "namespace": ns},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }
    for app, objects in (
        (broken, [configmap("broken-settings", ns, {"k": "v"})]),
        (watched, [configmap("watched-settings", ns, {"mode": "blue"}), role]),
    ):
        folder = write_files(tmp_path / app, {"appflow.yaml": dev_only(app, ns), "o.yaml": objects})
        added = await asyncio.to_thread(cli, "app", "add", app, "--local", str(folder))
        assert added.exit_code == 0, added.output
        synced = await asyncio.to_thread(cli, "sync", app)
        assert synced.exit_code == 0, synced.output
    _spoil_inventory(fleet.home / "appflow.db", broken)

    daemon = Daemon(
        fleet.engine,
        options=DaemonOptions(workers=2, resync_seconds=3600, self_heal_delay=0.2),
    )
    task = asyncio.create_task(daemon.run())
    try:

        def modified() -> bool:
            return fleet.store.get_deployment(watched, dev).state == "Modified"

        # The watch may open after an edit: edit again (a new value each time) until the
        # daemon reports one, within a bound.
        deadline = time.monotonic() + 90
        attempt = 0
        while not modified():
            if task.done() or time.monotonic() > deadline:
                events = "\n".join(
                    f"  {e.kind} {e.app} {e.outcome}: {e.message}"
                    for e in fleet.store.list_events(limit=30)
                )
                pytest.fail(f"drift of {watched} was never reported; events:\n{events}")
            attempt += 1
            await asyncio.to_thread(
                kubectl, fleet.sandbox, index, "-n", ns, "patch", "configmap", "watched-settings",
                "--type=merge", "-p", json.dumps({"data": {"mode": f"edited-{attempt}"}}),
            )  # fmt: skip
            for _ in range(25):
                if modified():
                    break
                await asyncio.sleep(0.2)
        deployment = fleet.store.get_deployment(watched, dev)
        assert "ConfigMap" in deployment.message
        assert "watched-settings" in deployment.message
    finally:
        daemon.stop()
        await asyncio.wait_for(task, timeout=60)

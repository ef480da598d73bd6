"""The daemon retries what a retry can fix and records, once, what it cannot."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml

from appflow.engine.daemon import Daemon, DaemonOptions
from appflow.engine.queue import WorkKey
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, configmap, register_local, write_files

pytestmark = pytest.mark.cluster


def test_a_terminal_failure_is_recorded_once_and_not_retried(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app = space.namespace, space.app("taken")
    dev = fleet.sandbox.by_env("dev")
    # An object the release would create already exists, made by someone else:
    # Helm refuses to take it over. Trying again changes nothing.
    kube = fleet.sandbox.kube(fleet.cluster_names.index(dev.name))
    try:
        kube.apply_sync(configmap("taken", ns, {"owner": "someone"}), field_manager="someone")
    finally:
        kube.close()
    folder = write_files(
        tmp_path / "chart",
        {
            "Chart.yaml": yaml.safe_dump({"apiVersion": "v2", "name": "taken", "version": "0.1.0"}),
            "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: taken\n"
            "data:\n  owner: appflow\n",
            "appflow.yaml": yaml.safe_dump(
                {
                    "name": app,
                    "namespace": ns,
                    "helm": {"chart": ".", "mode": "release"},
                    "targets": [{"name": "dev", "clusterName": dev.name}],
                }
            ),
        },
    )
    register_local(fleet, app, folder)
    # Helm installs a release with appflow's credentials: only an operator allows it.
    allowed = cli("policy", "set", "cluster", dev.name, "--helm-release", "allow")
    assert allowed.exit_code == 0, allowed.output

    async def run() -> Daemon:
        daemon = Daemon(
            fleet.engine, options=DaemonOptions(workers=1, resync_seconds=3600, drift=False)
        )
        task = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 120
        try:
            while not (
                [s for s in fleet.store.list_syncs(app) if s.outcome == "failed"]
                and daemon.queue_depth() == 0
            ):
                if time.monotonic() > deadline:
                    pytest.fail("the failed sync was not finished within 120s")
                await asyncio.sleep(0.2)
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=60)
        return daemon

    daemon = asyncio.run(run())

    assert daemon.queue.failures(WorkKey(app)) == 0  # done, not backing off
    events = fleet.store.list_events(app=app, limit=100)
    assert [e.kind for e in events if e.kind == "backoff"] == []
    failures = [e for e in events if e.kind == "failure"]
    assert len(failures) == 1, failures
    assert "ConfigMap" in failures[0].message
    assert "taken" in failures[0].message
    deployment = fleet.store.get_deployment(app, dev.name)
    assert deployment.state == "ErrApplied"
    assert len(fleet.store.list_syncs(app)) == 1

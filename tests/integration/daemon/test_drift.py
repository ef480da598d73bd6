"""Drift detection and self-heal by the daemon's watches, against real API servers."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from appflow.engine.daemon import Daemon, DaemonOptions
from appflow.model.records import AppRecord
from appflow.tools import find_tool
from tests.integration.engine.conftest import Fleet

pytestmark = pytest.mark.cluster


def _app(folder: Path, name: str, namespace: str, *, self_heal: bool) -> Path:
    folder.mkdir(parents=True)
    (folder / "appflow.yaml").write_text(
        f"name: {name}\nnamespace: {namespace}\n"
        f"targets:\n  - name: dev\n    clusterSelector:\n      matchLabels: {{env: dev}}\n"
        f"syncPolicy:\n  selfHeal: {str(self_heal).lower()}\n"
    )
    (folder / "web.yaml").write_text(
        f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {namespace}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: nginx}}]
"""
    )
    return folder


def _kubectl(fleet: Fleet, *args: str) -> str:
    kubeconfig = fleet.sandbox.by_env("dev").kubeconfig
    return subprocess.run(
        [str(find_tool("kubectl")), "--kubeconfig", str(kubeconfig), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


_store: Any = None


@asynccontextmanager
async def _running(fleet: Fleet) -> AsyncIterator[Daemon]:
    global _store
    _store = fleet.store
    daemon = Daemon(
        fleet.engine, options=DaemonOptions(workers=2, resync_seconds=3600, self_heal_delay=0.2)
    )
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, timeout=60)


async def _until(check: object, *, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            events = "\n".join(
                f"  {e.kind} {e.app} {e.cluster} {e.outcome}: {e.message}"
                for e in _store.list_events()
            )
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; events:\n{events}")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_self_heal_reverts_a_hand_edit_within_seconds(fleet: Fleet, tmp_path: Path) -> None:
    suffix = secrets.token_hex(3)
    name, namespace = f"heal-{suffix}", f"heal-{suffix}"
    _app(tmp_path / "app", name, namespace, self_heal=True)
    fleet.store.put_app(
        AppRecord(name=name, source="local", local_path=str(tmp_path / "app"), path="")
    )
    cluster = fleet.sandbox.by_env("dev").name
    async with _running(fleet):
        await _until(
            lambda: any(d.state == "Ready" for d in fleet.store.list_deployments(app=name)),
            timeout=60,
            what="the first sync by the daemon",
        )
        # Give the drift supervisor time to open its watch on Deployments.
        await asyncio.sleep(1.5)
        _kubectl(fleet, "-n", namespace, "scale", "deployment/web", "--replicas=5")
        took = await _until(
            lambda: (
                _kubectl(
                    fleet,
                    "-n",
                    namespace,
                    "get",
                    "deploy",
                    "web",
                    "-o",
                    "jsonpath={.spec.replicas}",
                )
                == "2"
            ),
            timeout=10,
            what="self-heal to put replicas back to 2",
        )
        print(f"self-heal reverted the hand edit in {took:.2f}s")
        kinds = {e.kind for e in fleet.store.list_events(app=name, cluster=cluster)}
        assert "drift" in kinds
        assert any(s.trigger == "selfHeal" for s in fleet.store.list_syncs(name, cluster=cluster))
    await asyncio.to_thread(fleet.engine.store.delete_app, name, with_deployments=True)


async def test_without_self_heal_drift_shows_as_modified_with_the_field(
    fleet: Fleet, tmp_path: Path
) -> None:
    suffix = secrets.token_hex(3)
    name, namespace = f"drift-{suffix}", f"drift-{suffix}"
    _app(tmp_path / "app", name, namespace, self_heal=False)
    fleet.store.put_app(
        AppRecord(name=name, source="local", local_path=str(tmp_path / "app"), path="")
    )
    cluster = fleet.sandbox.by_env("dev").name
    async with _running(fleet):
        await _until(
            lambda: any(d.state == "Ready" for d in fleet.store.list_deployments(app=name)),
            timeout=60,
            what="the first sync by the daemon",
        )
        await asyncio.sleep(1.5)
        _kubectl(fleet, "-n", namespace, "scale", "deployment/web", "--replicas=4")
        await _until(
            lambda: fleet.store.get_deployment(name, cluster).state == "Modified",
            timeout=10,
            what="the Deployment to show Modified",
        )
        deployment = fleet.store.get_deployment(name, cluster)
        assert "spec.replicas" in deployment.message
        # Fields of other managers are not drift: a label added by hand.
        _kubectl(fleet, "-n", namespace, "label", "deployment/web", "team=edge")
        await asyncio.sleep(1.0)
        assert (
            _kubectl(
                fleet, "-n", namespace, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"
            )
            == "4"
        )
    await asyncio.to_thread(fleet.engine.store.delete_app, name, with_deployments=True)

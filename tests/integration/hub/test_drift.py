"""Drift on push-mode clusters in hub mode: the replica that owns an app watches its objects, as
standalone's daemon does. With selfHeal a hand edit is reverted through the replica's sync (a
history entry with trigger selfHeal); without it the AppFlowDeployment shows Modified, naming
the field, and the edit stays. When the app's share moves to another replica, that one watches."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Sandbox, built_tool, eventually
from tests.integration.daemon.test_drift import _app as daemon_app
from tests.integration.hub.controllers import HubFleet, Replica

pytestmark = pytest.mark.cluster


def _app(folder: Path, name: str, namespace: str, *, self_heal: bool) -> Path:
    """The daemon drift tests' app (a Deployment on the env=dev cluster), with a ConfigMap."""
    daemon_app(folder, name, namespace, self_heal=self_heal)
    (folder / "settings.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": namespace},
                "data": {"mode": "edge"},
            }
        )
    )
    return folder


def _kubectl(sandbox: Sandbox, *args: str, check: bool = True) -> str:
    return subprocess.run(
        [str(built_tool("kubectl")), "--kubeconfig", str(sandbox.by_env("dev").kubeconfig), *args],
        check=check,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def _replicas(sandbox: Sandbox, namespace: str) -> str:
    return _kubectl(
        sandbox, "-n", namespace, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"
    )


def _status(fleet: HubFleet, app: str, cluster: str) -> dict[str, Any]:
    (d,) = [d for d in fleet.deployments(app) if d["spec"]["cluster"] == cluster]
    return dict(d.get("status") or {})


def _watching(replica: Replica, kind: str, cluster: str) -> bool:
    """Whether REPLICA's drift watch of KIND on CLUSTER is open (its log says so)."""
    return f"watching {kind} on {cluster}" in replica.log.read_text(errors="replace")


def _synced(fleet: HubFleet, name: str, folder: Path) -> None:
    added = fleet.cli("app", "add", name, "--local", str(folder))
    assert added.exit_code == 0, added.output
    synced = fleet.cli("sync", name, "--wait")
    assert synced.exit_code == 0, synced.output


def test_a_hand_edit_is_reverted_with_self_heal_and_shown_modified_without(
    fleet: HubFleet, sandbox: Sandbox, tmp_path: Path
) -> None:
    suffix = secrets.token_hex(3)
    heal, drift = f"heal-{suffix}", f"drift-{suffix}"  # apps and namespaces: the sandbox is shared
    dev = sandbox.by_env("dev").name
    replica = fleet.start()
    assert fleet.cli("cluster", "add", "--from-sandbox").exit_code == 0
    try:
        _synced(fleet, heal, _app(tmp_path / heal, heal, heal, self_heal=True))
        _synced(fleet, drift, _app(tmp_path / drift, drift, drift, self_heal=False))
        eventually(
            lambda: (
                _watching(replica, "apps/v1/Deployment", dev)
                and _watching(replica, "v1/ConfigMap", dev)
            ),
            timeout=60,
            what=f"the replica's drift watches of Deployments and ConfigMaps on {dev}",
        )

        edited = time.monotonic()
        _kubectl(sandbox, "-n", heal, "scale", "deployment/web", "--replicas=5")
        _kubectl(sandbox, "-n", heal, "delete", "configmap", "settings")
        eventually(
            lambda: (
                _replicas(sandbox, heal) == "2"
                # By name: Kubernetes adds kube-root-ca.crt to every namespace.
                and _kubectl(
                    sandbox, "-n", heal, "get", "configmap", "settings", "-o", "name", check=False
                )
                == "configmap/settings\n"
            ),
            timeout=60,
            what="self-heal to put replicas back to 2 and the deleted ConfigMap back",
        )
        # A figure for the report, not an assertion (the machine may be loaded).
        print(f"hub self-heal reverted the hand edits {time.monotonic() - edited:.1f}s after them")
        healed = fleet.cli("app", "history", heal, "-o", "json")
        assert healed.exit_code == 0, healed.output
        assert "selfHeal" in healed.output
        eventually(
            lambda: _status(fleet, heal, dev).get("state") == "Ready",
            timeout=60,
            what=f"{heal} Ready again on {dev}",
        )

        edited = time.monotonic()
        _kubectl(sandbox, "-n", drift, "scale", "deployment/web", "--replicas=4")
        eventually(
            lambda: _status(fleet, drift, dev).get("state") == "Modified",
            timeout=60,
            what=f"{drift} on {dev} shown Modified",
        )
        print(f"hub drift shown Modified {time.monotonic() - edited:.1f}s after the edit")
        status = _status(fleet, drift, dev)
        assert "spec.replicas" in status["message"]
        assert status["resourceCounts"]["modified"] >= 1
        eventually(
            lambda: (
                (fleet.app(drift).get("status") or {}).get("resourceCounts", {}).get("modified")
                == status["resourceCounts"]["modified"]
            ),
            timeout=30,
            what=f"{drift}'s AppFlow counting the modified object",
        )
        # Reported, not corrected: the edit stays, and no sync ran for it.
        assert _replicas(sandbox, drift) == "4"
        history = fleet.cli("app", "history", drift, "-o", "json")
        assert "selfHeal" not in history.output
    finally:
        for name in (heal, drift):
            fleet.cli("app", "delete", name)


def test_the_watches_follow_the_share_to_another_replica(
    fleet: HubFleet, sandbox: Sandbox, tmp_path: Path
) -> None:
    name = f"heal-{secrets.token_hex(3)}"
    dev = sandbox.by_env("dev").name
    first = fleet.start()
    assert fleet.cli("cluster", "add", "--from-sandbox").exit_code == 0
    try:
        _synced(fleet, name, _app(tmp_path / name, name, name, self_heal=True))
        eventually(
            lambda: _watching(first, "apps/v1/Deployment", dev),
            timeout=60,
            what="the first replica's drift watch",
        )
        second = fleet.start()
        first.process.terminate()  # its share (the app) moves to the second replica
        first.process.wait(timeout=60)
        assert f"stopped watching apps/v1/Deployment on {dev}" in first.log.read_text()
        fleet.wait_owned([name])
        eventually(
            lambda: _watching(second, "apps/v1/Deployment", dev),
            timeout=60,
            what="the second replica's drift watch",
        )
        _kubectl(sandbox, "-n", name, "scale", "deployment/web", "--replicas=3")
        eventually(
            lambda: _replicas(sandbox, name) == "2",
            timeout=60,
            what="the new owner to revert the hand edit",
        )
    finally:
        fleet.cli("app", "delete", name)

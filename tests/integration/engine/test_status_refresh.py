"""`appflow status` and `app show` look at the clusters (issue 9 item 14).

Without `appflow serve` running, status used to show only what the last sync
recorded: an app synced without --wait stayed NotReady after its pods were
Ready, and a hand-scaled Deployment still showed Ready. Both commands now
refresh health and drift from every cluster, concurrently and within a bound
per cluster; `--cached` shows the recorded view.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import eventually
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    deployment,
    kubectl,
    one_line,
    write_files,
)

pytestmark = pytest.mark.cluster


def status(*args: str) -> dict[str, Any]:
    result = cli("status", "-o", "json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def deployments_of(data: dict[str, Any], app: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = next(a for a in data["apps"] if a["name"] == app)[
        "deployments"
    ]
    return found


def slow_to_become_available(name: str, ns: str) -> dict[str, Any]:
    """A Deployment Available only 10 s after its pods are Ready: a sync without --wait
    always records it NotReady."""
    web = deployment(name, ns, replicas=2)
    web["spec"]["minReadySeconds"] = 10
    return web


def test_status_refreshes_health_and_shows_drift_with_its_paths(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("observed")
    first = fleet.cluster_names[0]
    folder = write_files(
        tmp_path / "observed",
        {
            "fleet.yaml": f"defaultNamespace: {ns}\n",
            "web.yaml": [slow_to_become_available("web", ns), configmap("settings", ns, {})],
        },
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    synced = cli("sync", app)
    assert synced.exit_code == 0, synced.output
    assert one_line(synced.stdout).count(": NotReady (") == len(fleet.cluster_names), synced.output

    # No daemon runs: status itself looks at the clusters.
    eventually(
        lambda: {d["state"] for d in deployments_of(status(), app).values()} == {"Ready"},
        timeout=120,
        what=f"appflow status to show {app} Ready on every cluster",
    )

    assert {d["state"] for d in deployments_of(status("--cached"), app).values()} == {"Ready"}

    kubectl(fleet.sandbox, 0, "-n", ns, "scale", "deployment/web", "--replicas=5")
    cached = deployments_of(status("--cached"), app)
    assert cached[first]["state"] == "Ready", "--cached shows what was recorded"

    fresh = deployments_of(status(), app)
    assert fresh[first]["state"] == "Modified", fresh[first]
    assert f"Deployment.apps/{ns}/web changed: spec.replicas" in fresh[first]["message"]
    assert fresh[first]["resources"]["modified"] == 1
    for other in fleet.cluster_names[1:]:
        assert fresh[other]["state"] == "Ready", fresh[other]
    table = cli("status")
    assert table.exit_code == 0, table.output
    assert "Modified" in table.stdout
    assert f"{app} on {first}: Deployment.apps/{ns}/web changed: spec.replicas" in one_line(
        table.stdout
    )

    shown = cli("app", "show", app, "-o", "json")
    assert shown.exit_code == 0, shown.output
    by_cluster = {d["cluster"]: d for d in json.loads(shown.stdout)["deployments"]}
    assert by_cluster[first]["state"] == "Modified"
    assert "spec.replicas" in by_cluster[first]["message"]

    # A sync takes the hand edit back; status follows.
    assert cli("sync", app, "--wait", "--timeout", "120").exit_code == 0
    assert deployments_of(status(), app)[first]["state"] == "Ready"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a cluster gone silent."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


def test_a_silent_cluster_does_not_hold_status_back(
    fleet: Fleet, space: Space, tmp_path: Path, silent_port: int
) -> None:
    ns = space.namespace
    app = space.app("far")
    silent = f"far-site-{space.suffix}"
    # Registered while it answers (it is the first sandbox cluster under a second name).
    added = cli("cluster", "add", silent, "--kubeconfig", str(fleet.sandbox.clusters[0].kubeconfig))
    assert added.exit_code == 0, added.output
    folder = write_files(
        tmp_path / "far",
        {
            "fleet.yaml": f"defaultNamespace: {ns}\n",
            "settings.yaml": [configmap("settings", ns, {"k": "v"})],
        },
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    assert cli("sync", app).exit_code == 0
    assert set(deployments_of(status(), app)) == {*fleet.cluster_names, silent}

    # Then its API server stops answering (the site's link is down).
    kubeconfig = fleet.home / "clusters" / f"{silent}.kubeconfig"
    document = yaml.safe_load(kubeconfig.read_text())
    for entry in document["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{silent_port}"
    kubeconfig.write_text(yaml.safe_dump(document))

    states = deployments_of(status(), app)
    for name in fleet.cluster_names:
        assert states[name]["state"] == "Ready", states[name]
        assert states[name].get("refreshed") is True, states[name]
    assert states[silent].get("refreshed") is False, states[silent]
    assert states[silent]["state"] == "Unknown"
    # The default bound per cluster.
    assert f"{silent} did not answer within 5s" in states[silent]["message"], states[silent]
    table = cli("status", "--timeout", "2")
    assert table.exit_code == 0, table.output
    assert f"{silent} did not answer within 2s" in one_line(table.output)

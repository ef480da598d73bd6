"""Under `appflow serve`, two apps that render the same objects never hand them back and forth.

Before issue 9, each resync of the second app took the objects over, and each
resync of the first took them back. Now the second app is refused on every
attempt, naming the first, and nothing is written to the contested objects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from appflow.model.objects import LABEL_APP
from tests.e2e.support import serving, until
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, deployment, service

pytestmark = pytest.mark.cluster


def _bundle(folder: Path, namespace: str, *objects: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    (folder / "fleet.yaml").write_text(f"defaultNamespace: {namespace}\n")
    (folder / "web.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return folder


def _appflow_writes(fleet: Fleet, index: int, kind: str, name: str, ns: str) -> list[str]:
    """When appflow last applied the object (its managed-fields entries): changes on any write."""
    api_version = "apps/v1" if kind == "Deployment" else "v1"
    kube = fleet.sandbox.kube(index)
    try:
        obj = kube.get_sync(api_version, kind, name, ns)
    finally:
        kube.close()
    assert obj is not None
    assert obj["metadata"]["labels"][LABEL_APP]
    return [
        f"{obj['metadata']['labels'][LABEL_APP]}@{e.get('time')}"
        for e in obj["metadata"].get("managedFields") or []
        if e.get("manager") == "appflow"
    ]


def test_two_apps_with_the_same_objects_never_flip_ownership(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    first, second = space.app("site"), space.app("site-copy")
    web = [deployment("web", ns), service("web", ns)]
    assert (
        cli("app", "add", first, "--local", str(_bundle(tmp_path / "a", ns, *web))).exit_code == 0
    )
    assert cli("sync", first, "--wait", "--timeout", "120").exit_code == 0
    copy = [deployment("web", ns, replicas=2), service("web", ns)]
    added = cli("app", "add", second, "--local", str(_bundle(tmp_path / "b", ns, *copy)))
    assert added.exit_code == 0
    before = {
        (index, kind): _appflow_writes(fleet, index, kind, "web", ns)
        for index in range(len(fleet.cluster_names))
        for kind in ("Deployment", "Service")
    }
    cluster = fleet.cluster_names[0]

    def refusals() -> list[dict[str, Any]]:
        result = cli("events", "--app", second, "--cluster", cluster, "-o", "json")
        assert result.exit_code == 0, result.output
        return [e for e in json.loads(result.stdout) if e["outcome"] == "blocked"]

    log = tmp_path / "serve.log"
    # A full resync every second: each one syncs both apps again.
    with serving(fleet, log, args=("--poll", "3600", "--resync", "1")):
        until(
            lambda: len(refusals()) >= 3,
            timeout=120,
            what=f"three resyncs of {second} to be refused",
            log=log,
        )
    message = refusals()[0]["message"]
    assert f"Deployment.apps/{ns}/web: owned by app {first}" in message, message
    for (index, kind), writes in before.items():
        assert _appflow_writes(fleet, index, kind, "web", ns) == writes, (
            f"{kind} web on {fleet.cluster_names[index]} was written while contested"
        )
    status = json.loads(cli("status", "-o", "json", "--cached").stdout)
    states = {a["name"]: a["deployments"] for a in status["apps"]}
    assert {d["state"] for d in states[first].values()} == {"Ready"}

"""Catalog auto-upgrades under the hub: a new chart version published in a catalog repository
(a real Helm repository made with `helm create`, `helm package` and `helm repo index`, served
over HTTPS with a CA of its own, as the hub's CatalogRepo schema asks for https)
upgrades the installs whose policy is auto, as standalone `appflow serve` does; manual ones stay.
The repository is polled by one replica only: its key is sharded like a GitRepo's."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Sandbox, eventually
from tests.integration.catalog.conftest import ChartRepo, _package_web, helm, serve_chart_repo
from tests.integration.git.gitservers import TlsFiles
from tests.integration.hub.controllers import HubFleet

pytestmark = pytest.mark.cluster


@pytest.fixture
def https_repo(tmp_path: Path, helm_env: dict[str, str]) -> Iterator[tuple[ChartRepo, TlsFiles]]:
    tls = TlsFiles.create(tmp_path / "tls")
    with serve_chart_repo(tmp_path, helm_env, tls=tls) as repo:
        yield repo, tls


def _installs(fleet: HubFleet) -> dict[str, dict[str, Any]]:
    listed = fleet.cli("catalog", "installs", "-o", "json")
    assert listed.exit_code == 0, listed.output
    return {row["name"]: row for row in json.loads(listed.output)}


def _applied(fleet: HubFleet, app: str) -> tuple[Any, Any]:
    for d in fleet.deployments(app):
        if d["spec"]["cluster"] == "test-1":
            status = d.get("status") or {}
            return status.get("state"), status.get("appliedRevision")
    return None, None


def _publish(repo: ChartRepo, env: dict[str, str], work: Path, version: str) -> None:
    """Package the chart at VERSION into the repository and index it again."""
    _package_web(env, work, repo.folder, version)
    helm(env, "repo", "index", str(repo.folder), "--url", repo.url)
    # The test server's Last-Modified has one-second resolution: an index rewritten within the
    # second of a poll would answer 304 to that poller for ever. Dated two seconds on, it cannot.
    index = repo.folder / "index.yaml"
    later = time.time() + 2
    os.utime(index, (later, later))


def test_auto_installs_follow_a_new_chart_version_polled_by_one_replica(
    fleet: HubFleet,
    sandbox: Sandbox,
    https_repo: tuple[ChartRepo, TlsFiles],
    helm_env: dict[str, str],
    tmp_path: Path,
) -> None:
    chart_repo, tls = https_repo
    replicas = [fleet.start(extra=("--poll-seconds", "1")) for _ in range(2)]
    assert fleet.cli("cluster", "add", "--from-sandbox").exit_code == 0
    added = fleet.cli("catalog", "repo", "add", "charts", chart_repo.url, "--ca-file", str(tls.ca))
    assert added.exit_code == 0, added.output
    suffix = secrets.token_hex(3)
    auto, manual = f"web-auto-{suffix}", f"web-manual-{suffix}"
    try:
        for name, policy in ((auto, "auto"), (manual, "manual")):
            installed = fleet.cli(
                "catalog",
                "install",
                "charts/web",
                "--name",
                name,
                "--version",
                "1.x",
                "--policy",
                policy,
                "--cluster",
                "test-1",
                "-n",
                name,
                "--wait",
                "--timeout",
                "120",
            )
            assert installed.exit_code == 0, installed.output
        rows = _installs(fleet)
        assert (rows[auto]["version"], rows[manual]["version"]) == ("1.1.0", "1.1.0")
        # The repository's key is one replica's, as a GitRepo's is.
        eventually(
            lambda: sum("charts" in r.held("catalogrepo") for r in replicas) == 1,
            timeout=60,
            what="the catalog repository held by one replica",
        )

        _publish(chart_repo, helm_env, tmp_path / "charts", "1.2.0")
        eventually(
            lambda: (
                _installs(fleet)[auto]["version"] == "1.2.0"
                and _applied(fleet, auto) == ("Ready", 2)
            ),
            timeout=180,
            what=f"{auto} upgraded to 1.2.0 and Ready at revision 2 on test-1",
        )
        assert _installs(fleet)[manual]["version"] == "1.1.0"
        assert _applied(fleet, manual)[1] == 1
        history = fleet.cli("app", "history", auto, "-o", "json")
        assert history.exit_code == 0, history.output
        assert {h["revision"] for h in json.loads(history.output)} >= {1, 2}

        def upgrade_events() -> list[dict[str, Any]]:
            kube = fleet.kube()
            try:
                events = kube.list_sync("events.k8s.io/v1", "Event", namespace=fleet.workspace)
            finally:
                kube.close()
            note = "automatic catalog upgrade of charts/web: 1.1.0 -> 1.2.0"
            return [e for e in events if note in str(e.get("note"))]

        # The poller records it once the sync it asked for has finished, which may come after
        # the sync the AppFlow's new version started by itself.
        eventually(lambda: bool(upgrade_events()), timeout=120, what="the upgrade's Event")
        upgraded = upgrade_events()
        # Upgraded once, by a replica that held the repository's key (on a loaded machine a
        # replica may be fenced and the key move, but it is never held by two at once).
        pollers = {
            r.identity
            for r in replicas
            if f"took catalogrepo/{fleet.workspace}/charts" in r.log.read_text(errors="replace")
        }
        assert len(upgraded) == 1
        assert upgraded[0].get("reportingInstance") in pollers
        assert "1.2.0" in json.dumps(fleet.app(auto)["spec"])
    finally:
        for name in (auto, manual):
            fleet.cli("catalog", "uninstall", name)

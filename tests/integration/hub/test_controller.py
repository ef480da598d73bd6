"""`appflow controller` replicas as processes against the hub: they share the AppFlows and the
repositories (each polled by its owner only), and each answers its readiness probe."""

from __future__ import annotations

import time
import urllib.request

import pytest

from appflow.model.hub import API_VERSION
from appflow.model.resources import parse_time
from tests.helpers import eventually
from tests.integration.hub.controllers import HubFleet, free_port

pytestmark = pytest.mark.cluster


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_two_controllers_share_the_appflows_and_each_repository_has_one_poller(
    fleet: HubFleet,
) -> None:
    names = [f"app-{i:02d}" for i in range(12)]
    repos = [f"repo-{i}" for i in range(4)]
    fleet.create_appflows(names, {"definition": {"namespace": "web"}})
    kube = fleet.kube()
    try:
        for repo in repos:
            # Nothing listens there: every poll fails, and its poller records a failure Event
            # as the replica it is, which is what shows who polled.
            kube.create_sync(
                {
                    "apiVersion": API_VERSION,
                    "kind": "GitRepo",
                    "metadata": {"name": repo, "namespace": fleet.workspace},
                    "spec": {"url": f"https://127.0.0.1:{free_port()}/{repo}.git", "ref": "main"},
                }
            )
        ports = [free_port() for _ in range(2)]
        for port in ports:
            fleet.start(extra=("--listen", f"127.0.0.1:{port}", "--poll-seconds", "1"))
        # Each held once, by members that agree on who the members are.
        fleet.wait_owned(names)
        assert sum(len(r.held()) for r in fleet.replicas) == len(names)
        assert all(_ready(port) for port in ports)

        def owners() -> dict[str, list[str]]:
            return {
                repo: [r.identity for r in fleet.replicas if repo in r.held("gitrepo")]
                for repo in repos
            }

        # The repositories' keys move in the same view as the apps'; their logs may lag.
        eventually(
            lambda: all(len(o) == 1 for o in owners().values()),
            timeout=30,
            what="each repository held by one replica",
        )
        settled = time.time()

        def pollers() -> dict[str, list[str]]:
            """Per repository, who recorded each failed poll since the shares settled."""
            found: dict[str, list[str]] = {repo: [] for repo in repos}
            for event in kube.list_sync("events.k8s.io/v1", "Event", namespace=fleet.workspace):
                moment = parse_time(event.get("eventTime"))
                note = str(event.get("note") or "")
                for repo in repos:
                    if (
                        moment
                        and moment.timestamp() > settled
                        and note.startswith(f"repository {repo}:")
                    ):
                        found[repo].append(str(event.get("reportingInstance")))
            return found

        eventually(
            lambda: all(len(p) >= 2 for p in pollers().values()),
            timeout=60,
            what="every repository polled twice since the shares settled",
        )
        assert {repo: sorted(set(p)) for repo, p in pollers().items()} == owners()
    finally:
        kube.close()

"""A git source resolves once: the commit a poll or a webhook found is the commit the sync
uses, without asking the remote again; an app that does not sync by itself (paused, or
syncPolicy.auto false) is marked OutOfSync when its source moves."""

from __future__ import annotations

import asyncio
import time

import pytest
import yaml

from appflow.engine.daemon import Daemon, DaemonOptions
from appflow.model.records import GitCommit
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, configmap, live
from tests.integration.git.gitservers import GitHttpServer, Origin

pytestmark = pytest.mark.cluster


def _files(app: str, ns: str, colour: str, *, auto: bool = True) -> dict[str, str | None]:
    return {
        "apps/web/appflow.yaml": yaml.safe_dump(
            {"name": app, "namespace": ns, "syncPolicy": {"auto": auto}}
        ),
        "apps/web/config.yaml": yaml.safe_dump(configmap("settings", ns, {"colour": colour})),
    }


def _listings(served: GitHttpServer) -> int:
    """Ref listings served (a fetch starts with one too)."""
    return sum(1 for method, path, _ in served.requests if method == "GET" and "info/refs" in path)


def test_a_sync_given_the_commit_a_poll_or_a_webhook_found_asks_the_remote_nothing(
    fleet: Fleet, space: Space, origin: Origin, server: GitHttpServer
) -> None:
    ns, app, repo = space.namespace, space.app("web"), f"fleet-{space.suffix}"
    first = origin.commit(_files(app, ns, "blue"))
    added = cli("repo", "add", repo, server.url("org/fleet.git"), "--path", "apps/web")
    assert added.exit_code == 0, added.output

    polled = asyncio.run(fleet.engine.refresh_repo(repo))
    assert (polled.commit, polled.due) == (first, (app,))
    server.requests.clear()
    report = asyncio.run(fleet.engine.sync(app, commit=polled.commit))
    assert report.ok, report
    assert server.requests == []  # no ls-remote, no fetch: the poll resolved it
    assert report.revision is not None
    assert report.revision.source_ref == GitCommit(commit=first)

    second = origin.commit(_files(app, ns, "green"))
    server.requests.clear()
    hooked = asyncio.run(fleet.engine.refresh_repo(repo, commit=second))
    # The webhook named the commit: one fetch (which lists refs once), no ls-remote first.
    assert (hooked.commit, hooked.due) == (second, (app,))
    assert (_listings(server), server.uploads()) == (1, 1)
    server.requests.clear()
    report = asyncio.run(fleet.engine.sync(app, commit=hooked.commit))
    assert report.ok, report
    assert server.requests == []
    assert report.revision is not None
    assert report.revision.source_ref == GitCommit(commit=second)
    assert live(fleet.sandbox, 0, "v1", "ConfigMap", "settings", ns)["data"] == {"colour": "green"}


async def _until(check: object, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


def test_a_manual_sync_app_whose_source_moved_is_out_of_sync_until_synced(
    fleet: Fleet, space: Space, origin: Origin, server: GitHttpServer
) -> None:
    ns, app, repo = space.namespace, space.app("manual"), f"manual-{space.suffix}"
    origin.commit(_files(app, ns, "blue", auto=False))
    assert (
        cli("repo", "add", repo, server.url("org/fleet.git"), "--path", "apps/web").exit_code == 0
    )
    synced = cli("sync", app)
    assert synced.exit_code == 0, synced.output
    moved = origin.commit(_files(app, ns, "green", auto=False))

    def states() -> set[str]:
        return {d.state for d in fleet.store.list_deployments(app=app)}

    async def run() -> None:
        daemon = Daemon(
            fleet.engine, options=DaemonOptions(workers=1, poll_seconds=0.5, drift=False)
        )
        task = asyncio.create_task(daemon.run())
        try:
            await _until(lambda: states() == {"OutOfSync"}, timeout=60, what="OutOfSync")
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=60)

    asyncio.run(run())
    [deployment, *_] = fleet.store.list_deployments(app=app)
    assert moved[:12] in deployment.message
    assert "syncPolicy.auto is false" in deployment.message
    # Not synced: the clusters still have what the last sync applied.
    assert live(fleet.sandbox, 0, "v1", "ConfigMap", "settings", ns)["data"] == {"colour": "blue"}

    synced = cli("sync", app)
    assert synced.exit_code == 0, synced.output
    assert states() == {"Ready"}
    assert live(fleet.sandbox, 0, "v1", "ConfigMap", "settings", ns)["data"] == {"colour": "green"}

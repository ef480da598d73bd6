"""The daemon keeps going when part of the fleet fails: a repository whose fetch keeps
failing backs off without holding up the others, and a cluster that goes away shows
Offline and converges by itself once it is back."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from appflow import sandbox as sb
from appflow.engine.daemon import Daemon, DaemonOptions
from appflow.model.objects import Manifest
from appflow.model.records import EventRecord
from appflow.server.metrics import Metrics
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, configmap, register_local, write_files
from tests.integration.git.gitservers import GitHttpServer, Origin, serve_http

pytestmark = pytest.mark.cluster


@asynccontextmanager
async def _running(
    fleet: Fleet, options: DaemonOptions, metrics: Metrics | None = None
) -> AsyncIterator[Daemon]:
    daemon = Daemon(
        fleet.engine, options=options, on_sync=metrics.observe_report if metrics else None
    )
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, timeout=60)


async def _until(fleet: Fleet, check: Callable[[], bool], *, timeout: float, what: str) -> None:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            events = "\n".join(
                f"  {e.time:%H:%M:%S} {e.kind} {e.app} {e.cluster} {e.outcome}: {e.message}"
                for e in fleet.store.list_events(limit=40)
            )
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; events:\n{events}")
        await asyncio.sleep(0.2)


def _configmap_data(fleet: Fleet, cluster: str, ns: str) -> dict[str, str]:
    kube = fleet.sandbox.kube(fleet.cluster_names.index(cluster))
    try:
        live = kube.get_sync("v1", "ConfigMap", "settings", ns) or {}
    finally:
        kube.close()
    return dict(live.get("data") or {})


def _app_files(app: str, ns: str, env: str, mode: str) -> dict[str, str | list[Manifest] | None]:
    return {
        "appflow.yaml": f"name: {app}\nnamespace: {ns}\n"
        f"targets:\n  - name: {env}\n    clusterSelector:\n      matchLabels: {{env: {env}}}\n",
        "config.yaml": json.dumps(configmap("settings", ns, {"mode": mode})),
    }


def _repo(origin: Origin, app: str, ns: str, mode: str) -> str:
    files = _app_files(app, ns, "dev", mode)
    return origin.commit({f"apps/web/{k}": v for k, v in files.items() if isinstance(v, str)})


async def test_a_failing_repository_backs_off_and_the_others_still_sync(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    good_app, bad_app = space.app("good"), space.app("gone")
    good_repo, bad_repo = f"good-{space.suffix}", f"gone-{space.suffix}"
    good = Origin(tmp_path / "srv" / "org" / "good.git")
    gone = Origin(tmp_path / "srv2" / "org" / "gone.git")
    _repo(good, good_app, ns, "blue")
    _repo(gone, bad_app, f"{ns}-gone", "blue")
    dev = fleet.sandbox.by_env("dev").name
    with serve_http(GitHttpServer(good.path.parent.parent)) as server:
        url = server.url("org/good.git")
        assert (
            await asyncio.to_thread(cli, "repo", "add", good_repo, url, "--path", "apps/web")
        ).exit_code == 0
        # The other repository's server goes away after it was registered: its port closes.
        with serve_http(GitHttpServer(gone.path.parent.parent)) as doomed:
            gone_url = doomed.url("org/gone.git")
            assert (
                await asyncio.to_thread(
                    cli, "repo", "add", bad_repo, gone_url, "--path", "apps/web"
                )
            ).exit_code == 0

        def fetch_failures() -> list[EventRecord]:
            return [
                e
                for e in fleet.store.list_events(limit=1000)
                if e.outcome == "fetch-failed" and f"repository {bad_repo}:" in e.message
            ]

        options = DaemonOptions(workers=2, resync_seconds=3600, poll_seconds=1.0, drift=False)
        async with _running(fleet, options):
            await _until(
                fleet,
                lambda: _configmap_data(fleet, dev, ns).get("mode") == "blue",
                timeout=90,
                what="the good repository's app to be synced",
            )
            await _until(
                fleet, lambda: len(fetch_failures()) >= 1, timeout=30, what="a fetch failure"
            )
            good.commit(
                {"apps/web/config.yaml": json.dumps(configmap("settings", ns, {"mode": "green"}))}
            )
            await _until(
                fleet,
                lambda: _configmap_data(fleet, dev, ns).get("mode") == "green",
                timeout=60,
                what="the push to the good repository to reach the cluster",
            )
            await _until(
                fleet, lambda: len(fetch_failures()) >= 3, timeout=60, what="three fetch failures"
            )
        failures = fetch_failures()
        # Each failure is an event that says when the next attempt comes; the waits grow.
        waits = [float(re.findall(r"next attempt in (\d+)s", e.message)[0]) for e in failures]
        assert waits == sorted(waits), waits
        assert waits[2] > waits[0], waits
        for before, after, wait in zip(failures, failures[1:], waits, strict=False):
            # The daemon really waited: never sooner than announced (rounded to a second).
            assert after.time - before.time >= timedelta(seconds=wait - 1), (before, after)
        print(f"\nfetch failures announced waits of {waits}s")
        assert all(e.trigger == "poll" for e in failures)
        assert gone_url.split("//")[1].split("/")[0] in failures[0].message, failures[0].message


async def test_a_stopped_cluster_shows_offline_then_converges_by_itself(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app = space.namespace, space.app("edge")
    prod = fleet.sandbox.by_env("prod")
    folder = write_files(tmp_path / "app", _app_files(app, ns, "prod", "blue"))
    register_local(fleet, app, folder)
    metrics = Metrics()

    def reachable() -> float | None:
        return metrics.registry.get_sample_value(
            "appflow_cluster_reachable", {"cluster": prod.name}
        )

    options = DaemonOptions(workers=2, resync_seconds=3600)
    stopped = False
    async with _running(fleet, options, metrics) as daemon:
        try:
            await _until(
                fleet,
                lambda: any(d.state == "Ready" for d in fleet.store.list_deployments(app=app)),
                timeout=90,
                what="the first sync",
            )
            assert reachable() == 1.0
            await asyncio.to_thread(sb.stop, [prod.name], root=fleet.sandbox.root)
            stopped = True
            write_files(folder, _app_files(app, ns, "prod", "green"))
            daemon.trigger_app(app, trigger="user")  # what `POST /api/v1/apps/{app}/sync` does
            await _until(
                fleet,
                lambda: fleet.store.get_cluster(prod.name).state == "Offline",
                timeout=60,
                what="the stopped cluster to show Offline",
            )
            shown = await asyncio.to_thread(cli, "cluster", "list", "-o", "json")
            assert shown.exit_code == 0, shown.output
            record = next(c for c in json.loads(shown.stdout) if c["name"] == prod.name)
            assert record["state"] == "Offline"
            assert record["state_reason"], "Offline says why"
            print(f"\n{prod.name}: Offline ({record['state_reason']})")
            assert reachable() == 0.0
            await _until(
                fleet,
                lambda: any(e.kind == "backoff" for e in fleet.store.list_events(app=app)),
                timeout=30,
                what="the failed sync to be queued again with a backoff",
            )
            info = (await asyncio.to_thread(sb.start, [prod.name], root=fleet.sandbox.root))[0]
            stopped = False
            if info.server != prod.server:
                pytest.fail(
                    f"{prod.name} came back on {info.server}, not {prod.server}: its port was "
                    "taken meanwhile, so the registered kubeconfig is stale (not a daemon bug)"
                )
            # No sync is asked for: the queue's retry brings the cluster back in line.
            await _until(
                fleet,
                lambda: _configmap_data(fleet, prod.name, ns).get("mode") == "green",
                timeout=180,
                what="the change to reach the restarted cluster by itself",
            )
            await _until(
                fleet,
                lambda: (
                    fleet.store.get_cluster(prod.name).state == "Online"
                    and fleet.store.get_deployment(app, prod.name).state == "Ready"
                ),
                timeout=60,
                what="the cluster Online and the app Ready again",
            )
            assert reachable() == 1.0
        finally:
            if stopped:
                await asyncio.to_thread(sb.start, [prod.name], root=fleet.sandbox.root)

"""`appflow serve` as a process: a git push announced by a signed webhook becomes Ready,
and a daemon killed with SIGKILL mid-sync converges after a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import httpx
import pytest
import yaml

from appflow.store import open_store
from tests.e2e.support import serving
from tests.e2e.support import until as _until
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, configmap, deployment
from tests.integration.git.gitservers import GitHttpServer, Origin, serve_http

pytestmark = pytest.mark.cluster


def _docs(*objects: dict[str, object]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def test_signed_github_push_becomes_ready(fleet: Fleet, space: Space, tmp_path: Path) -> None:
    origin = Origin(tmp_path / "srv" / "org" / "edge.git")
    ns, app = space.namespace, space.app("pushed")
    origin.commit(
        {
            "apps/web/appflow.yaml": f"name: {app}\nnamespace: {ns}\n"
            "targets:\n  - name: prod\n    clusterSelector:\n      matchLabels: {env: prod}\n",
            "apps/web/config.yaml": _docs(configmap("settings", ns, {"mode": "blue"})),
            "apps/web/web.yaml": _docs(deployment("web", ns)),
        },
        message="first",
    )
    secret = tmp_path / "hook-secret"
    secret.write_text("s3cret-for-tests")
    with serve_http(GitHttpServer(origin.path.parent.parent)) as git_server:
        url = git_server.url("org/edge.git")
        repo = f"edge-{space.suffix}"
        assert (
            cli("repo", "add", repo, url, "--branch", "main", "--path", "apps/web").exit_code == 0
        )
        assert cli("repo", "set-webhook-secret", repo, "--secret-file", str(secret)).exit_code == 0
        assert cli("sync", app, "--wait").exit_code == 0
        with serving(fleet, tmp_path / "serve.log") as (_, base):
            commit = origin.commit(
                {"apps/web/config.yaml": _docs(configmap("settings", ns, {"mode": "green"}))}
            )
            body = json.dumps(
                {
                    "ref": "refs/heads/main",
                    "after": commit,
                    "repository": {"clone_url": url, "html_url": url},
                }
            ).encode()
            signature = "sha256=" + hmac.new(b"s3cret-for-tests", body, hashlib.sha256).hexdigest()
            sent = time.monotonic()
            response = httpx.post(
                f"{base}/hooks/github",
                content=body,
                headers={
                    "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": "d-1",
                    "X-Hub-Signature-256": signature,
                    "Content-Type": "application/json",
                },
                timeout=5,
            )
            answered = time.monotonic() - sent
            assert response.status_code == 202, response.text
            prod = fleet.sandbox.by_env("prod")
            kube = fleet.sandbox.kube(fleet.cluster_names.index(prod.name))

            def landed() -> bool:
                live = kube.get_sync("v1", "ConfigMap", "settings", ns) or {}
                if (live.get("data") or {}).get("mode") != "green":
                    return False
                store = open_store()
                try:
                    return store.get_deployment(app, prod.name).state == "Ready"
                finally:
                    store.close()

            took = _until(
                landed,
                timeout=60,
                what="the pushed change to be Ready on the prod cluster",
                log=tmp_path / "serve.log",
            )
            print(
                f"\nwebhook answered in {answered * 1000:.1f} ms; webhook -> Ready on {prod.name}: {took:.2f}s"
            )
            dev = fleet.sandbox.kube(fleet.cluster_names.index(fleet.sandbox.by_env("dev").name))
            assert dev.get_sync("v1", "ConfigMap", "settings", ns) is None, (
                "only the targeted cluster"
            )
            forged = httpx.post(
                f"{base}/hooks/github",
                content=body,
                headers={
                    "X-GitHub-Event": "push",
                    "X-Hub-Signature-256": "sha256=" + "0" * 64,
                    "Content-Type": "application/json",
                },
                timeout=5,
            )
            assert forged.status_code == 401


def test_sigkill_mid_sync_converges_after_restart(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app = space.namespace, space.app("killed")
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "appflow.yaml").write_text(f"name: {app}\nnamespace: {ns}\n")
    objects = [configmap(f"cm-{i:03d}", ns, {"i": str(i)}) for i in range(150)]
    objects += [deployment(f"web-{i:02d}", ns) for i in range(20)]
    (folder / "objects.yaml").write_text(_docs(*objects))
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    log = tmp_path / "serve.log"
    with serving(fleet, log) as (process, _):
        store = open_store()
        try:
            _until(
                lambda: any(s.outcome == "running" for s in store.list_syncs(app)),
                timeout=60,
                what="a sync to be running",
                log=log,
            )
        finally:
            store.close()
        process.kill()  # SIGKILL: no chance to finish or to record anything
        process.wait()
    with serving(fleet, log):
        store = open_store()
        try:

            def converged() -> bool:
                deployments = store.list_deployments(app=app)
                return len(deployments) == len(fleet.cluster_names) and all(
                    d.state == "Ready" for d in deployments
                )

            _until(
                converged, timeout=120, what="every cluster to converge after the restart", log=log
            )
            syncs = store.list_syncs(app, limit=100)
            assert any(s.outcome == "interrupted" for s in syncs), [s.outcome for s in syncs]
            assert not any(s.outcome == "running" for s in syncs if s.finished_at is not None)
            events = [e.message for e in store.list_events(app=app)]
            assert any("interrupted" in m for m in events)
        finally:
            store.close()
    for index, _name in enumerate(fleet.cluster_names):
        kube = fleet.sandbox.kube(index)
        configmaps = [
            c
            for c in kube.list_sync("v1", "ConfigMap", namespace=ns)
            if c["metadata"]["name"].startswith("cm-")
        ]
        assert len(configmaps) == 150, "nothing missing and nothing duplicated"
        assert len(kube.list_sync("apps/v1", "Deployment", namespace=ns)) == 20

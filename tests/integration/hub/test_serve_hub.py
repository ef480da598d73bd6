"""`appflow serve --hub`: the same webhooks, API and dashboard over a hub's resources.

A real `serve --hub` process and a controller replica against a private hub; a Git repository
served over file://. A signed push to the repository is answered as standalone answers it,
and the replica that owns the repository takes the pushed commit and syncs the app with it
(recorded as the webhook's). The API and the dashboard read the hub, with API tokens whose
hashes are kept on the hub.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from appflow.model.hub import API_VERSION
from tests.helpers import Sandbox, eventually
from tests.integration.hub.conftest import Hub
from tests.integration.hub.controllers import ROOT, HubFleet

pytestmark = pytest.mark.cluster


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _write_app(repo: Path, greeting: str) -> None:
    app = repo / "apps" / "hooked"
    app.mkdir(parents=True, exist_ok=True)
    (app / "appflow.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "hooked",
                "namespace": "hooked",
                "targets": [{"name": "one", "clusterName": "test-1"}],
            }
        )
    )
    (app / "cm.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "greeting", "namespace": "hooked"},
                "data": {"text": greeting},
            }
        )
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_hub_answers_webhooks_and_serves_the_api_and_dashboard_over_the_hub(
    fleet: HubFleet, sandbox: Sandbox, tmp_path: Path
) -> None:
    repo = tmp_path / "origin"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _write_app(repo, "first")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text("s3cret-for-hooks\n")
    secret_file.chmod(0o600)

    assert fleet.cli("cluster", "add", "--from-sandbox").exit_code == 0
    added = fleet.cli(
        "repo", "add", "gitops", f"file://{repo}", "--branch", "main", "--path", "apps"
    )
    assert added.exit_code == 0, added.output
    assert (
        fleet.cli(
            "repo", "set-webhook-secret", "gitops", "--secret-file", str(secret_file)
        ).exit_code
        == 0
    )
    made = fleet.cli("token", "create", "ci")
    assert made.exit_code == 0, made.output
    token = made.output.split()[0]

    port = _free_port()
    env = dict(fleet.env)
    env.pop("APPFLOW_HUB")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "appflow",
                "serve",
                "--hub",
                str(fleet.hub.kubeconfig),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=out,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        eventually(lambda: _answers(client), timeout=60, what="serve --hub answers")
        replica = fleet.start(extra=("--poll-seconds", "3600"))
        eventually(
            lambda: _ready(fleet, sandbox, "first"),
            timeout=120,
            what="hooked synced at its first commit",
        )
        # Only the webhook moves the repository once the replica that took it has polled it
        # (a commit pushed before that first poll is the poll's).
        eventually(
            lambda: bool(re.search(r"repo gitops (at|moved to) ", replica.log.read_text())),
            timeout=60,
            what="the repository's first poll",
        )

        _write_app(repo, "second")
        _git(repo, "commit", "-q", "-am", "second")
        head = _git(repo, "rev-parse", "HEAD")
        body = json.dumps({"repository": "gitops", "branch": "main", "commit": head}).encode()
        stamp = str(int(time.time()))
        mac = hmac.new(
            b"s3cret-for-hooks", stamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Appflow-Timestamp": stamp,
            "X-Appflow-Delivery": str(uuid.uuid4()),
            "X-Appflow-Signature": f"sha256={mac}",
        }
        answer = client.post("/hooks/generic", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"result": "queued", "reason": None, "repos": ["gitops"]}
        forged = client.post(
            "/hooks/generic",
            content=body,
            headers={
                **headers,
                "X-Appflow-Delivery": "other",
                "X-Appflow-Signature": "sha256=" + "0" * 64,
            },
        )
        assert forged.status_code == 401

        eventually(
            lambda: _ready(fleet, sandbox, "second"),
            timeout=120,
            what="hooked synced at the pushed commit",
        )
        kube = fleet.kube()
        try:
            stored = kube.get_sync(API_VERSION, "GitRepo", "gitops", fleet.workspace) or {}
        finally:
            kube.close()
        repo_status = stored.get("status") or {}
        assert repo_status.get("commit") == head
        (deployment,) = fleet.deployments("hooked")
        triggers = [e["trigger"] for e in deployment["status"]["history"] if e.get("revision") == 2]
        assert "webhook" in triggers

        auth = {"Authorization": f"Bearer {token}"}
        apps = client.get("/api/v1/apps", headers=auth)
        assert apps.status_code == 200, apps.text
        assert [a["name"] for a in apps.json()] == ["hooked"]
        status = client.get("/api/v1/status", headers=auth).json()
        assert status["apps"][0]["deployments"]["test-1"]["state"] == "Ready"
        assert (
            client.get("/api/v1/apps", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )

        page = client.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
        assert nonce, page.text
        signed = client.post(
            "/ui/login", data={"token": token, "nonce": nonce.group(1), "next": "/ui/"}
        )
        assert signed.status_code == 303, signed.text
        overview = client.get("/ui/")
        assert overview.status_code == 200
        assert "hooked" in overview.text
        assert "test-1" in overview.text
        app_page = client.get("/ui/apps/hooked")
        assert app_page.status_code == 200
        assert "greeting" in app_page.text  # its object tree, from the inventory on the hub
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=30)
        fleet.cli("app", "delete", "hooked")


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def _ready(fleet: HubFleet, sandbox: Sandbox, greeting: str) -> bool:
    """The app's Deployment is Ready and test-1 holds GREETING."""
    found = fleet.deployments("hooked")
    if not found or (found[0].get("status") or {}).get("state") != "Ready":
        return False
    kube = sandbox.kube(0)
    try:
        live = kube.get_sync("v1", "ConfigMap", "greeting", "hooked")
    finally:
        kube.close()
    return (live or {}).get("data", {}).get("text") == greeting


def test_two_servers_take_one_delivery_once_and_policies_live_in_the_workspace(
    hub_crds: Hub, hub_namespace: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from appflow.errors import NotFoundError
    from appflow.hub.store import HubStore
    from appflow.model.policy import Policy

    stores = [HubStore(hub_crds.kube(), workspace=hub_namespace, writer=f"s{i}") for i in (0, 1)]
    try:
        now = time.time()
        # The same delivery reaching two serve --hub replicas at once: one of them takes it.
        with ThreadPoolExecutor(2) as pool:
            replays = list(
                pool.map(
                    lambda s: s.remember_deliveries(["github:abc"], now=now, ttl_seconds=300),
                    stores,
                )
            )
        assert sorted(replays) == [False, True]
        assert (
            stores[0].remember_deliveries(["github:abc"], now=now + 301, ttl_seconds=300) is False
        )
        policy = Policy(scope="cluster", name="berlin-1", namespaces=("shop-*",))
        other = Policy(scope="repo", name="retail", cluster_scoped=False)
        stores[0].put_policy(policy)
        stores[1].put_policy(other)
        assert [(p.scope, p.name) for p in stores[1].list_policies()] == [
            ("cluster", "berlin-1"),
            ("repo", "retail"),
        ]
        assert stores[1].get_policy("cluster", "berlin-1").namespaces == ("shop-*",)
        stores[1].delete_policy("cluster", "berlin-1")
        with pytest.raises(NotFoundError):
            stores[0].get_policy("cluster", "berlin-1")
        assert stores[0].get_policy("repo", "retail").cluster_scoped is False
    finally:
        for s in stores:
            s.close()


def test_every_server_of_a_workspace_signs_dashboard_sessions_with_one_key(
    hub_crds: Hub, hub_namespace: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from appflow.errors import StoreError
    from appflow.hub.store import HubStore

    # Replicas of serve --hub behind one Service: a browser signed in on one pod must stay
    # signed in when the next request reaches another, also when both start at once.
    stores = [HubStore(hub_crds.kube(), workspace=hub_namespace, writer=f"s{i}") for i in (0, 1)]
    try:
        with ThreadPoolExecutor(2) as pool:
            keys = list(pool.map(lambda s: s.session_key(), stores))
        assert len(keys[0]) == 32
        assert keys[0] == keys[1]
        assert stores[1].session_key() == keys[0]
        # A key emptied by hand is refused, never used to sign sessions.
        kube = hub_crds.kube()
        try:
            kube.patch_sync(
                "v1", "Secret", "appflow-ui-session", hub_namespace, {"data": {"key": ""}}
            )
        finally:
            kube.close()
        with pytest.raises(StoreError, match="no usable session key"):
            stores[0].session_key()
    finally:
        for s in stores:
            s.close()

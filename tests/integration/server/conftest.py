"""A real uvicorn server on 127.0.0.1 over a real store, with a recording Triggers.

The daemon is not part of these tests: ``RecordingTriggers`` stands at the seam the
server was built with (``appflow.server.triggers.Triggers``) and records what it was
asked to do, which is what "nothing fetched" means at the HTTP boundary.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from appflow.model.inventory import InventoryEntry
from appflow.model.objects import ObjectRef
from appflow.model.records import (
    AppRecord,
    ClusterRecord,
    DeploymentRecord,
    FailingObject,
    RepoRecord,
    SyncTrigger,
)
from appflow.model.tokens import hash_token, new_token
from appflow.server.app import create_app
from appflow.store import SqliteStore, open_store
from tests.integration.server.support import SECRET

KUBECONFIG = "/secret/place/kubeconfigs/berlin-1.yaml"


@dataclass
class RecordingTriggers:
    """Records trigger calls; ready() as set by the test."""

    repos: list[tuple[str, str, str | None]] = field(default_factory=list)
    apps: list[tuple[str, str, str | None]] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    """Who asked for each of APPS (an API token's name)."""
    is_ready: bool = True
    depth: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def trigger_repo(self, repo: str, *, trigger: SyncTrigger, commit: str | None = None) -> None:
        with self._lock:
            self.repos.append((repo, trigger, commit))

    def trigger_app(
        self, app: str, *, trigger: SyncTrigger, cluster: str | None = None, actor: str = ""
    ) -> None:
        with self._lock:
            self.apps.append((app, trigger, cluster))
            self.actors.append(actor)

    def queue_depth(self) -> int:
        return self.depth

    def ready(self) -> bool:
        return self.is_ready


class ServerThread:
    """uvicorn serving APP on a free loopback port, in a background thread."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()


@dataclass
class Served:
    url: str
    store: SqliteStore
    triggers: RecordingTriggers
    token: str
    secret_file: Path
    app: FastAPI

    def client(self, *, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def api(self) -> httpx.Client:
        return self.client(token=self.token)


def seed(store: SqliteStore, secret_file: Path) -> None:
    """Repositories of every provider, each registered in another URL spelling."""
    ref = f"file:{secret_file}"
    for repo in (
        RepoRecord(name="retail", url="git@github.com:acme/retail.git", ref="main"),
        RepoRecord(name="lab", url="https://gitlab.example.com/edge/lab", ref="main"),
        RepoRecord(name="site", url="https://gitea.example.com/org/site.git", ref="HEAD"),
        RepoRecord(name="kiosk", url="git@bitbucket.org:team/kiosk.git", ref="main"),
        RepoRecord(name="tools", url="ssh://git@git.example.com:2222/ops/tools.git", ref="main"),
    ):
        store.put_repo(RepoRecord(**{**repo.__dict__, "webhook_secret_ref": ref}))
    store.put_repo(RepoRecord(name="unguarded", url="https://github.com/acme/unguarded"))
    store.put_cluster(
        ClusterRecord(
            name="berlin-1",
            kind="eve-k",
            labels={"site": "berlin", "env": "prod"},
            kubeconfig_path=KUBECONFIG,
            state="Online",
        )
    )
    store.put_cluster(ClusterRecord(name="lab-1", kind="imported", labels={"env": "dev"}))
    store.put_app(AppRecord(name="web", source="git", repo="retail", path="apps/web"))
    store.put_deployment(
        DeploymentRecord(
            app="web",
            cluster="berlin-1",
            applied_revision=None,
            state="ErrApplied",
            message="1 object failed",
            failing=(FailingObject(object="Deployment/shop/web", message="image pull"),),
            inventory=(InventoryEntry(ObjectRef("apps", "Deployment", "shop", "web"), "apps/v1"),),
        )
    )
    store.add_event(kind="sync", message="synced web", app="web", cluster="berlin-1")
    store.add_event(kind="drift", message="drifted", app="web", cluster="berlin-1")


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """The server over a seeded store at APPFLOW_HOME (so the CLI sees the same store)."""
    home = tmp_path / "appflow-home"
    monkeypatch.setenv("APPFLOW_HOME", str(home))
    monkeypatch.setenv("APPFLOW_CACHE_DIR", str(tmp_path / "cache"))
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    store = open_store()
    seed(store, secret_file)
    token = new_token()
    store.add_token("tests", token_hash=hash_token(token))
    triggers = RecordingTriggers()
    app = create_app(store=store, triggers=triggers, max_body_bytes=64 * 1024)
    try:
        with ServerThread(app) as server:
            yield Served(
                url=server.url,
                store=store,
                triggers=triggers,
                token=token,
                secret_file=secret_file,
                app=app,
            )
    finally:
        store.close()

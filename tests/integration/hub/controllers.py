"""Hub controller replicas as processes for tests, and a workspace of their own per test.

``HubFleet`` is one test's hub side: a fresh workspace (the namespace of its apps and clusters)
and a fresh namespace for its replicas' Leases, the environment the CLI needs to work on that
hub (``APPFLOW_HUB``, ``APPFLOW_HUB_WORKSPACE``, a data folder of its own), and the replicas,
each a real ``appflow controller`` process with its own data and cache folders. Teardown stops
the replicas and deletes what the test made on the hub, including its clusters' namespaces.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import Result

from appflow.kube.client import KubeCluster
from appflow.kube.lease import ANNOTATION_VIEW
from appflow.model.hub import API_VERSION, LABEL_WORKSPACE
from tests.helpers import eventually, run_cli
from tests.integration.hub.conftest import Hub

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    """A TCP port nobody listens on now (for a replica's --listen)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    identity: str
    process: subprocess.Popen[bytes]
    log: Path

    def held(self, kind: str = "appflow") -> set[str]:
        """The AppFlows (or GitRepos: KIND gitrepo) this replica holds now, from its log."""
        event = re.compile(rf"(took|released) {kind}/\S+/(\S+)")
        held: set[str] = set()
        for line in self.log.read_text(errors="replace").splitlines():
            if m := event.search(line):
                (held.add if m.group(1) == "took" else held.discard)(m.group(2))
        return held

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> float:
        """SIGKILL; the time it was sent."""
        at = time.time()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        return at


@dataclass
class HubFleet:
    hub: Hub
    workspace: str
    leases: str
    home: Path
    env: dict[str, str]
    replicas: list[Replica] = field(default_factory=list)

    def cli(self, *args: str) -> Result:
        """`appflow ARGS` against this hub, in-process."""
        return run_cli(*args, env=self.env)

    def start(self, *, lease_duration: int = 6, extra: tuple[str, ...] = ()) -> Replica:
        identity = f"r{len(self.replicas)}-{secrets.token_hex(3)}"
        folder = self.home / identity
        folder.mkdir(parents=True)
        env = {
            **os.environ,
            "APPFLOW_HOME": str(folder / "data"),
            "APPFLOW_CACHE_DIR": str(folder / "cache"),
        }
        env.pop("APPFLOW_HUB", None)
        log = folder / "controller.log"
        args = [
            sys.executable,
            "-m",
            "appflow",
            "controller",
            "--kubeconfig",
            str(self.hub.kubeconfig),
            "--namespace",
            self.leases,
            "--workspace",
            self.workspace,
            "--lease-duration",
            str(lease_duration),
            "--identity",
            identity,
            "--workers",
            "4",
            *extra,
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(args, cwd=ROOT, env=env, stderr=out, stdout=out)
        replica = Replica(identity=identity, process=process, log=log)
        self.replicas.append(replica)
        return replica

    def stop(self) -> None:
        for r in self.replicas:
            if r.alive():
                r.process.terminate()
        for r in self.replicas:
            try:
                r.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                r.process.kill()
                r.process.wait(timeout=10)

    def ask_sync(self, names: list[str]) -> dict[str, str]:
        """Ask for a sync of each app (its local folder uploaded with it), waiting for none;
        the request ids."""
        import asyncio

        from appflow.hub.backend import open_hub_engine, parse_hub

        engine = open_hub_engine(parse_hub(str(self.hub.kubeconfig), workspace=self.workspace))

        async def ask() -> dict[str, str]:
            ids = {}
            for name in names:
                app = await asyncio.to_thread(engine.hub.get_app, name)
                spec = {}
                if app.source == "local":
                    spec["local"] = await asyncio.to_thread(engine.hub.local_spec, app)
                ids[name] = await engine.submit(name, {"trigger": "user"}, spec=spec)
            return ids

        try:
            return asyncio.run(ask())
        finally:
            engine.close()

    def create_appflows(self, names: list[str], spec: dict[str, Any]) -> None:
        """AppFlows NAMES with SPEC, written straight to the hub (as kubectl would)."""
        kube = self.kube()
        try:
            for name in names:
                kube.create_sync(
                    {
                        "apiVersion": API_VERSION,
                        "kind": "AppFlow",
                        "metadata": {"name": name, "namespace": self.workspace},
                        "spec": spec,
                    }
                )
        finally:
            kube.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- {r.identity}\n{r.log.read_text(errors='replace')[-4000:]}" for r in self.replicas
        )

    def kube(self) -> KubeCluster:
        return self.hub.kube()

    def app(self, name: str) -> dict[str, Any]:
        kube = self.kube()
        try:
            return kube.get_sync(API_VERSION, "AppFlow", name, self.workspace) or {}
        finally:
            kube.close()

    def deployments(self, app: str) -> list[dict[str, Any]]:
        kube = self.kube()
        try:
            return kube.list_sync(
                API_VERSION,
                "AppFlowDeployment",
                label_selector=f"{LABEL_WORKSPACE}={self.workspace},appflow.dev/app={app}",
            )
        finally:
            kube.close()

    def wait_owned(self, names: list[str], *, timeout: float = 90) -> None:
        def agreed(live: set[str]) -> bool:
            """Every live replica's Lease publishes a view of exactly the live replicas (the last
            to join is a member: nothing moves any more; a share may be empty)."""
            kube = self.kube()
            try:
                leases = kube.list_sync("coordination.k8s.io/v1", "Lease", namespace=self.leases)
            finally:
                kube.close()
            views = {}
            for lease in leases:
                raw = (lease["metadata"].get("annotations") or {}).get(ANNOTATION_VIEW)
                view = json.loads(raw or "null") or {}
                views[(lease.get("spec") or {}).get("holderIdentity")] = set(
                    view.get("members", ())
                )
            return all(views.get(me) == live for me in live)

        def shared() -> bool:
            live = [r for r in self.replicas if r.alive()]
            members = {r.identity for r in live}
            # The views first, the logs after: a replica logs what it releases before it
            # publishes the view that takes it away, so logs read after an agreed view show
            # every release of it (read the other way round, a log from before a release
            # and a view from after it looked settled while apps were changing hands).
            if not agreed(members):
                return False
            held = [r.held() for r in live]
            union = set().union(*held) if held else set()
            once = union >= set(names) and sum(len(h) for h in held) == len(union)
            return once and agreed(members)

        eventually(shared, timeout=timeout, what=f"{len(names)} AppFlows held once each")


@contextmanager
def hub_fleet(hub: Hub, tmp_path: Path, *, sandbox_root: Path | None = None) -> Iterator[HubFleet]:
    """A workspace and a Lease namespace of their own on HUB, for one test."""
    workspace = f"w-{secrets.token_hex(4)}"
    leases = f"l-{secrets.token_hex(4)}"
    kube = hub.kube()
    for name in (workspace, leases):
        kube.apply_sync({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    home = tmp_path / "hub-fleet"
    env = {
        "APPFLOW_HUB": str(hub.kubeconfig),
        "APPFLOW_HUB_WORKSPACE": workspace,
        "APPFLOW_HOME": str(home / "cli"),
        "APPFLOW_CACHE_DIR": str(home / "cli-cache"),
    }
    if sandbox_root is not None:
        env["APPFLOW_SANDBOX_DIR"] = str(sandbox_root)
    fleet = HubFleet(hub=hub, workspace=workspace, leases=leases, home=home, env=env)
    try:
        yield fleet
    finally:
        fleet.stop()
        namespaces = kube.list_sync(
            "v1", "Namespace", label_selector=f"{LABEL_WORKSPACE}={workspace}"
        )
        for name in [workspace, leases, *(n["metadata"]["name"] for n in namespaces)]:
            kube.delete_sync("v1", "Namespace", name)
        kube.close()

"""Fixtures for pull-agent tests: a hub sandbox cluster and three edge sandbox clusters, the
hub's agent API and controller as processes, and agents as processes on this machine.

The clusters are private to the session (pytest's tmp folder), never the shared sandbox:
these tests stop the hub and install CRDs. APPFLOW_TEST_AGENT_DIR keeps them between runs
(local iteration). Each test gets its own workspace on the hub, and the edges' agent state is
wiped before each test, so an edge registers afresh every time.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from appflow import sandbox as sb
from appflow.agent.edge import AGENT_NAMESPACE, LABEL_PART
from appflow.kube.client import Connection, KubeCluster
from appflow.model.hub import API_VERSION, ENV_WORKSPACE
from tests.helpers import apply_hub_crds, eventually
from tests.integration.agent.publish import deployment

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Fleet:
    root: Path
    hub: sb.SandboxInfo
    edges: tuple[sb.SandboxInfo, ...]

    def hub_kube(self, *, timeout: float = 10.0) -> KubeCluster:
        return KubeCluster(Connection(name="hub", kubeconfig=self.hub.kubeconfig, timeout=timeout))

    def edge_kube(self, index: int) -> KubeCluster:
        info = self.edges[index]
        return KubeCluster(Connection(name=info.name, kubeconfig=info.kubeconfig))


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    keep = os.environ.get("APPFLOW_TEST_AGENT_DIR")
    root = Path(keep) if keep else tmp_path_factory.mktemp("agents")
    (hub,) = sb.up(clusters=1, prefix="hub", root=root, timeout=240)
    edges = sb.up(clusters=3, prefix="edge", root=root, timeout=240)
    kube = KubeCluster(Connection(name="hub", kubeconfig=hub.kubeconfig))
    try:
        apply_hub_crds(kube)
    finally:
        kube.close()
    try:
        yield Fleet(root=root, hub=hub, edges=tuple(edges))
    finally:
        if not keep:
            report = sb.down(root=root)
            assert not report.problems, report.problems


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    """An appflow process of the test, its log, and how to stop it."""

    args: list[str]
    log: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        out = self.log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "appflow", *self.args],
            cwd=ROOT,
            stdout=out,
            stderr=out,
            env=self.env,
        )
        out.close()
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 20.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_exit(self, timeout: float) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)


@dataclass
class Hub:
    """One test's workspace on the hub, with its agent API (and controller, when asked)."""

    fleet: Fleet
    workspace: str
    tmp: Path
    env: dict[str, str]
    url: str = ""
    pin: str = ""
    processes: list[Process] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        """A copy of the hub's kubeconfig: `sandbox stop` stops every process whose command line
        names a file in the cluster's folder, and the hub's processes must outlive its stop."""
        copy = self.tmp / "hub.kubeconfig"
        if not copy.exists():
            shutil.copyfile(self.fleet.hub.kubeconfig, copy)
        return copy

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "appflow", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(f"appflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def hub_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """appflow --hub HUB ARGS... on this test's workspace (APPFLOW_HUB_WORKSPACE)."""
        return self.cli("--hub", str(self.kubeconfig), *args, check=check)

    def process(self, name: str, *args: str) -> Process:
        proc = Process(args=list(args), log=self.tmp / f"{name}.log", env=self.env).start()
        self.processes.append(proc)
        return proc

    def start_agent_api(self) -> None:
        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        api = self.process(
            "agent-api",
            "hub",
            "agent-api",
            "--kubeconfig",
            str(self.kubeconfig),
            "--workspace",
            self.workspace,
            "--listen",
            f"127.0.0.1:{port}",
            "--advertise-url",
            self.url,
        )

        def up() -> bool:
            assert api.alive(), api.text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                return True
            return False

        eventually(up, timeout=180, what="the agent API to listen")
        kube = self.fleet.hub_kube()
        try:
            cm = kube.get_sync("v1", "ConfigMap", "appflow-agent-api", "appflow-system") or {}
            self.pin = str((cm.get("data") or {}).get("caPin", ""))
        finally:
            kube.close()

    def start_controller(self, *, lease_duration: int = 6, debug: bool = False) -> Process:
        return self.process(
            f"controller-{len(self.processes)}",
            *(["--debug"] if debug else []),
            "controller",
            "--kubeconfig",
            str(self.kubeconfig),
            "--workspace",
            self.workspace,
            # Leases of this test's replicas only: another test's stopped ones hold no share.
            "--namespace",
            self.workspace,
            "--lease-duration",
            str(lease_duration),
        )

    def install(
        self,
        edge: int,
        token: str,
        *,
        pin: str | None = None,
        check: bool = True,
        deploy: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        return self.cli(
            "agent",
            "install",
            "--token",
            token,
            "--hub-url",
            self.url,
            "--hub-ca-pin",
            pin or self.pin,
            "--kubeconfig",
            str(self.fleet.edges[edge].kubeconfig),
            "--deploy" if deploy else "--no-deploy",
            check=check,
        )

    def start_agent(
        self,
        edge: int,
        *,
        heartbeat: float = 2.0,
        drift: float = 2.0,
        backoff_max: float = 4.0,
        debug: bool = False,
    ) -> Process:
        return self.process(
            f"agent-{edge}-{len(self.processes)}",
            *(["--debug"] if debug else []),
            "agent",
            "run",
            "--kubeconfig",
            str(self.fleet.edges[edge].kubeconfig),
            "--heartbeat",
            str(heartbeat),
            "--drift-interval",
            str(drift),
            "--backoff-base",
            "0.5",
            "--backoff-max",
            str(backoff_max),
        )

    def cluster(self, name: str) -> dict[str, Any] | None:
        kube = self.fleet.hub_kube()
        try:
            return kube.get_sync(API_VERSION, "Cluster", name, self.workspace)
        finally:
            kube.close()

    def clusters(self) -> list[dict[str, Any]]:
        kube = self.fleet.hub_kube()
        try:
            return kube.list_sync(API_VERSION, "Cluster", namespace=self.workspace)
        finally:
            kube.close()


TOKEN = re.compile(r"(aft_[0-9a-f]{10}\.[A-Za-z0-9_-]{32})")


def token_in(output: str) -> str:
    found = TOKEN.search(output)
    assert found, f"no token in:\n{output}"
    return found.group(1)


def wipe_edge(kube: KubeCluster) -> None:
    """Forget any agent on this edge (state Secrets of earlier tests)."""
    for secret in kube.list_sync(
        "v1", "Secret", namespace=AGENT_NAMESPACE, label_selector=LABEL_PART
    ):
        kube.delete_sync("v1", "Secret", str(secret["metadata"]["name"]), AGENT_NAMESPACE)


@pytest.fixture
def hub(fleet: Fleet, tmp_path: Path) -> Iterator[Hub]:
    workspace = f"w-{secrets.token_hex(3)}"
    kube = fleet.hub_kube()
    kube.apply_sync({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": workspace}})
    kube.apply_sync(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "appflow-system"}}
    )
    for index in range(len(fleet.edges)):
        edge = fleet.edge_kube(index)
        try:
            wipe_edge(edge)
        finally:
            edge.close()
    env = {
        **os.environ,
        "APPFLOW_HOME": str(tmp_path / "home"),
        "APPFLOW_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("APPFLOW_HUB", None)
    env[ENV_WORKSPACE] = workspace
    state = Hub(fleet=fleet, workspace=workspace, tmp=tmp_path, env=env)
    try:
        yield state
    finally:
        for proc in reversed(state.processes):
            proc.stop()
        for namespace in kube.list_sync(
            "v1", "Namespace", label_selector=f"appflow.dev/workspace={workspace}"
        ):
            kube.delete_sync("v1", "Namespace", str(namespace["metadata"]["name"]))
        kube.delete_sync("v1", "Namespace", workspace)
        kube.close()


def wait_for(check: Any, *, timeout: float, what: str) -> Any:
    """Poll CHECK until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


def register_fleet(hub: Hub, *, heartbeat: float = 2.0, debug: bool = False) -> list[str]:
    """Register the three edges (the first with a per-cluster token, the other two with a
    shared batch token), start their agents; the clusters' names, in edge order."""
    hub.start_agent_api()
    first = token_in(
        hub.hub_cli("cluster", "add", "site-1", "--mode", "pull", "-l", "env=dev").stdout
    )
    batch = token_in(
        hub.hub_cli("cluster", "token", "create", "--max-uses", "2", "-l", "env=prod").stdout
    )
    hub.install(0, first)
    hub.install(1, batch)
    hub.install(2, batch)
    for edge in range(3):
        hub.start_agent(edge, heartbeat=heartbeat, debug=debug)
    names: list[str] = []
    for edge in range(3):
        names.append(
            wait_for(
                lambda e=edge: registered_name(hub, e), timeout=240, what=f"edge {edge} to register"
            )
        )
    return names


def registration(hub: Hub, edge: int) -> dict[str, Any]:
    """What the agent on EDGE keeps of its registration (empty until it registered)."""
    import base64
    import json

    from appflow.agent.edge import CONFIG_SECRET

    kube = hub.fleet.edge_kube(edge)
    try:
        secret = kube.get_sync("v1", "Secret", CONFIG_SECRET, AGENT_NAMESPACE) or {}
    finally:
        kube.close()
    raw = (secret.get("data") or {}).get("registration.json")
    return dict(json.loads(base64.b64decode(raw))) if raw else {}


def registered_name(hub: Hub, edge: int) -> str:
    return str(registration(hub, edge).get("cluster", ""))


def _part_of(hub: Hub, cluster: str, app: str, part: str) -> dict[str, Any]:
    """PART ("spec" or "status") of APP's AppFlowDeployment for CLUSTER, as the hub holds it."""
    kube = hub.fleet.hub_kube()
    try:
        found = deployment(kube, workspace=hub.workspace, cluster=cluster, app=app)
        return dict(found.get(part) or {})
    finally:
        kube.close()


def spec_of(hub: Hub, cluster: str, app: str) -> dict[str, Any]:
    return _part_of(hub, cluster, app, "spec")


def status_of(hub: Hub, cluster: str, app: str) -> dict[str, Any]:
    return _part_of(hub, cluster, app, "status")

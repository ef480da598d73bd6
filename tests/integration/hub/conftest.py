"""Fixtures for hub tests: a sandbox cluster playing the hub, with appflow's CRDs.

The hub is a cluster of its own (prefix ``hub``), started for the session in pytest's tmp
folder and removed afterwards, because hub tests install cluster-wide objects (CRDs) and
``hub uninstall`` removes them again, which must never touch the shared sandbox.
APPFLOW_TEST_HUB_DIR keeps a hub between runs (for local iteration), as
APPFLOW_TEST_SANDBOX_DIR does for the fleet.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from appflow import sandbox as sb
from appflow.kube.client import Connection, KubeCluster
from tests.helpers import Sandbox, apply_hub_crds, built_tool, fresh_namespace
from tests.integration.catalog.conftest import helm_env  # noqa: F401 (a fixture)

if TYPE_CHECKING:
    from tests.integration.hub.controllers import HubFleet


@dataclass(frozen=True)
class Hub:
    """The hub cluster: its kubeconfig and a way to run kubectl against it."""

    name: str
    kubeconfig: Path

    def kube(self, *, timeout: float = 10.0) -> KubeCluster:
        return KubeCluster(Connection(name=self.name, kubeconfig=self.kubeconfig, timeout=timeout))

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(built_tool("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    keep = os.environ.get("APPFLOW_TEST_HUB_DIR")
    root = Path(keep) if keep else tmp_path_factory.mktemp("hub")
    (info,) = sb.up(clusters=1, prefix="hub", root=root, timeout=240)
    try:
        yield Hub(name=info.name, kubeconfig=info.kubeconfig)
    finally:
        if not keep:
            report = sb.down(root=root)
            assert not report.problems, report.problems


@pytest.fixture
def hub_crds(hub: Hub) -> Hub:
    """The hub with appflow's CRDs applied (as generated now) and established.

    Per test: applying unchanged CRDs is cheap, and the uninstall test removes them."""
    kube = hub.kube()
    try:
        apply_hub_crds(kube)
    finally:
        kube.close()
    return hub


@pytest.fixture
def hub_namespace(hub: Hub) -> Iterator[str]:
    """A fresh namespace on the hub, deleted after the test."""
    with fresh_namespace(hub.kube(), prefix="h") as name:
        yield name


@pytest.fixture
def fleet(hub_crds: Hub, sandbox: Sandbox, tmp_path: Path) -> Iterator[HubFleet]:
    """A workspace of the test's own on the hub, its replicas started by the test; the push
    clusters are the sandbox's. The replicas' logs are printed at teardown (pytest shows them
    when the test failed)."""
    from tests.integration.hub.controllers import hub_fleet  # it imports this module

    with hub_fleet(hub_crds, tmp_path, sandbox_root=sandbox.root) as f:
        try:
            yield f
        finally:
            print(f.logs())

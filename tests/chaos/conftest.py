"""The chaos suite's own sandbox: it kills API servers, so it never uses a shared one.

APPFLOW_TEST_SANDBOX_DIR is ignored here on purpose. APPFLOW_CHAOS_SANDBOX_DIR keeps a
private chaos sandbox between runs (local iteration); without it the clusters are started
in pytest's temporary folder and removed afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appflow import sandbox as sb
from appflow.store import open_store
from tests.helpers import register_clusters

CLUSTERS = 2
PREFIX = "chaos"


@dataclass(frozen=True)
class ChaosFleet:
    """Private sandbox clusters registered in an appflow home of their own."""

    root: Path
    home: Path
    clusters: tuple[sb.SandboxInfo, ...]

    def kubeconfig(self, cluster: str) -> Path:
        return next(c.kubeconfig for c in self.clusters if c.name == cluster)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.clusters)


@pytest.fixture(scope="module")
def chaos_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    keep = os.environ.get("APPFLOW_CHAOS_SANDBOX_DIR")
    root = Path(keep) if keep else tmp_path_factory.mktemp("chaos-sandbox")
    sb.up(clusters=CLUSTERS, prefix=PREFIX, nodes=1, root=root, timeout=240)
    try:
        yield root
    finally:
        if not keep:
            report = sb.down(root=root)
            assert not report.problems, report.problems


@pytest.fixture
def chaos_fleet(chaos_sandbox: Path, appflow_home: Path) -> ChaosFleet:
    # A cluster killed by an earlier test comes back before this one starts.
    infos = sb.up(clusters=CLUSTERS, prefix=PREFIX, nodes=1, root=chaos_sandbox, timeout=240)
    store = open_store()
    try:
        register_clusters(store, infos)
    finally:
        store.close()
    return ChaosFleet(root=chaos_sandbox, home=appflow_home, clusters=tuple(infos))

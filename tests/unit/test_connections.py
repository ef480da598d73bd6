"""The engine's cluster clients: kept while a cluster's kubeconfig stays, replaced (the old
one closed) when it changes, also when new credentials are written at the same path."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from appflow.engine.connections import Connections
from appflow.engine.options import EngineOptions
from appflow.model.records import ClusterRecord


def _kubeconfig(path: Path, server: str) -> None:
    # From the kubeconfig format's documented fields; nothing is contacted.
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "edge", "cluster": {"server": server}}],
                "users": [{"name": "edge", "user": {"token": "t"}}],
                "contexts": [{"name": "edge", "context": {"cluster": "edge", "user": "edge"}}],
                "current-context": "edge",
            }
        )
    )


def test_a_kubeconfig_rewritten_at_the_same_path_gets_a_new_client(tmp_path: Path) -> None:
    path = tmp_path / "edge.kubeconfig"
    _kubeconfig(path, "https://127.0.0.1:6443")
    record = ClusterRecord(name="edge", kind="imported", kubeconfig_path=str(path))
    connections = Connections(EngineOptions())
    first = connections.kube(record)
    assert connections.kube(record) is first

    _kubeconfig(path, "https://127.0.0.2:16443")
    # A rewrite within the file system's time granularity still differs in size; make
    # the modification time differ too, as a later `cluster add` would.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = connections.kube(record)

    assert second is not first
    assert second.server == "https://127.0.0.2:16443"
    assert first._pool._shutdown  # the old client's threads are stopped
    connections.close()
    assert second._pool._shutdown

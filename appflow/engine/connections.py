"""Connections to the fleet's clusters, and what each serves.

One KubeCluster per registered cluster, kept for the life of the engine (its HTTP
connections and discovery cache are what make a re-sync cheap), replaced, and the old
one closed, when the cluster's kubeconfig (its path or the file itself: a cluster removed
and added again under its name gets new credentials at the same path) or context changes. Capabilities (version and
API versions, what Helm renders against) are read once per cluster and forgotten when
a sync applied a CustomResourceDefinition there: the cluster then serves more. Steady-state
plans (``PlanMemo``) are kept per client, and forgotten with its capabilities.
"""

from __future__ import annotations

import os
from pathlib import Path

from appflow.engine.options import EngineOptions
from appflow.engine.stages.prepare import PlanMemo
from appflow.errors import ConfigError, Where
from appflow.kube.client import Connection, KubeCluster, WriteGuard
from appflow.model.capabilities import Capabilities
from appflow.model.records import ClusterRecord


class Connections:
    """KubeClusters and capabilities by cluster name."""

    def __init__(self, options: EngineOptions, *, write_guard: WriteGuard | None = None) -> None:
        self.options = options
        self.write_guard = write_guard
        """Given to every cluster's client: a hub controller replica writes only while it
        holds its membership Lease (see ``KubeCluster``)."""
        self._kubes: dict[str, KubeCluster] = {}
        self._identities: dict[str, _Identity] = {}
        self._capabilities: dict[str, Capabilities] = {}
        self.plans = PlanMemo()
        """This process's steady-state plans (see ``appflow.engine.stages.prepare``)."""

    def kube(self, cluster: ClusterRecord) -> KubeCluster:
        """The client for CLUSTER (a new one, the old one closed, when its credentials
        changed)."""
        current = self._kubes.get(cluster.name)
        identity = _identity(cluster)
        if current is not None and self._identities.get(cluster.name) == identity:
            return current
        if not cluster.kubeconfig_path:
            raise ConfigError(
                "has no kubeconfig", where=Where(cluster=cluster.name), hint="appflow cluster add"
            )
        if current is not None:
            current.close()
            del self._kubes[cluster.name]
            self._capabilities.pop(cluster.name, None)
            self.plans.forget(cluster.name)
        fresh = KubeCluster(
            Connection(
                name=cluster.name,
                kubeconfig=Path(cluster.kubeconfig_path),
                context=cluster.context,
                timeout=self.options.request_timeout,
                concurrency=self.options.requests_per_cluster,
            ),
            write_guard=self.write_guard,
        )
        self._kubes[cluster.name] = fresh
        self._identities[cluster.name] = identity
        return fresh

    async def capabilities(self, cluster: ClusterRecord) -> Capabilities:
        known = self._capabilities.get(cluster.name)
        if known is None:
            known = await self.kube(cluster).capabilities()
            self._capabilities[cluster.name] = known
        return known

    def served_kinds_changed(self, cluster: str) -> None:
        """CLUSTER serves other kinds now (a CRD was applied): read its capabilities again."""
        self._capabilities.pop(cluster, None)
        self.plans.forget(cluster)

    def close(self) -> None:
        for kube in self._kubes.values():
            kube.close()
        self._kubes.clear()
        self._identities.clear()
        self._capabilities.clear()
        self.plans = PlanMemo()


_Identity = tuple[str | None, str | None, int, int]
"""A client's kubeconfig path and context, and the file's modification time and size."""


def _identity(cluster: ClusterRecord) -> _Identity:
    # One stat per sync and cluster: a rewritten kubeconfig gets a new client.
    try:
        stat = os.stat(cluster.kubeconfig_path) if cluster.kubeconfig_path else None
    except OSError:
        stat = None
    return (
        cluster.kubeconfig_path,
        cluster.context,
        stat.st_mtime_ns if stat else -1,
        stat.st_size if stat else -1,
    )

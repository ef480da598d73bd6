"""Connections to the fleet's clusters, and what each serves.

One KubeCluster per registered cluster, kept for the life of the engine (its HTTP
connections and discovery cache are what make a re-sync cheap), replaced, and the old
one closed, when the cluster's kubeconfig or context changes. Capabilities (version and
API versions, what Helm renders against) are read once per cluster and forgotten when
a sync applied a CustomResourceDefinition there: the cluster then serves more.
"""

from __future__ import annotations

from pathlib import Path

from appflow.engine.options import EngineOptions
from appflow.errors import ConfigError, Where
from appflow.kube.client import Connection, KubeCluster
from appflow.model.capabilities import Capabilities
from appflow.model.records import ClusterRecord


class Connections:
    """KubeClusters and capabilities by cluster name."""

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self._kubes: dict[str, KubeCluster] = {}
        self._capabilities: dict[str, Capabilities] = {}

    def kube(self, cluster: ClusterRecord) -> KubeCluster:
        """The client for CLUSTER (a new one when its credentials changed)."""
        current = self._kubes.get(cluster.name)
        if current is not None and (
            str(current.connection.kubeconfig) == cluster.kubeconfig_path
            and current.connection.context == cluster.context
        ):
            return current
        if not cluster.kubeconfig_path:
            raise ConfigError(
                "has no kubeconfig", where=Where(cluster=cluster.name), hint="appflow cluster add"
            )
        if current is not None:
            current.close()
            self._capabilities.pop(cluster.name, None)
        fresh = KubeCluster(
            Connection(
                name=cluster.name,
                kubeconfig=Path(cluster.kubeconfig_path),
                context=cluster.context,
                timeout=self.options.request_timeout,
                concurrency=self.options.requests_per_cluster,
            )
        )
        self._kubes[cluster.name] = fresh
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

    def close(self) -> None:
        for kube in self._kubes.values():
            kube.close()
        self._kubes.clear()
        self._capabilities.clear()

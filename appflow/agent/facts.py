"""What the agent tells the hub about its cluster: identity, version, distribution, nodes,
architecture, GPUs, the API versions it serves (for rendering), and its age recipient."""

from __future__ import annotations

from appflow import __version__
from appflow.engine.clusters import describe_nodes
from appflow.errors import ClusterError, Where
from appflow.kube.client import KubeCluster
from appflow.model.registration import ClusterFacts, gpu_capacity

LABEL_ARCH = "kubernetes.io/arch"


async def cluster_identity(kube: KubeCluster) -> str:
    """The UID of the kube-system namespace: stable for the cluster's life, unique."""
    namespace = await kube.get("v1", "Namespace", "kube-system")
    uid = ((namespace or {}).get("metadata") or {}).get("uid")
    if not uid:
        raise ClusterError(
            "cannot read the kube-system namespace to identify this cluster",
            where=Where(cluster=kube.name),
            hint="the agent needs to read namespaces on its own cluster",
        )
    return str(uid)


async def gather_facts(kube: KubeCluster, *, recipients: tuple[str, ...] = ()) -> ClusterFacts:
    capabilities = await kube.capabilities()
    nodes = await kube.list_objects("v1", "Node")
    probe = describe_nodes(capabilities.kube_version, nodes)
    arches = sorted(
        {
            str(((n.get("metadata") or {}).get("labels") or {}).get(LABEL_ARCH) or "unknown")
            for n in nodes
        }
    )
    return ClusterFacts(
        identity=await cluster_identity(kube),
        kubernetes_version=capabilities.kube_version,
        distribution=probe.distribution,
        topology=probe.mode,
        node_count=probe.node_count,
        architecture=",".join(arches),
        gpus=gpu_capacity(nodes),
        api_versions=capabilities.api_versions,
        agent_version=__version__,
        age_recipients=recipients,
    )

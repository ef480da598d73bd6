"""The hub's vocabulary: its API group, kinds, namespaces and labels (see docs/hub.md).

Pure: what each custom resource is called, where it lives, what ``kubectl get`` shows of it,
and how its CustomResourceDefinition is put together from structural schemas
(``appflow.model.crd``). The JSON Schemas themselves are ``appflow/schemas/hub.schema.json``
and ``appflow/schemas/appflow.schema.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from appflow.errors import ConfigError, Where

GROUP = "appflow.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
SYSTEM_NAMESPACE = "appflow-system"
DEFAULT_WORKSPACE = "appflow"
MANAGED_BY = {"app.kubernetes.io/managed-by": "appflow"}

ENV_HUB = "APPFLOW_HUB"
"""KUBECONFIG[:CONTEXT] of the hub the CLI works on (as --hub)."""
ENV_WORKSPACE = "APPFLOW_HUB_WORKSPACE"
HUB_CONTEXT_FILE = "hub-context.json"
"""In the data folder: the hub `appflow hub use` chose."""

ANNOTATION_WEBHOOK = "appflow.dev/webhook"
"""On a GitRepo: the latest webhook delivery ``{"commit", "at", "trigger"}``, for its owner."""

LABEL_CLUSTER = "appflow.dev/cluster"
LABEL_WORKSPACE = "appflow.dev/workspace"
LABEL_CONTENT_MEDIA = "appflow.dev/content"

Scope = Literal["workspace", "cluster-namespace"]


@dataclass(frozen=True, kw_only=True)
class Column:
    """A printer column of ``kubectl get``."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    """0: always shown; 1: only with ``-o wide``."""

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


_AGE = Column(name="Age", json_path=".metadata.creationTimestamp", type="date")

DNS_LABEL = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One custom resource kind of the hub."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    scope: Scope
    spec: str
    """The ``$defs`` entry of hub.schema.json with the spec's schema."""
    status: str | None
    """The ``$defs`` entry with the status's schema (None: no status subresource)."""
    columns: tuple[Column, ...]
    description: str
    label_name: bool = False
    """The name is used as a label value and in namespace names: a DNS-1123 label."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


KINDS: tuple[Kind, ...] = (
    Kind(
        kind="Cluster",
        plural="clusters",
        short_names=("afcl",),
        scope="workspace",
        spec="clusterSpec",
        status="clusterStatus",
        label_name=True,
        description="A sync target of appflow: an EVE-k cluster or an imported conformant"
        " cluster, reached by kubeconfig (push) or running the appflow agent (pull).",
        columns=(
            Column(name="Kind", json_path=".spec.kind"),
            Column(name="Mode", json_path=".spec.mode"),
            Column(name="State", json_path=".status.state"),
            Column(name="Version", json_path=".status.kubernetesVersion"),
            Column(name="Nodes", json_path=".status.nodeCount", type="integer"),
            Column(name="Apps-Ready", json_path=".status.display.readyApps"),
            Column(name="Last-Seen", json_path=".status.lastSeen", type="date"),
            Column(name="Reason", json_path=".status.reason", priority=1),
            _AGE,
        ),
    ),
    Kind(
        kind="ClusterGroup",
        plural="clustergroups",
        short_names=("afcg",),
        scope="workspace",
        spec="clusterGroupSpec",
        status="clusterGroupStatus",
        description="A named label selector over the clusters of its namespace.",
        columns=(
            Column(name="Selector", json_path=".status.display.selector"),
            Column(name="Clusters", json_path=".status.clusterCount", type="integer"),
            Column(name="Ready", json_path=".status.readyClusters", type="integer"),
            _AGE,
        ),
    ),
    Kind(
        kind="GitRepo",
        plural="gitrepos",
        short_names=("afrepo",),
        scope="workspace",
        spec="gitRepoSpec",
        status="gitRepoStatus",
        description="A Git repository whose app folders become AppFlows.",
        columns=(
            Column(name="URL", json_path=".spec.url"),
            Column(name="Ref", json_path=".spec.ref"),
            Column(name="Commit", json_path=".status.display.commit"),
            Column(name="Fetched", json_path=".status.fetchedAt", type="date"),
            _AGE,
        ),
    ),
    Kind(
        kind="CatalogRepo",
        plural="catalogrepos",
        short_names=("afcr",),
        scope="workspace",
        spec="catalogRepoSpec",
        status="catalogRepoStatus",
        description="A Helm repository or OCI registry path serving catalog charts.",
        columns=(
            Column(name="URL", json_path=".spec.url"),
            Column(name="Entries", json_path=".status.entries", type="integer"),
            Column(name="Fetched", json_path=".status.fetchedAt", type="date"),
            _AGE,
        ),
    ),
    Kind(
        kind="AppFlow",
        plural="appflows",
        short_names=("af",),
        scope="workspace",
        spec="appFlowSpec",
        status="appFlowStatus",
        label_name=True,
        description="One deployable unit: what (source, path or chart, values), where"
        " (targets), and how (namespace, sync policy, rollout, dependencies).",
        columns=(
            Column(name="Repo", json_path=".spec.repo"),
            Column(name="Path", json_path=".spec.path"),
            Column(name="Catalog", json_path=".spec.catalog.entry", priority=1),
            Column(name="Revision", json_path=".status.revision", type="integer"),
            Column(name="Ready", json_path=".status.display.readyClusters"),
            Column(name="State", json_path=".status.display.state"),
            Column(name="Message", json_path=".status.display.message", priority=1),
            _AGE,
        ),
    ),
    Kind(
        kind="AppFlowDeployment",
        plural="appflowdeployments",
        short_names=("afd",),
        scope="cluster-namespace",
        spec="appFlowDeploymentSpec",
        status="appFlowDeploymentStatus",
        description="One AppFlow on one Cluster (Fleet's BundleDeployment): the staged and"
        " released desired state, and what the cluster reports.",
        columns=(
            Column(name="App", json_path=".spec.app"),
            Column(name="Cluster", json_path=".spec.cluster"),
            Column(name="Released", json_path=".spec.released.revision", type="integer"),
            Column(name="Applied", json_path=".status.appliedRevision", type="integer"),
            Column(name="State", json_path=".status.display.state"),
            Column(name="Message", json_path=".status.message", priority=1),
            _AGE,
        ),
    ),
    Kind(
        kind="AppFlowContent",
        plural="appflowcontents",
        short_names=("afct",),
        scope="workspace",
        spec="appFlowContentSpec",
        status=None,
        description="Immutable, content-addressed, compressed bytes: a chunk of rendered"
        " objects, an index of chunks, an inventory or a source snapshot.",
        columns=(
            Column(name="Media", json_path=".spec.mediaType"),
            Column(name="Size", json_path=".spec.size", type="integer"),
            _AGE,
        ),
    ),
)

KINDS_BY_NAME = {k.kind: k for k in KINDS}


def image_values(image: str) -> dict[str, str]:
    """A chart's ``image`` values (repository, tag) from ``--image REPOSITORY:TAG``."""
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        raise ConfigError(
            f"--image {image!r} needs a tag: REPOSITORY:TAG", where=Where(field="image")
        )
    return {"repository": repository, "tag": tag}


def cluster_namespace(workspace: str, cluster: str) -> str:
    """The hub namespace of CLUSTER of WORKSPACE: ``<workspace>-c-<cluster>-<hash6>``.

    The hash of both names keeps two workspaces' clusters apart however their names are cut
    to fit the 63 characters of a namespace name.
    """
    import hashlib  # here: every fresh CLI reads this module's names, few hash one

    suffix = hashlib.sha256(f"{workspace}/{cluster}".encode()).hexdigest()[:6]
    stem = f"{workspace}-c-{cluster}"[: 63 - len(suffix) - 1].rstrip("-")
    return f"{stem}-{suffix}"


# The API server describes apiVersion, kind and metadata itself (and allows only a bare type
# for metadata): their schema is its own.
_TYPE_META = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}


def crd_manifest(
    kind: Kind, *, spec: dict[str, Any], status: dict[str, Any] | None
) -> dict[str, Any]:
    """The CustomResourceDefinition of KIND, given its structural spec and status schemas."""
    properties: dict[str, Any] = {**_TYPE_META, "spec": spec}
    if status is not None:
        properties["status"] = status
    schema: dict[str, Any] = {
        "description": kind.description,
        "type": "object",
        "required": ["spec"],
        "properties": properties,
    }
    if kind.label_name:
        schema["x-kubernetes-validations"] = [
            {
                "rule": f"self.metadata.name.matches('{DNS_LABEL}')",
                "message": "the name must be a DNS-1123 label (lowercase letters, digits and"
                " '-', at most 63 characters): it is used in label values and namespace names",
            }
        ]
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "additionalPrinterColumns": [c.manifest() for c in kind.columns],
    }
    if status is not None:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": dict(MANAGED_BY)},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
            },
            "versions": [version],
        },
    }

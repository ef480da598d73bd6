"""Apply order and deletion order of Kubernetes objects, as a pure sort.

This module owns the answer to "which objects may be applied together, and
which must exist first". A sync applies :func:`plan_stages` stage by stage;
objects within one stage do not depend on each other and may be applied
concurrently. Prune deletes in :func:`deletion_order`, the reverse.

The stages, in order:

1. ``crds``: CustomResourceDefinitions. The engine waits until each one is
   Established, because the API server refuses (and a server-side dry run
   cannot even check) custom resources of a kind it does not serve yet.
2. ``namespaces``: every Namespace, so that every namespaced object finds its
   namespace.
3. Then the sync waves (annotation ``appflow.dev/sync-wave``, or Argo CD's
   ``argocd.argoproj.io/sync-wave``: an integer, default 0, negative allowed)
   in ascending order; each wave is split into a
   stage of cluster-scoped objects (``cluster`` for wave 0, ``cluster wave N``
   otherwise) followed by a stage of namespaced objects (``wave N``).
   CRDs and Namespaces ignore waves: everything else may depend on them.

Within a stage, objects are sorted by kind rank (see :data:`KIND_RANK`), then
by identity, so that a sequential apply and every printed plan follow the same
stable order whatever order the renderer produced.

Whether a kind is namespaced needs discovery for arbitrary kinds, so callers
pass ``is_namespaced``; :func:`default_is_namespaced` knows the built-in
cluster-scoped kinds (:data:`CLUSTER_SCOPED`). A CRD in the same set of
manifests is authoritative for its own kind (its ``spec.scope``), since
discovery cannot know a kind that is not installed yet.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from appflow.errors import ConfigError, Where
from appflow.model.objects import (
    ANNOTATION_ARGO_SYNC_WAVE,
    ANNOTATION_SYNC_WAVE,
    Manifest,
    ObjectRef,
)

CRD_GROUP_KIND = "CustomResourceDefinition.apiextensions.k8s.io"
NAMESPACE_GROUP_KIND = "Namespace"

CLUSTER_SCOPED: frozenset[str] = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ComponentStatus",
        CRD_GROUP_KIND,
        "APIService.apiregistration.k8s.io",
        "ClusterRole.rbac.authorization.k8s.io",
        "ClusterRoleBinding.rbac.authorization.k8s.io",
        "StorageClass.storage.k8s.io",
        "CSIDriver.storage.k8s.io",
        "CSINode.storage.k8s.io",
        "VolumeAttachment.storage.k8s.io",
        "PriorityClass.scheduling.k8s.io",
        "RuntimeClass.node.k8s.io",
        "IngressClass.networking.k8s.io",
        "IPAddress.networking.k8s.io",
        "ServiceCIDR.networking.k8s.io",
        "MutatingWebhookConfiguration.admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration.admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy.admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io",
        "CertificateSigningRequest.certificates.k8s.io",
        "FlowSchema.flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration.flowcontrol.apiserver.k8s.io",
        "PodSecurityPolicy.policy",
        "DeviceClass.resource.k8s.io",
    }
)
"""Group-kinds of the built-in cluster-scoped kinds (``Kind.group``, core kinds bare)."""

_KIND_ORDER: tuple[str, ...] = (
    # Cluster-scoped: classes and priorities first, because the namespaced
    # objects name them; RBAC next; webhooks last, because a webhook whose
    # backend is not running yet rejects every later apply it intercepts.
    CRD_GROUP_KIND,
    NAMESPACE_GROUP_KIND,
    "PriorityClass.scheduling.k8s.io",
    "RuntimeClass.node.k8s.io",
    "StorageClass.storage.k8s.io",
    "CSIDriver.storage.k8s.io",
    "IngressClass.networking.k8s.io",
    "PersistentVolume",
    "PodSecurityPolicy.policy",
    "ClusterRole.rbac.authorization.k8s.io",
    "ClusterRoleBinding.rbac.authorization.k8s.io",
    "APIService.apiregistration.k8s.io",
    "ValidatingAdmissionPolicy.admissionregistration.k8s.io",
    "ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io",
    "MutatingWebhookConfiguration.admissionregistration.k8s.io",
    "ValidatingWebhookConfiguration.admissionregistration.k8s.io",
    # Namespaced: policy objects that constrain what follows, then what pods
    # mount or run as (ServiceAccount, Secret, ConfigMap, PVC), then RBAC,
    # then Services (so DNS and endpoints exist when pods start), then
    # workloads, then what refers to workloads (HPA, PDB, Ingress).
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy.networking.k8s.io",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Role.rbac.authorization.k8s.io",
    "RoleBinding.rbac.authorization.k8s.io",
    "Service",
    "Endpoints",
    "EndpointSlice.discovery.k8s.io",
    "DaemonSet.apps",
    "Pod",
    "ReplicationController",
    "ReplicaSet.apps",
    "Deployment.apps",
    "StatefulSet.apps",
    "Job.batch",
    "CronJob.batch",
    "HorizontalPodAutoscaler.autoscaling",
    "PodDisruptionBudget.policy",
    "Ingress.networking.k8s.io",
)

KIND_RANK: dict[str, int] = {gk: rank for rank, gk in enumerate(_KIND_ORDER)}
"""Rank of well-known group-kinds within a stage; unknown kinds (custom
resources, mostly) come after all of them, as they usually refer to built-in
objects (a Certificate to its Secret, a ServiceMonitor to its Service)."""

_UNKNOWN_RANK = len(_KIND_ORDER)
_WAVE_TEXT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Stage:
    """Objects that may be applied concurrently, once every earlier stage is applied."""

    name: str
    manifests: tuple[Manifest, ...]
    wait_established: bool = False
    """True for the CRD stage: wait for every CRD to be Established before the next stage."""
    wave: int | None = None
    """The sync wave of the stage's objects; None for the CRD and Namespace stages,
    which come before every wave."""

    def refs(self) -> tuple[ObjectRef, ...]:
        return tuple(ObjectRef.of(m) for m in self.manifests)


def default_is_namespaced(ref: ObjectRef) -> bool:
    """Whether ``ref``'s kind is namespaced, by the built-in table; unknown kinds are."""
    return ref.group_kind not in CLUSTER_SCOPED


def kind_rank(ref: ObjectRef) -> int:
    """Position of ``ref``'s kind within a stage (lower applies first)."""
    return KIND_RANK.get(ref.group_kind, _UNKNOWN_RANK)


def integer_annotation(manifest: Manifest, key: str) -> int | None:
    """The integer in annotation KEY of MANIFEST (None when absent).

    Raises ConfigError naming the object and the annotation when it is not an integer.
    """
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(key)
    if value is None:
        return None
    # YAML turns an unquoted `1` into an int; accept it, it is unambiguous.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _WAVE_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise ConfigError(
        f"annotation {key} must be an integer, got {value!r}",
        where=Where(object=str(ObjectRef.of(manifest)), field=f"metadata.annotations[{key}]"),
        hint='write a whole number such as "-1", "0" or "2"',
    )


def sync_wave(manifest: Manifest) -> int:
    """The object's sync wave, default 0: ``appflow.dev/sync-wave``, or Argo CD's
    ``argocd.argoproj.io/sync-wave`` (an alias, so that a repo written for Argo CD
    applies in the order its authors gave).

    Raises ConfigError naming the object when a wave is not an integer, or when
    both annotations are set and disagree.
    """
    own = integer_annotation(manifest, ANNOTATION_SYNC_WAVE)
    argo = integer_annotation(manifest, ANNOTATION_ARGO_SYNC_WAVE)
    if own is not None and argo is not None and own != argo:
        raise ConfigError(
            f"annotations {ANNOTATION_SYNC_WAVE} ({own}) and {ANNOTATION_ARGO_SYNC_WAVE} "
            f"({argo}) disagree",
            where=Where(
                object=str(ObjectRef.of(manifest)),
                field=f"metadata.annotations[{ANNOTATION_SYNC_WAVE}]",
            ),
            hint="keep one of them",
        )
    return own if own is not None else argo if argo is not None else 0


def _crd_scopes(manifests: Iterable[Manifest]) -> dict[str, bool]:
    """Group-kind -> namespaced, for the kinds defined by CRDs among ``manifests``."""
    scopes: dict[str, bool] = {}
    for manifest in manifests:
        if ObjectRef.of(manifest).group_kind != CRD_GROUP_KIND:
            continue
        spec = manifest.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        group = spec.get("group")
        if not kind or not group:
            continue
        scopes[f"{kind}.{group}"] = spec.get("scope", "Namespaced") != "Cluster"
    return scopes


def plan_stages(
    manifests: Sequence[Manifest],
    *,
    is_namespaced: Callable[[ObjectRef], bool] = default_is_namespaced,
) -> list[Stage]:
    """Split ``manifests`` into the ordered stages of one apply (see the module doc).

    Empty stages are left out. Raises ConfigError for a malformed sync wave.
    """
    crd_scopes = _crd_scopes(manifests)

    def namespaced(ref: ObjectRef) -> bool:
        if ref.group_kind in crd_scopes:
            return crd_scopes[ref.group_kind]
        return is_namespaced(ref)

    crds: list[Manifest] = []
    namespaces: list[Manifest] = []
    # (wave, 0 for cluster-scoped / 1 for namespaced) -> manifests
    waves: dict[tuple[int, int], list[Manifest]] = {}
    for manifest in manifests:
        ref = ObjectRef.of(manifest)
        wave = sync_wave(manifest)  # checked for every object, so a typo never hides
        if ref.group_kind == CRD_GROUP_KIND:
            crds.append(manifest)
        elif ref.group_kind == NAMESPACE_GROUP_KIND:
            namespaces.append(manifest)
        else:
            waves.setdefault((wave, 1 if namespaced(ref) else 0), []).append(manifest)

    stages: list[Stage] = []
    if crds:
        stages.append(Stage("crds", _sorted(crds), wait_established=True))
    if namespaces:
        stages.append(Stage("namespaces", _sorted(namespaces)))
    for wave, scope in sorted(waves):
        if scope == 0:
            name = "cluster" if wave == 0 else f"cluster wave {wave}"
        else:
            name = f"wave {wave}"
        stages.append(Stage(name, _sorted(waves[(wave, scope)]), wave=wave))
    return stages


def _sorted(manifests: list[Manifest]) -> tuple[Manifest, ...]:
    def key(manifest: Manifest) -> tuple[int, ObjectRef]:
        ref = ObjectRef.of(manifest)
        return kind_rank(ref), ref

    return tuple(sorted(manifests, key=key))


def _apply_key(ref: ObjectRef) -> tuple[int, int, ObjectRef]:
    if ref.group_kind == CRD_GROUP_KIND:
        stage = 0
    elif ref.group_kind == NAMESPACE_GROUP_KIND:
        stage = 1
    elif not ref.namespace:
        stage = 2
    else:
        stage = 3
    return stage, kind_rank(ref), ref


def deletion_order(refs: Iterable[ObjectRef]) -> list[ObjectRef]:
    """``refs`` in the order to delete them: the reverse of the apply order.

    Namespaced objects go before their Namespace and custom resources before
    their CRD, so that nothing is removed from under an object still being
    deleted. Works from identities alone (as stored in an inventory): an empty
    namespace means cluster-scoped, and sync waves are not known here.
    """
    return sorted(set(refs), key=_apply_key, reverse=True)

"""Health of live Kubernetes objects, as pure per-kind checks.

This module owns the answer to "is this object done, and if not, what is it waiting for?":
the ordered :class:`HealthStatus`, one check per kind (Deployment, StatefulSet, DaemonSet,
ReplicaSet, Pod, Job, CronJob, PersistentVolumeClaim, PersistentVolume, Service, Ingress,
CustomResourceDefinition, APIService, HorizontalPodAutoscaler, Namespace), a generic check for
everything else (``status.observedGeneration`` and ``status.conditions``), and
:func:`aggregate` to fold many objects into one Health for a Deployment or an AppFlow.

Pure: live objects come in as plain dicts, nothing here does I/O. Live status is written by
controllers we do not control, so every field is read defensively: a check never raises on
an odd shape, it reports what it can.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from appflow.model.objects import Manifest, split_api_version


class HealthStatus(enum.Enum):
    """How a live object is doing, ordered from worst to best by :attr:`severity`.

    The order answers "which one should a person look at first?":

    - Degraded: something failed and will not fix itself; a person must act.
    - Missing: an object the desired state needs is not there, so the app cannot work.
    - Unknown: we cannot tell, which must not pass a health gate, but is not yet a failure.
    - Progressing: the controller is working and is expected to converge.
    - Suspended: a person chose to pause it; it is as intended, only not running.
    - Healthy: done.
    """

    DEGRADED = "Degraded"
    MISSING = "Missing"
    UNKNOWN = "Unknown"
    PROGRESSING = "Progressing"
    SUSPENDED = "Suspended"
    HEALTHY = "Healthy"

    @property
    def severity(self) -> int:
        """Higher is worse; Healthy is 0."""
        return _SEVERITY[self]

    def is_worse(self, other: HealthStatus) -> bool:
        """True when this status is strictly worse than ``other``."""
        return self.severity > other.severity


_SEVERITY: dict[HealthStatus, int] = {
    HealthStatus.DEGRADED: 5,
    HealthStatus.MISSING: 4,
    HealthStatus.UNKNOWN: 3,
    HealthStatus.PROGRESSING: 2,
    HealthStatus.SUSPENDED: 1,
    HealthStatus.HEALTHY: 0,
}


def worst(a: HealthStatus, b: HealthStatus) -> HealthStatus:
    """The worse of two statuses (``a`` on a tie)."""
    return b if b.is_worse(a) else a


@dataclass(frozen=True)
class Health:
    """The health of one object (or of many, aggregated) and what it is waiting for."""

    status: HealthStatus
    message: str

    def __str__(self) -> str:
        return f"{self.status.value}: {self.message}"


def _healthy(message: str) -> Health:
    return Health(HealthStatus.HEALTHY, message)


def _progressing(message: str) -> Health:
    return Health(HealthStatus.PROGRESSING, message)


def _degraded(message: str) -> Health:
    return Health(HealthStatus.DEGRADED, message)


def _suspended(message: str) -> Health:
    return Health(HealthStatus.SUSPENDED, message)


# --- defensive readers: live status may hold anything -------------------------------------


def _map(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: object) -> int | None:
    # bool is an int subclass; a boolean where a count belongs is not a count.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _count(value: object) -> int:
    return _int(value) or 0


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass(frozen=True)
class _View:
    """The parts of a live object every check reads, already made safe to read."""

    kind: str
    meta: dict[str, Any]
    spec: dict[str, Any]
    status: dict[str, Any]

    @classmethod
    def of(cls, live: Manifest) -> _View:
        return cls(
            kind=_str(live.get("kind")),
            meta=_map(live.get("metadata")),
            spec=_map(live.get("spec")),
            status=_map(live.get("status")),
        )


@dataclass(frozen=True)
class _Condition:
    type: str
    status: str
    reason: str
    message: str
    observed_generation: int | None

    @property
    def is_true(self) -> bool:
        return self.status == "True"

    @property
    def is_false(self) -> bool:
        return self.status == "False"

    def describe(self) -> str:
        """'Reason: message', or whichever of the two is set, or the bare type."""
        parts = [p for p in (self.reason, self.message.strip()) if p]
        return ": ".join(parts) if parts else f"{self.type} is {self.status or 'unset'}"


def _conditions(raw: object) -> dict[str, _Condition]:
    found: dict[str, _Condition] = {}
    for item in _list(raw):
        entry = _map(item)
        kind = _str(entry.get("type"))
        if not kind:
            continue
        found[kind] = _Condition(
            type=kind,
            status=_str(entry.get("status")),
            reason=_str(entry.get("reason")),
            message=_str(entry.get("message")),
            observed_generation=_int(entry.get("observedGeneration")),
        )
    return found


def _generation_lag(view: _View, *, controller_always_reports: bool) -> Health | None:
    """Progressing while the controller has not yet looked at the latest spec.

    Built-in workload controllers always write ``status.observedGeneration``, so its absence
    means "not observed yet"; for other kinds it may simply not be a field they use.
    """
    generation = _int(view.meta.get("generation"))
    if generation is None:
        return None
    observed = _int(view.status.get("observedGeneration"))
    if observed is None:
        if not controller_always_reports:
            return None
        return _progressing(
            f"waiting for the controller to observe generation {generation} (not observed yet)"
        )
    if observed < generation:
        return _progressing(
            f"waiting for the controller to observe generation {generation} (observed {observed})"
        )
    return None


# --- workloads ----------------------------------------------------------------------------


def _desired_replicas(spec: dict[str, Any]) -> int:
    # The API server defaults spec.replicas to 1; an unset value on a live object means 1.
    replicas = _int(spec.get("replicas"))
    return 1 if replicas is None else replicas


def _deployment(view: _View) -> Health:
    if view.spec.get("paused") is True:
        return _suspended("rollout is paused (spec.paused is true); resume it to continue")
    lag = _generation_lag(view, controller_always_reports=True)
    if lag:
        return lag
    conditions = _conditions(view.status.get("conditions"))
    progressing = conditions.get("Progressing")
    if progressing and progressing.reason == "ProgressDeadlineExceeded":
        return _degraded(f"Deployment exceeded its progress deadline: {progressing.describe()}")
    failure = conditions.get("ReplicaFailure")
    if failure and failure.is_true:
        return _degraded(f"cannot create replicas: {failure.describe()}")

    desired = _desired_replicas(view.spec)
    updated = _count(view.status.get("updatedReplicas"))
    total = _count(view.status.get("replicas"))
    available = _count(view.status.get("availableReplicas"))
    if updated < desired:
        return _progressing(
            f"waiting for rollout: {updated} of {desired} new replicas have been updated"
        )
    if total > updated:
        old = _plural(total - updated, "old replica")
        return _progressing(f"waiting for rollout: {old} pending termination")
    if available < updated:
        return _progressing(
            f"waiting for rollout: {available} of {updated} updated replicas are available"
        )
    if desired == 0:
        return _healthy("scaled to 0 replicas")
    return _healthy(f"{available} of {desired} updated replicas are available")


def _statefulset(view: _View) -> Health:
    lag = _generation_lag(view, controller_always_reports=True)
    if lag:
        return lag
    desired = _desired_replicas(view.spec)
    status = view.status
    ready = _count(status.get("readyReplicas"))
    updated = _count(status.get("updatedReplicas"))
    strategy = _map(view.spec.get("updateStrategy"))
    # OnDelete: the controller replaces a pod only when someone deletes it, so there is no
    # rollout to wait for; readiness is all we can judge.
    if _str(strategy.get("type")) != "OnDelete":
        partition = _count(_map(strategy.get("rollingUpdate")).get("partition"))
        if partition > 0:
            expected = max(desired - partition, 0)
            if updated < expected:
                return _progressing(
                    f"waiting for partitioned rollout: {updated} of {expected} pods "
                    f"above partition {partition} updated"
                )
        else:
            update_revision = _str(status.get("updateRevision"))
            if update_revision and update_revision != _str(status.get("currentRevision")):
                return _progressing(
                    f"waiting for rolling update: {updated} of {desired} pods "
                    f"updated to revision {update_revision}"
                )
    if ready < desired:
        return _progressing(f"waiting for pods: {ready} of {desired} replicas are ready")
    available = _int(status.get("availableReplicas"))
    # availableReplicas exists since Kubernetes 1.22; it lags readyReplicas by minReadySeconds.
    if available is not None and available < desired:
        return _progressing(f"waiting for pods: {available} of {desired} replicas are available")
    if desired == 0:
        return _healthy("scaled to 0 replicas")
    return _healthy(f"{ready} of {desired} replicas are ready")


def _daemonset(view: _View) -> Health:
    lag = _generation_lag(view, controller_always_reports=True)
    if lag:
        return lag
    status = view.status
    desired = _count(status.get("desiredNumberScheduled"))
    updated = _count(status.get("updatedNumberScheduled"))
    available = _count(status.get("numberAvailable"))
    on_delete = _str(_map(view.spec.get("updateStrategy")).get("type")) == "OnDelete"
    if not on_delete and updated < desired:
        return _progressing(
            f"waiting for rollout: {updated} of {desired} pods have been updated on their nodes"
        )
    if available < desired:
        return _progressing(f"waiting for rollout: {available} of {desired} pods are available")
    if desired == 0:
        return _healthy("no node matches the DaemonSet's node selector; 0 pods scheduled")
    return _healthy(f"{available} of {desired} pods are available")


def _replicaset(view: _View) -> Health:
    lag = _generation_lag(view, controller_always_reports=True)
    if lag:
        return lag
    failure = _conditions(view.status.get("conditions")).get("ReplicaFailure")
    if failure and failure.is_true:
        return _degraded(f"cannot create replicas: {failure.describe()}")
    desired = _desired_replicas(view.spec)
    available = _count(view.status.get("availableReplicas"))
    if available < desired:
        return _progressing(f"waiting for replicas: {available} of {desired} are available")
    return _healthy(f"{available} of {desired} replicas are available")


# Waiting reasons the kubelet will not get past without a change to the pod or the cluster
# (image name, registry credentials, a missing ConfigMap, a crashing process).
_STUCK_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def _container_statuses(status: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for item in _list(status.get(key)):
            entry = _map(item)
            found.append((_str(entry.get("name")) or "?", entry))
    return found


def _pod(view: _View) -> Health:
    status = view.status
    phase = _str(status.get("phase"))
    containers = _container_statuses(status)
    if phase == "Succeeded":
        return _healthy("pod completed successfully")
    if phase == "Failed":
        detail = _str(status.get("message")) or _str(status.get("reason"))
        for name, entry in containers:
            terminated = _map(_map(entry.get("state")).get("terminated"))
            code = _int(terminated.get("exitCode"))
            if code:
                reason = _str(terminated.get("reason")) or "Error"
                detail = detail or f'container "{name}" exited with code {code} ({reason})'
        return _degraded(f"pod failed: {detail or 'no reason given'}")
    for name, entry in containers:
        waiting = _map(_map(entry.get("state")).get("waiting"))
        reason = _str(waiting.get("reason"))
        if reason in _STUCK_WAITING_REASONS:
            message = _str(waiting.get("message"))
            suffix = f": {message}" if message else ""
            return _degraded(f'container "{name}" is in {reason}{suffix}')
    if phase == "Unknown":
        detail = _str(status.get("message")) or "the node stopped reporting"
        return Health(HealthStatus.UNKNOWN, f"pod state is unknown: {detail}")
    conditions = _conditions(status.get("conditions"))
    if phase == "Running":
        restart_policy = _str(view.spec.get("restartPolicy")) or "Always"
        if restart_policy != "Always":
            # A pod meant to run to completion (a Job's) is healthy only once it has finished.
            return _progressing("pod is running; waiting for it to complete")
        ready = conditions.get("Ready")
        if ready and ready.is_true:
            return _healthy("all containers are ready")
        not_ready = [
            name
            for name, entry in containers
            if entry.get("ready") is not True and not _map(entry.get("state")).get("terminated")
        ]
        if not_ready:
            return _progressing(f"waiting for containers to be ready: {', '.join(not_ready)}")
        return _progressing("waiting for the pod to become ready")
    scheduled = conditions.get("PodScheduled")
    if scheduled and scheduled.is_false:
        return _progressing(f"waiting to be scheduled: {scheduled.describe()}")
    for name, entry in containers:
        waiting = _map(_map(entry.get("state")).get("waiting"))
        if waiting:
            reason = _str(waiting.get("reason")) or "waiting"
            return _progressing(f'waiting for container "{name}" to start ({reason})')
    if phase == "Pending":
        return _progressing("waiting for the pod's containers to start")
    return _progressing("waiting for the pod to be scheduled")


def _job(view: _View) -> Health:
    conditions = _conditions(view.status.get("conditions"))
    # FailureTarget precedes Failed while the Job's pods are being terminated.
    for kind in ("Failed", "FailureTarget"):
        failed = conditions.get(kind)
        if failed and failed.is_true:
            return _degraded(f"Job failed: {failed.describe()}")
    succeeded = _count(view.status.get("succeeded"))
    complete = conditions.get("Complete")
    if complete and complete.is_true:
        return _healthy(f"Job completed: {_plural(succeeded, 'pod')} succeeded")
    if view.spec.get("suspend") is True:
        return _suspended("Job is suspended (spec.suspend is true); no pods will run")
    active = _count(view.status.get("active"))
    failed_pods = _count(view.status.get("failed"))
    completions = _int(view.spec.get("completions"))
    done = f"{succeeded} of {completions}" if completions is not None else str(succeeded)
    message = f"waiting for Job to complete: {active} active, {done} succeeded"
    if failed_pods:
        message += f", {failed_pods} failed"
    return _progressing(message)


def _cronjob(view: _View) -> Health:
    if view.spec.get("suspend") is True:
        return _suspended("CronJob is suspended (spec.suspend is true); no Jobs will be scheduled")
    schedule = _str(view.spec.get("schedule")) or "?"
    last = _str(view.status.get("lastScheduleTime"))
    active = len(_list(view.status.get("active")))
    when = f"last scheduled {last}" if last else "not scheduled yet"
    return _healthy(f"schedule {schedule!r}, {when}, {active} active")


# --- storage, networking ------------------------------------------------------------------


def _pvc(view: _View) -> Health:
    phase = _str(view.status.get("phase"))
    volume = _str(view.spec.get("volumeName"))
    if phase == "Bound":
        return _healthy(f"bound to volume {volume}" if volume else "bound")
    if phase == "Lost":
        return _degraded(f"the bound volume {volume or '(unnamed)'} was lost")
    # A StorageClass with volumeBindingMode WaitForFirstConsumer (k3s local-path, the EVE-k
    # default) leaves a claim Pending until a pod uses it; say so, it is not a failure.
    return _progressing(
        "waiting for volume to be bound "
        "(with volumeBindingMode WaitForFirstConsumer, until a pod uses the claim)"
    )


def _pv(view: _View) -> Health:
    phase = _str(view.status.get("phase"))
    if phase == "Failed":
        detail = _str(view.status.get("message")) or "reclamation failed"
        return _degraded(f"volume failed: {detail}")
    if phase == "Pending" or not phase:
        return _progressing("waiting for the volume to become available")
    return _healthy(f"volume is {phase}")


def _lb_addresses(status: dict[str, Any]) -> list[str]:
    addresses: list[str] = []
    for item in _list(_map(status.get("loadBalancer")).get("ingress")):
        entry = _map(item)
        address = _str(entry.get("ip")) or _str(entry.get("hostname"))
        if address:
            addresses.append(address)
    return addresses


# No address is what a cluster without the right controller shows forever (a bare control
# plane, K3s started with --disable servicelb or --disable traefik), so the message says
# which controller is awaited rather than only "waiting".
_NO_ADDRESS = "status.loadBalancer.ingress is empty"


def _service(view: _View) -> Health:
    service_type = _str(view.spec.get("type")) or "ClusterIP"
    if service_type != "LoadBalancer":
        return _healthy(f"{service_type} Service exists")
    addresses = _lb_addresses(view.status)
    if addresses:
        return _healthy(f"load balancer at {', '.join(addresses)}")
    lb_class = _str(view.spec.get("loadBalancerClass"))
    if lb_class:
        return _progressing(
            f"waiting for an address from load-balancer class {lb_class!r} ({_NO_ADDRESS}); "
            "it never comes on a cluster without a controller for that class"
        )
    return _progressing(
        f"waiting for an address from the cluster's load balancer ({_NO_ADDRESS}); "
        "it never comes on a cluster without one (K3s's ServiceLB, MetalLB, a cloud provider)"
    )


def _ingress_class(view: _View) -> str:
    annotations = _map(view.meta.get("annotations"))
    return _str(view.spec.get("ingressClassName")) or _str(
        annotations.get("kubernetes.io/ingress.class")
    )


def _ingress(view: _View) -> Health:
    addresses = _lb_addresses(view.status)
    if addresses:
        return _healthy(f"ingress address {', '.join(addresses)}")
    ingress_class = _ingress_class(view)
    if ingress_class:
        return _progressing(
            f"waiting for an address from the ingress controller of class {ingress_class!r} "
            f"({_NO_ADDRESS}); it never comes on a cluster without a controller for that class"
        )
    return _progressing(
        f"waiting for an address from the default ingress controller ({_NO_ADDRESS}; the "
        "Ingress names no class); it never comes on a cluster without one (K3s's Traefik is one)"
    )


def _namespace(view: _View) -> Health:
    if _str(view.status.get("phase")) == "Terminating":
        return _progressing("namespace is terminating; waiting for its objects to be deleted")
    return _healthy("namespace is active")


# --- API extensions -----------------------------------------------------------------------


def _crd(view: _View) -> Health:
    conditions = _conditions(view.status.get("conditions"))
    names = conditions.get("NamesAccepted")
    if names and names.is_false:
        return _degraded(f"CRD names not accepted: {names.describe()}")
    non_structural = conditions.get("NonStructuralSchema")
    if non_structural and non_structural.is_true:
        return _degraded(f"CRD schema is not structural: {non_structural.describe()}")
    terminating = conditions.get("Terminating")
    if terminating and terminating.is_true:
        return _progressing(f"CRD is being deleted: {terminating.describe()}")
    established = conditions.get("Established")
    if established and established.is_true:
        return _healthy("CRD is established; its kinds are served")
    if established:
        return _progressing(f"waiting for the CRD to be established: {established.describe()}")
    return _progressing("waiting for the CRD to be established")


def _apiservice(view: _View) -> Health:
    available = _conditions(view.status.get("conditions")).get("Available")
    if available and available.is_true:
        return _healthy("API service is available")
    if available and available.is_false:
        # MissingEndpoints is what a freshly installed aggregated API (metrics-server) shows
        # until its pod is ready; any other reason will not clear up by waiting.
        if available.reason == "MissingEndpoints":
            return _progressing(
                f"waiting for the backing service to have endpoints: {available.describe()}"
            )
        return _degraded(f"API service is unavailable: {available.describe()}")
    return _progressing("waiting for the API service to report Available")


_HPA_V1_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"


def _hpa_conditions(view: _View) -> dict[str, _Condition]:
    conditions = _conditions(view.status.get("conditions"))
    if conditions:
        return conditions
    # autoscaling/v1 has no status.conditions; the API server carries them in an annotation.
    raw = _str(_map(view.meta.get("annotations")).get(_HPA_V1_CONDITIONS))
    if not raw:
        return {}
    try:
        parsed: object = json.loads(raw)
    except ValueError:
        return {}
    return _conditions(parsed)


def _hpa(view: _View) -> Health:
    conditions = _hpa_conditions(view)
    able = conditions.get("AbleToScale")
    if able and able.is_false:
        return _degraded(f"autoscaler cannot scale: {able.describe()}")
    active = conditions.get("ScalingActive")
    if active and active.is_false:
        # The HPA switches itself off while its target is scaled to 0; that is a choice.
        if active.reason == "ScalingDisabled":
            return _suspended(f"autoscaling is disabled: {active.describe()}")
        return _degraded(f"autoscaler cannot compute a scale: {active.describe()}")
    if not conditions:
        return _progressing("waiting for the autoscaler to report its conditions")
    current = _count(view.status.get("currentReplicas"))
    low = _int(view.spec.get("minReplicas"))
    high = _int(view.spec.get("maxReplicas"))
    bounds = f" (min {1 if low is None else low}, max {high})" if high is not None else ""
    message = f"autoscaling at {_plural(current, 'replica')}{bounds}"
    limited = conditions.get("ScalingLimited")
    if limited and limited.is_true:
        message += f"; limited: {limited.describe()}"
    return _healthy(message)


# --- everything else ----------------------------------------------------------------------

# Ready=False alone does not say whether the controller is still working or has given up.
# Controllers that follow kstatus say so with Reconciling/Stalled (checked first); many others
# put the phase in the Ready reason, and these reasons mean "still working".
_IN_PROGRESS_REASONS = frozenset(
    r.lower()
    for r in (
        "Progressing",
        "Reconciling",
        "ReconciliationInProgress",
        "InProgress",
        "DependencyNotReady",
        "Pending",
        "Initializing",
        "Creating",
        "Provisioning",
        "Installing",
        "Upgrading",
        "Updating",
        "Deploying",
        "Waiting",
        "Scaling",
    )
)


def _generic(view: _View) -> Health:
    if view.spec.get("suspend") is True:
        return _suspended(f"{view.kind or 'object'} is suspended (spec.suspend is true)")
    lag = _generation_lag(view, controller_always_reports=False)
    if lag:
        return lag
    conditions = _conditions(view.status.get("conditions"))
    stalled = conditions.get("Stalled")
    if stalled and stalled.is_true:
        return _degraded(f"stalled: {stalled.describe()}")
    reconciling = conditions.get("Reconciling")
    if reconciling and reconciling.is_true:
        return _progressing(f"reconciling: {reconciling.describe()}")
    generation = _int(view.meta.get("generation"))
    for kind in ("Ready", "Available"):
        condition = conditions.get(kind)
        if condition is None:
            continue
        seen = condition.observed_generation
        if generation is not None and seen is not None and seen < generation:
            return _progressing(
                f"waiting for the controller to report {kind} for generation {generation} "
                f"(condition is for {seen})"
            )
        if condition.is_true:
            return _healthy(f"{kind}: {condition.describe()}")
        if condition.is_false and condition.reason.lower() not in _IN_PROGRESS_REASONS:
            return _degraded(f"not {kind}: {condition.describe()}")
        return _progressing(f"waiting for {kind}: {condition.describe()}")
    if view.status:
        return _healthy("exists; no Ready or Available condition to wait for")
    return _healthy("exists")


_Check = Callable[[_View], Health]

_CHECKS: dict[tuple[str, str], _Check] = {
    ("apps", "Deployment"): _deployment,
    ("extensions", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("extensions", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("extensions", "ReplicaSet"): _replicaset,
    ("", "Pod"): _pod,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cronjob,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "PersistentVolume"): _pv,
    ("", "Service"): _service,
    ("", "Namespace"): _namespace,
    ("networking.k8s.io", "Ingress"): _ingress,
    ("extensions", "Ingress"): _ingress,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("apiregistration.k8s.io", "APIService"): _apiservice,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
}


def assess(live: Manifest | None) -> Health:
    """The health of one live object; ``None`` (not found on the cluster) is Missing.

    Kinds without a notion of health (ConfigMap, Secret, ServiceAccount, Role, ...) are
    Healthy once they exist. Never raises on odd status content.
    """
    if live is None:
        return Health(HealthStatus.MISSING, "object does not exist on the cluster")
    if not isinstance(live, dict):
        return Health(HealthStatus.UNKNOWN, "live object is not a mapping")
    view = _View.of(live)
    if not view.kind:
        return Health(HealthStatus.UNKNOWN, "live object has no kind")
    if view.meta.get("deletionTimestamp"):
        finalizers = [f for f in _list(view.meta.get("finalizers")) if isinstance(f, str)]
        pending = f" (finalizers: {', '.join(finalizers)})" if finalizers else ""
        return _progressing(f"being deleted; waiting for deletion to finish{pending}")
    group, _ = split_api_version(_str(live.get("apiVersion")))
    check = _CHECKS.get((group, view.kind), _generic)
    return check(view)


def aggregate(healths: Iterable[Health]) -> Health:
    """Fold many objects' health into one: the worst status, and how many are not healthy.

    The message carries the first worst object's message, since that is what to look at.
    """
    items = list(healths)
    if not items:
        return _healthy("no objects")
    first_worst = items[0]
    for health in items[1:]:
        if health.status.is_worse(first_worst.status):
            first_worst = health
    unhealthy = [h for h in items if h.status is not HealthStatus.HEALTHY]
    total = len(items)
    if not unhealthy:
        return _healthy("1 object is healthy" if total == 1 else f"all {total} objects are healthy")
    counts = Counter(h.status for h in unhealthy)
    breakdown = ", ".join(
        f"{counts[s]} {s.value}" for s in sorted(counts, key=lambda s: -s.severity)
    )
    verb = "is" if len(unhealthy) == 1 else "are"
    return Health(
        first_worst.status,
        f"{len(unhealthy)} of {_plural(total, 'object')} {verb} not healthy ({breakdown}); "
        f"{first_worst.status.value}: {first_worst.message}",
    )

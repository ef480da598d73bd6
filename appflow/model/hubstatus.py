"""What the hub shows of an AppFlow and a Cluster, aggregated from their Deployments (pure).

An AppFlow's owner writes, from the ``AppFlowDeployment`` statuses of the app (docs/hub.md §6):
Deployments per state (Fleet's summary), the sum of their resource counts, what ``kubectl get``
shows (``READY 2/3``, the worst state, the first problem) and the conditions ``Ready``,
``Reconciling`` and ``Stalled``. A Deployment whose cluster has not reported yet (a pull cluster
whose agent has not applied the release) counts as ``WaitApplied``, never Ready.

A Cluster's owner writes the same for the apps on that cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appflow.model.codec import camel
from appflow.model.records import DEPLOYMENT_STATES, ResourceCounts
from appflow.model.resources import counts_of, stamp

SEVERITY = {
    "ErrApplied": 8,
    "Missing": 7,
    "Modified": 6,
    "NotReady": 5,
    "Unknown": 4,
    "OutOfSync": 3,
    "WaitApplied": 2,
    "Orphaned": 1,
    "Ready": 0,
}
"""Which state an AppFlow shows when its clusters differ: the worst one."""
assert set(SEVERITY) == set(DEPLOYMENT_STATES)


@dataclass(frozen=True, kw_only=True)
class Seen:
    """One Deployment as aggregation reads it."""

    cluster: str
    state: str
    message: str
    resources: ResourceCounts

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Seen:
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        state = str(status.get("state") or "WaitApplied")
        display = str((status.get("display") or {}).get("state") or "")
        message = str(status.get("message") or "")
        if display and display != state:
            message = f"{display}: {message}" if message else display
        return cls(
            cluster=str(spec.get("cluster", "")),
            state=state if state in SEVERITY else "Unknown",
            message=message,
            resources=counts_of(status.get("resourceCounts")),
        )


def state_summary(seen: Sequence[Seen]) -> dict[str, int]:
    """Deployments per state as Fleet's counts (camelCase); desiredReady is their number."""
    out = {camel(s[:1].lower() + s[1:]): 0 for s in SEVERITY}
    for d in seen:
        key = camel(d.state[:1].lower() + d.state[1:])
        out[key] += 1
    out["desiredReady"] = len(seen)
    return out


def worst_state(seen: Sequence[Seen]) -> str:
    return max((d.state for d in seen), key=SEVERITY.__getitem__, default="")


def condition(
    kind: str,
    holds: bool,
    *,
    reason: str,
    message: str,
    before: Sequence[Mapping[str, Any]],
    now: datetime,
    generation: int | None,
) -> dict[str, Any]:
    """Condition KIND, keeping its lastTransitionTime while its status stays."""
    status = "True" if holds else "False"
    previous = next((c for c in before if c.get("type") == kind), None)
    since = (
        previous.get("lastTransitionTime")
        if previous is not None and previous.get("status") == status
        else stamp(now)
    )
    out: dict[str, Any] = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:2000],
        "lastTransitionTime": since,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def app_status(
    deployments: Sequence[Mapping[str, Any]],
    *,
    before: Mapping[str, Any],
    generation: int | None,
    reconciling: bool,
    stalled: str,
    now: datetime,
) -> dict[str, Any]:
    """The aggregated part of an AppFlow's status (a merge patch of it).

    STALLED: why the owner cannot go on (a render or validation refused, an unreadable
    AppFlow), or "". RECONCILING: a sync is under way.
    """
    seen = sorted((Seen.of(d) for d in deployments), key=lambda d: d.cluster)
    ready = sum(1 for d in seen if d.state == "Ready")
    total = ResourceCounts()
    for d in seen:
        total += d.resources
    problem = next((d for d in seen if d.state != "Ready"), None)
    message = stalled or (f"{problem.cluster}: {problem.state}" if problem else "")
    if problem is not None and problem.message and not stalled:
        message += f": {problem.message}"
    conditions_before = before.get("conditions") or []
    all_ready = bool(seen) and ready == len(seen) and not stalled
    conditions = [
        condition(
            "Ready",
            all_ready,
            reason="Ready" if all_ready else ("Stalled" if stalled else "NotReady"),
            message=message or f"{ready}/{len(seen)} clusters Ready",
            before=conditions_before,
            now=now,
            generation=generation,
        ),
        condition(
            "Reconciling",
            reconciling,
            reason="Syncing" if reconciling else "Idle",
            message="a sync is under way" if reconciling else "",
            before=conditions_before,
            now=now,
            generation=generation,
        ),
        condition(
            "Stalled",
            bool(stalled),
            reason="Refused" if stalled else "Progressing",
            message=stalled,
            before=conditions_before,
            now=now,
            generation=generation,
        ),
    ]
    return {
        "summary": state_summary(seen),
        "resourceCounts": total.as_dict(),
        "display": {
            "readyClusters": f"{ready}/{len(seen)}",
            "state": worst_state(seen) or ("Stalled" if stalled else ""),
            "message": message[:500],
        },
        "conditions": conditions,
        "observedGeneration": generation,
    }


def cluster_apps(deployments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The apps part of a Cluster's status: Deployments on it per state, and READY n/m."""
    seen = [Seen.of(d) for d in deployments]
    ready = sum(1 for d in seen if d.state == "Ready")
    return {"apps": state_summary(seen), "display": {"readyApps": f"{ready}/{len(seen)}"}}

"""A sync's report as data: what a controller replica writes, what `appflow sync --hub` prints.

On a hub the CLI does not sync: it asks the AppFlow's owner to (a ``syncRequest``) and waits.
The owner stores the ``AppSyncReport`` it got from the engine as content and names it in the
AppFlow's status; the CLI reads it back into an ``AppSyncReport`` and prints it with the same
code as standalone, so the two backends say the same thing. Diffs, inventories and
fingerprints stay out (the report says what happened, not how the objects look).
"""

from __future__ import annotations

from typing import Any, cast

from appflow.engine.report import AppSyncReport
from appflow.engine.stages.types import SyncResult
from appflow.errors import AppflowError, ClusterError
from appflow.model.codec import JsonObject, from_json, to_json
from appflow.model.health import Health, HealthStatus
from appflow.model.inventory import Inventory
from appflow.model.objects import ObjectRef
from appflow.model.plan import Action, Change, Plan
from appflow.model.records import (
    DeploymentState,
    FailingObject,
    HelmReleaseRef,
    ResourceCounts,
    RevisionRecord,
)
from appflow.model.resources import revision_entry, revision_record


def _error(err: AppflowError) -> JsonObject:
    return {"message": str(err), "retryable": err.retryable}


def _error_of(data: Any) -> AppflowError:
    text = str((data or {}).get("message", ""))
    if (data or {}).get("retryable"):
        return ClusterError(text)
    return AppflowError(text)


def _result(result: SyncResult) -> JsonObject:
    return {
        "app": result.app,
        "cluster": result.cluster,
        "revision": result.revision,
        "state": result.state,
        "health": {"status": result.health.status.value, "message": result.health.message},
        "changes": [
            {"ref": c.ref.encode(), "action": c.action.value, "reason": c.reason}
            for c in result.plan.changes
        ],
        "errors": [_error(e) for e in result.errors],
        "failing": [{"object": f.object, "message": f.message} for f in result.failing],
        "resourceCounts": to_json(result.resource_counts),
        "release": to_json(result.release),
        "applied": result.applied,
        "seconds": round(result.seconds, 3),
    }


def _result_of(data: dict[str, Any]) -> SyncResult:
    release = data.get("release")
    return SyncResult(
        app=str(data["app"]),
        cluster=str(data["cluster"]),
        revision=str(data.get("revision", "")),
        plan=Plan(
            changes=tuple(
                Change(
                    ref=ObjectRef.decode(str(c["ref"])),
                    action=Action(c["action"]),
                    reason=str(c.get("reason", "")),
                )
                for c in data.get("changes") or ()
            )
        ),
        state=cast(DeploymentState, data.get("state", "Unknown")),
        health=Health(
            HealthStatus(data["health"]["status"]), str(data["health"].get("message", ""))
        ),
        inventory=Inventory(str(data["app"]), ()),
        fingerprints={},
        errors=tuple(_error_of(e) for e in data.get("errors") or ()),
        failing=tuple(
            FailingObject(object=str(f["object"]), message=str(f["message"]))
            for f in data.get("failing") or ()
        ),
        resource_counts=from_json(ResourceCounts, data.get("resourceCounts") or {}),
        release=from_json(HelmReleaseRef, release) if release else None,
        applied=int(data.get("applied", 0)),
        seconds=float(data.get("seconds", 0.0)),
    )


def report_data(report: AppSyncReport) -> JsonObject:
    """REPORT as JSON (one content object)."""
    revision = report.revision
    return {
        "app": report.app,
        "revision": revision_entry(revision, rendered=None) if revision else None,
        "results": [_result(r) for r in report.results],
        "unreachable": {c: _error(e) for c, e in report.unreachable.items()},
        "failed": {c: _error(e) for c, e in report.failed.items()},
        "blocked": [_error(e) for e in report.blocked],
        "warnings": list(report.warnings),
        "waiting": dict(report.waiting),
        "held": dict(report.held),
        "rolloutFailed": report.rollout_failed,
        "rolledBack": [_result(r) for r in report.rolled_back],
    }


def report_of(data: dict[str, Any]) -> AppSyncReport:
    """The AppSyncReport that report_data wrote."""
    app = str(data["app"])
    revision: RevisionRecord | None = None
    if data.get("revision"):
        revision = revision_record(app, data["revision"])
    return AppSyncReport(
        app=app,
        revision=revision,
        results=[_result_of(r) for r in data.get("results") or ()],
        unreachable={c: _error_of(e) for c, e in (data.get("unreachable") or {}).items()},
        failed={c: _error_of(e) for c, e in (data.get("failed") or {}).items()},
        blocked=[_error_of(e) for e in data.get("blocked") or ()],
        warnings=[str(w) for w in data.get("warnings") or ()],
        waiting={str(k): str(v) for k, v in (data.get("waiting") or {}).items()},
        held={str(k): str(v) for k, v in (data.get("held") or {}).items()},
        rollout_failed=str(data.get("rolloutFailed") or ""),
        rolled_back=[_result_of(r) for r in data.get("rolledBack") or ()],
    )

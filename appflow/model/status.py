"""The apps x clusters grid: each Deployment's state, as `appflow status` and the API show it.

Pure: built from records, so the CLI (``appflow status -o json``) and the HTTP API
(``GET /api/v1/status``) give exactly the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from appflow.model.records import AppRecord, ClusterRecord, DeploymentRecord


def state_counts(deployments: Iterable[DeploymentRecord]) -> dict[str, int]:
    """Deployments per state, e.g. ``{"Ready": 2, "ErrApplied": 1}``."""
    out: dict[str, int] = {}
    for d in deployments:
        out[d.state] = out.get(d.state, 0) + 1
    return out


def resource_totals(deployments: Iterable[DeploymentRecord]) -> dict[str, int]:
    """Objects per state summed over an app's Deployments (ready, desiredReady, missing, ...)."""
    out: dict[str, int] = {}
    for d in deployments:
        for key, value in d.resource_counts.items():
            if key != "helmRevision":
                out[key] = out.get(key, 0) + int(value)
    return out


def status_grid(
    apps: Sequence[AppRecord],
    clusters: Sequence[ClusterRecord],
    deployments: Iterable[DeploymentRecord],
) -> dict[str, list[dict[str, Any]]]:
    """``{"clusters": [...], "apps": [{"name", "counts", "deployments": {cluster: ...}}]}``."""
    by_key = {(d.app, d.cluster): d for d in deployments}
    # Grouped once: scanning every deployment for every app took 27 s at 1,000 x 50.
    by_app: dict[str, list[DeploymentRecord]] = {}
    for (app, _), d in by_key.items():
        by_app.setdefault(app, []).append(d)
    return {
        "clusters": [
            {"name": c.name, "state": c.state, "reason": c.state_reason} for c in clusters
        ],
        "apps": [
            {
                "name": a.name,
                "counts": state_counts(by_app.get(a.name, ())),
                "resources": resource_totals(by_app.get(a.name, ())),
                "deployments": {
                    c.name: {
                        "state": by_key[(a.name, c.name)].state,
                        "revision": by_key[(a.name, c.name)].applied_revision,
                        "message": by_key[(a.name, c.name)].message,
                        "resources": dict(by_key[(a.name, c.name)].resource_counts),
                        "failing": [
                            f"{f.object}: {f.message}" for f in by_key[(a.name, c.name)].failing
                        ],
                    }
                    for c in clusters
                    if (a.name, c.name) in by_key
                },
            }
            for a in apps
        ],
    }

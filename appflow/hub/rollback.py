"""Rollbacks of pull-mode clusters (docs/hub.md §10).

``appflow app rollback NAME --to REV`` on a hub is a request the app's owner runs: the engine
rolls back the push clusters (re-applying REV's stored renders, and pinning the app there, as
standalone does), and this module hands REV's renders to the pull clusters it was rendered for.
Nothing is rendered again: each pull cluster's AppFlowDeployment gets REV's content index as
``spec.staged``, its agent validates it, and the owner releases it by the one release rule
(``publish.release``), so a rolled-back revision one agent refuses reaches no pull cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from appflow.engine.report import AppSyncReport
from appflow.errors import NotFoundError, Where
from appflow.hub import publish
from appflow.hub.store import HubStore
from appflow.kube.client import KubeCluster
from appflow.model.records import AppRecord

GONE = "also targeted clusters no longer registered: "
"""The engine's warning for clusters of a revision it does not know (its view is push only)."""


def _options(
    record: AppRecord, deployment: Mapping[str, Any] | None, *, force_conflicts: bool
) -> dict[str, Any]:
    """How the agent applies the rollback: as the Deployment was last staged (the definition's
    namespace and policy), with the policy the app has now."""
    spec = (deployment or {}).get("spec") or {}
    before = (spec.get("staged") or spec.get("released") or {}).get("options") or {}
    return {
        **before,
        "prune": record.policy.prune,
        "selfHeal": record.policy.self_heal,
        "forceConflicts": record.policy.force_conflicts or force_conflicts,
    }


def only_unregistered(report: AppSyncReport, pull: Collection[str]) -> None:
    """Keep the engine's "no longer registered" warning for clusters that really are not."""
    for i, warning in enumerate(report.warnings):
        head, found, names = warning.partition(GONE)
        if not found:
            continue
        gone = [n for n in names.split(", ") if n not in pull]
        if gone:
            report.warnings[i] = f"{head}{GONE}{', '.join(gone)}"
        else:
            del report.warnings[i]
        return


async def republish(
    store: HubStore,
    kube: KubeCluster,
    *,
    app: str,
    to: int,
    pull: Collection[str],
    deployments: Sequence[Mapping[str, Any]],
    force_conflicts: bool = False,
) -> list[str]:
    """Stage revision TO of APP again on the PULL clusters it was rendered for; those clusters.

    DEPLOYMENTS are the app's AppFlowDeployments as last seen."""
    record = await asyncio.to_thread(store.get_app, app)
    revisions = await asyncio.to_thread(store.list_revisions, app)
    revision = next((r for r in revisions if r.number == to), None)
    if revision is None:
        raise NotFoundError(
            f"app {app} has no revision {to} on the hub",
            where=Where(app=app),
            hint=f"see `appflow app history {app}`",
        )
    listing = await asyncio.to_thread(store.revision_listing, app, to)
    by_cluster = {str((d.get("spec") or {}).get("cluster")): d for d in deployments}
    targets = sorted(c for c in listing if c in pull)
    await publish.stage_revision(
        store,
        kube,
        app=app,
        revision=revision,
        options={
            c: _options(record, by_cluster.get(c), force_conflicts=force_conflicts) for c in targets
        },
        deployments=deployments,
    )
    return targets

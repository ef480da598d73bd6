"""Drift and self-heal on push-mode clusters, per controller replica (docs/hub.md §10).

Each replica runs the engine's drift watches (``appflow.engine.drift``, the same code as
standalone's daemon) over the Deployments of the apps in its own share on push-mode clusters:
a hand edit marks the ``AppFlowDeployment`` ``Modified`` (a deletion ``Missing``), or, with
``syncPolicy.selfHeal``, queues a sync of that app on that cluster through the replica's normal
path. When the share moves, the watches of what left it stop and its verdicts are dropped. A
pull cluster's drift is its agent's.

The Deployments come from the replica's own watch of AppFlowDeployments (no LIST per look), their
inventories from content, which is immutable and cached by digest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from appflow.engine.drift import DriftHost, DriftWatcher
from appflow.engine.engine import Engine
from appflow.hub.store import HubStore
from appflow.model import resources as res
from appflow.model.objects import Manifest
from appflow.model.records import DeploymentRecord


def share_drift(
    engine: Engine,
    store: HubStore,
    *,
    seen: Callable[[], Iterable[Manifest]],
    looks_after: Callable[[str], bool],
    busy: Callable[[str, str], bool],
    heal: Callable[[str, str], None],
    stop: asyncio.Event,
    self_heal_delay: float = 1.0,
) -> DriftWatcher:
    """Drift watches over SEEN: the AppFlowDeployments of this replica's share on push clusters,
    as its watch last saw them."""

    def records() -> list[DeploymentRecord]:
        out = []
        for obj in seen():
            if not (obj.get("status") or {}).get("state"):
                continue  # nothing applied yet
            digest = res.inventory_digest(obj)
            out.append(
                res.deployment_record(obj, inventory=store.get_objects(digest) if digest else [])
            )
        return out

    async def wanted() -> list[DeploymentRecord]:
        return await asyncio.to_thread(records)

    return DriftWatcher(
        engine,
        DriftHost(wanted=wanted, busy=busy, heal=heal, looks_after=looks_after),
        stop=stop,
        self_heal_delay=self_heal_delay,
    )

"""Diff: the plan, with diffs, of syncing an app now (or of rolling it back); changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from appflow.engine.desired import render_desired
from appflow.engine.parts import EngineParts
from appflow.engine.policies import enforce_guard_rails, load_policies
from appflow.engine.stages.prepare import prepare
from appflow.engine.stages.types import DesiredState, SyncBlocked, SyncOptions
from appflow.engine.state import load_app_state
from appflow.errors import AppflowError
from appflow.model.inventory import Inventory
from appflow.model.plan import Plan
from appflow.model.records import ClusterRecord, DeploymentRecord


async def diff_app(
    parts: EngineParts, name: str, *, clusters: Sequence[str] = ()
) -> dict[str, Plan]:
    """Per target cluster (or each of CLUSTERS), what a sync of app NAME would do."""
    state = await load_app_state(parts.store, name)
    resolver = parts.resolvers.of(state.app)
    source = await resolver.fetch(state.app, state.repo, commit=None, store=parts.store)
    definition = await resolver.definition(state.app, source)
    desired = []
    targets = state.fleet.targets(definition, clusters)
    policies = await load_policies(parts.store, app=name, clusters=targets)
    for cluster in targets:
        _, rendered = await render_desired(
            definition,
            source,
            cluster,
            groups=state.fleet.groups,
            connections=parts.connections,
            cache=parts.render_cache,
            secrets=parts.secrets,
            policies=policies[cluster.name],
        )
        desired.append((cluster, rendered))
    return await _plans(parts, name, desired, state.deployments, prune=definition.sync_policy.prune)


async def diff_revision(parts: EngineParts, name: str, *, to: int) -> dict[str, Plan]:
    """Per cluster, what a rollback of app NAME to revision TO would do."""
    state = await load_app_state(parts.store, name)
    revision = await asyncio.to_thread(parts.store.get_revision, name, to)
    clusters = state.fleet.clusters
    desired = [
        (
            clusters[cluster],
            DesiredState(
                app=name, cluster=cluster, objects=tuple(objects), revision=revision.digest
            ),
        )
        for cluster, objects in sorted(revision.rendered.items())
        if cluster in clusters
    ]
    # A rollback prunes what came later, as `rollback` does.
    return await _plans(parts, name, desired, state.deployments, prune=True)


async def _plans(
    parts: EngineParts,
    name: str,
    desired: Sequence[tuple[ClusterRecord, DesiredState]],
    deployments: dict[str, DeploymentRecord],
    *,
    prune: bool,
) -> dict[str, Plan]:
    options = SyncOptions(with_diffs=True, prune=prune)
    plans: dict[str, Plan] = {}
    errors: list[AppflowError] = []
    policies = await load_policies(parts.store, app=name, clusters=[c for c, _ in desired])
    for cluster, state in desired:
        previous = deployments.get(cluster.name)
        try:
            # What a sync would refuse, the diff shows refused.
            await enforce_guard_rails(
                parts.connections.kube(cluster), state, policies[cluster.name]
            )
            prepared = await prepare(
                parts.connections.kube(cluster),
                state,
                previous_inventory=Inventory(name, previous.inventory) if previous else None,
                # A diff compares with the live objects, never trusts fingerprints.
                fingerprints={},
                options=options,
            )
        except SyncBlocked as err:
            errors.extend(err.errors)
            continue
        plans[cluster.name] = prepared.plan
    if errors:
        raise SyncBlocked(
            errors, app=name, cluster=", ".join(sorted({str(e.where.cluster) for e in errors}))
        )
    return plans
